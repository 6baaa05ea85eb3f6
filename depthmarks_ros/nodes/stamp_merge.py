"""stamp_merge: one ordered output topic from N instances of a scaled-out node. See docs/multihost.md.

Instance ``k`` of a slow node (``shard_count:=N shard_index:=k``: it processes every N-th frame
by stamp) publishes its outputs remapped to ``<topic>/shard_<k>``; this node subscribes to those
and republishes each topic on ``<topic>`` in stamp order (core/sharding.StampSequencer): a frame
is held until every live instance has passed its stamp, at most ``max_wait`` s; a frame that
would go out of order is dropped and counted, never published late. Messages pass through
unchanged (any type with a header). An Image output that its node publishes with a compressed twin
(graph.NodeSpec.twins) is republished with that twin on ``<topic>/compressed(Depth)``, encoded while
subscribed: the instances' twins moved to ``<topic>/shard_<k>/...`` with their remap.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Dict, List

from sensor_msgs.msg import Image

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.sharding import StampSequencer
from depthmarks_ros.pipeline import graph, node_inputs
from depthmarks_ros.pipeline.registry import message_class
from depthmarks_ros.params.stamp_merge import StampMergeParams
from depthmarks_ros.ros.node_base import WARN, DepthmarksNode, EXIT_DEADLINE_S, run_node


class StampMergeNode(DepthmarksNode):
    PARAMS = StampMergeParams
    p: StampMergeParams

    def __init__(self, **kwargs):
        super().__init__('stamp_merge', **kwargs)
        topics: List[str] = list(self.p.topics)
        types: List[str] = list(self.p.message_types)
        if len(types) == 1:   # the spec allows one type for all topics or one per topic
            types = types * len(topics)
        self._lock = threading.Lock()
        self._seq: Dict[str, StampSequencer] = {}
        self._pubs = {}
        # reliable in: an instance's output lost on the way would stall the order for max_wait
        qos_in = self.output_qos(depth=4 * self.p.instances)
        classes = {}
        for topic, typ in zip(topics, types):
            classes[topic] = cls = message_class(typ)
            self._seq[topic] = StampSequencer(self.p.instances, max_wait=self.p.max_wait)
            kind = graph.twin_kind(topic) if cls is Image else None
            # an output the node publishes with a compressed twin gets its twin here too (under the merged
            # topic's resolved name): the instances' own twins moved with their <topic>/shard_<k> remap
            self._pubs[topic] = (self.create_image_publisher(topic, self.output_qos(), kind) if kind
                                 else self.create_publisher(cls, topic, self.output_qos()))
        for topic, k, shard in node_inputs.stamp_merge_shards(self.p):
            self.create_subscription(classes[topic], shard, self._make_cb(topic, k), qos_in)
        self.create_timer(self.p.max_wait / 4, self._poll)

    def _make_cb(self, topic: str, source: int):
        def cb(msg):
            self.stats.frame_in()
            try:
                stamp = stamp_ns(msg.header)
            except AttributeError:
                self.reject('no_header', f'{topic}/shard_{source}: message has no header')
                return
            with self._lock:
                ready = self._seq[topic].push(source, stamp, msg, time.monotonic())
            self._publish(topic, ready)
        return cb

    def _poll(self) -> None:
        now = time.monotonic()
        for topic, seq in self._seq.items():
            with self._lock:
                ready = seq.poll(now)
            self._publish(topic, ready)

    def _publish(self, topic: str, ready) -> None:
        for _stamp, msg in ready:
            try:
                self._pubs[topic].publish(msg)     # an image publisher: the raw message first, then its twin
            except ConversionError as exc:         # an instance's image its twin cannot encode: raw went out
                self.reject('twin', f'{topic}: compressed twin not published: {exc}')
            self.stats.output(max(self.latency_since(msg.header), 0.0), 0.0)

    def diagnostic_values(self):
        out = {}
        late = 0
        for topic, seq in self._seq.items():
            out[f'{topic} released'] = seq.stats.released
            out[f'{topic} dropped out of order'] = seq.stats.dropped_late
            out[f'{topic} released without waiting'] = seq.stats.forced
            late += seq.stats.dropped_late
        if late:
            out.update(status_level=WARN, status_message=f'{late} frames came too late to keep stamp order '
                       '(raise max_wait or check the instances)')
        return out


NODE_CLASS = StampMergeNode


def main(args=None) -> int:
    return run_node(StampMergeNode, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
