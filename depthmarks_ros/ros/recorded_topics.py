"""Outputs that only `depthmarks run --multi-process`'s recorder takes: built for the instants it keeps.

In one process the recorder's local tap (ros/local_tap.py) tells a node that an output nobody else
subscribes to is used once per record period only, and ``DepthmarksNode.wanted_at`` builds it for
those instants. Across processes the recorder subscribes through DDS and keeps one message per
period (pipeline/recorder_node.py; a DDS stamp filter only with DEPTHMARKS_RECORDER_FILTER=1), which
a node cannot see in its subscription count. So the runner names
the recorded-only topics and their periods in the node processes' environment
(``DEPTHMARKS_RECORDED_PERIODS``: JSON ``{resolved topic: period ns}``), and ``create_publisher``
wraps such a topic's publisher in a :class:`RecordedPublisher`: while every subscriber of the topic
is the recorder node (``RECORDER_NODE``, looked up in the ROS graph when the subscriber count
changes, and again at most every ``RETRY_MAX_S`` while the answer is yes), :meth:`RecordedPublisher.wanted_at` is True only for the first stamp of each period, as
the tap's is; with any other subscriber (another node, ``ros2 topic echo``, RViz) always. The node
processes that the launch files start have no such variable: nothing changes there; the runner
removes an inherited one from its node processes' environment (:func:`node_process_env`), and a
process with a recorder's local tap (a single-process run) ignores it.

The runner names every topic that the recorder keeps once per period (``RecorderNode.once_per_period``),
also one that a node in the publisher's process takes every frame (stereo/confidence, depth_fusion's in
the depth process): the process's hand-over-only tap wraps its RecordedPublisher and asks
:meth:`RecordedPublisher.only_recorder` and :meth:`RecordedPublisher.keeps` (the rule: ros/local_tap.py).
"""
from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional, Sequence, Tuple

from depthmarks_ros.convert.stamps import FirstOfPeriod, stamp_ns

ENV = 'DEPTHMARKS_RECORDED_PERIODS'
RECORDER_NODE = 'depthmarks_recorder'
#: the node name the ROS graph gives a subscription whose participant's node list has not arrived yet
#: (rmw_dds_common's graph cache): not known to be the recorder, looked up again like a lagging count
UNKNOWN_NODE = '_NODE_NAME_UNKNOWN_'


def recorded_periods() -> Dict[str, int]:
    """{resolved topic: period ns} from the environment (empty when unset or unreadable)."""
    text = os.environ.get(ENV, '')
    if not text:
        return {}
    try:
        return {str(k): int(v) for k, v in json.loads(text).items() if int(v) > 0}
    except (ValueError, TypeError, AttributeError):
        return {}


def recorded_periods_env(periods: Dict[str, int]) -> Dict[str, str]:
    """The environment entry that :func:`recorded_periods` reads."""
    return {ENV: json.dumps({k: int(v) for k, v in periods.items()})}


def node_process_env(periods: Dict[str, int], base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """A node process's environment: ``base`` (default ``os.environ``) without an inherited
    :data:`ENV` (a runner started from a node process, a user's shell), with ``periods``' entry
    when there are any."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != ENV}
    if periods:
        env.update(recorded_periods_env(periods))
    return env


class RecordedPublisher:
    """An rclpy Publisher of a recorded-only topic (see the module docstring); everything else is
    the wrapped publisher's."""

    RETRY_S = 0.1
    RETRY_MAX_S = 1.0        # the retry interval doubles while the graph keeps disagreeing for one count

    def __init__(self, publisher, node, period_ns: int):
        self.publisher = publisher
        self._node = node
        self._period = int(period_ns)
        self._key = None             # the (subscriber count, ours) the answer below was looked up for
        self._only_recorder = False
        self._recheck_at = 0.0       # a True answer is looked up again from this monotonic time
        self._pending = None         # a key the graph did not agree with yet, looked up again ...
        self._retry_at = 0.0         # ... from this monotonic time
        self._retry_s = self.RETRY_S
        self._first = FirstOfPeriod(self._period)   # the periods of the messages published

    def only_recorder(self, ours: Sequence[Optional[Tuple[str, str]]] = ()) -> bool:
        """Whether the recorder is this topic's only subscriber besides ``ours``: (node name, namespace)
        of each of this process's in-process inputs among the subscribers, whose readers the publisher's
        count includes (:class:`~depthmarks_ros.ros.local_tap.TappedPublisher`). Looked up in the graph
        when the count (or ``ours``) changes, and again at most every ``RETRY_MAX_S`` while the answer is
        True (the recorder may have left and another subscriber, RViz, joined between two calls: the
        same count): at least one subscriber's node is :data:`RECORDER_NODE`, and every other one is the
        node of one of ``ours``, no more of them than ``ours`` has (an input's node is in the graph as
        soon as it exists, its participant being this one). The graph may lag the count (a
        subscriber DDS matched that the graph does not show yet): until they agree the answer is False
        (every frame: the new subscriber may not be the recorder), looked up again after ``RETRY_S`` s,
        then after twice as long each time the graph still disagrees for that count (at most
        ``RETRY_MAX_S``: a subscriber whose node never resolves, e.g. a plain DDS reader, gets every
        frame without a lookup per frame). The same while the graph names a subscriber's node
        :data:`UNKNOWN_NODE` (its DDS endpoint discovered before its node): answered once and kept for
        that count, it made stereo_depth build and publish its 1.2 MB disparity every frame for a whole
        run in about half the `--multi-process` runs (issue 21: the stereo node's rest share 0.21-0.24
        in those, 0.13-0.15 in the others)."""
        count = self.publisher.get_subscription_count()
        key = (count, tuple(ours))
        if key == self._key and (not self._only_recorder or time.monotonic() < self._recheck_at):
            return self._only_recorder
        now = time.monotonic()
        if key == self._pending and now < self._retry_at:
            return False
        infos = self._node.get_subscriptions_info_by_topic(self.publisher.topic_name)
        if len(infos) == count and not any(i.node_name == UNKNOWN_NODE for i in infos):
            others = [i for i in infos if i.node_name != RECORDER_NODE]
            self._key, self._pending, self._recheck_at = key, None, now + self.RETRY_MAX_S
            self._only_recorder = len(others) < count and len(others) <= len(key[1]) and all(
                (i.node_name, i.node_namespace) in key[1] for i in others)
            return self._only_recorder
        self._retry_s = min(2.0 * self._retry_s, self.RETRY_MAX_S) if key == self._pending else self.RETRY_S
        self._key, self._pending, self._retry_at = None, key, now + self._retry_s
        self._only_recorder = False
        return False

    def keeps(self, stamp_ns: int) -> bool:
        """Whether the recorder would keep a message stamped ``stamp_ns``: the first of its period
        (:meth:`publish` marks the period as served; a stamp <= 0: always)."""
        return self._first.wanted(stamp_ns)

    def wanted_at(self, stamp_ns: int) -> bool:
        """While only the recorder subscribes, only the first stamp of each period (no side effect:
        :meth:`publish` marks the period as served); else whether anything subscribes."""
        if self.publisher.get_subscription_count() == 0:
            # whoever subscribes next is looked up at once (the last answer, and any back-off, was for others)
            self._key, self._pending, self._retry_s = None, None, self.RETRY_S
            return False
        if not self.only_recorder():
            return True
        return self.keeps(stamp_ns)

    def publish(self, msg) -> None:
        header = getattr(msg, 'header', None)
        if header is not None:
            self._first.mark(stamp_ns(header))
        self.publisher.publish(msg)

    def __getattr__(self, name):
        return getattr(self.publisher, name)
