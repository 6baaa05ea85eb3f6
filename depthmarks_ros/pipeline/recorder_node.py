"""The recording side of `depthmarks run`: one node that subscribes (serialized, no deserialization)
to every recorded topic, feeds :class:`TopicStats` and writes to an :class:`McapRecorder`.

In a single-process run the topics that are not measured through DDS are handed over by the
nodes' publishers instead (``local``, :mod:`depthmarks_ros.ros.local_tap`): no DDS delivery, no
copy, and a node publishes such a topic through DDS only while something else subscribes; the
message object is kept for the report and serialised only when it is written (at the record rate).

In a multi-process run (``filtered``) the topics the recorder only records (not those it measures)
are kept once per record period (:attr:`RecorderNode.once_per_period`; the runner tells the node
processes, which then build and publish such a topic only for the instants kept while the recorder
is its only subscriber, ros/recorded_topics.py; one that a node of the publisher's process also takes,
stereo/confidence in the depth process: ros/local_tap.py). ``DEPTHMARKS_RECORDER_FILTER=1`` (opt-in, off by
default since 2026-12-07: Fast DDS 3.2.2 crashes a publishing process now and then while a reader
changes its filter's parameters, docs/pipeline.md "Known issues") also subscribes them with a DDS
content filter on the header stamp, ``stamp >= start of the next record period``, moved on after
each kept message: Fast DDS evaluates it at the publishing node (writer-side filtering), so only the
messages that will be written cross into this process, also those another node takes every frame
(the rig's images). A filter that lets nothing through for ``reopen_after`` s (stamps that went
back by less than two periods and stayed there) is opened again; stamps that went back further
pass the filter itself (in whole seconds: ``header.stamp.sec < floor((start - 2 periods) / 1 s)``, so
a jump back of up to two periods plus one second waits for the reopen).

Decimation: images, clouds and the other stamped outputs are written at ``record_rate`` messages per
second and topic, chosen by stamp (``stamp // period``) so that the topics of one instant are kept or
dropped together; ``/diagnostics`` (each node's status, 1 Hz) is written whole; ``/tf_static`` (the
graph's rig transforms, tf2_msgs/TFMessage) once at the start, offered transient-local to
`ros2 bag play`.
"""
from __future__ import annotations

import functools
import os
import warnings
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from rclpy.node import Node
from rclpy.serialization import serialize_message
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription_content_filter_options import ContentFilterOptions

from depthmarks_ros.convert.stamps import FirstOfPeriod, stamp_ns
from depthmarks_ros.pipeline.recorder import (LATCHED_QOS, STAMPED, McapRecorder, TopicStats, cdr_stamp_ns,
                                              tf_message_cdr)
from depthmarks_ros.pipeline.registry import message_class
from depthmarks_ros.ros.local_tap import LocalTap
from depthmarks_ros.ros.recorded_topics import RECORDER_NODE

TF_STATIC = '/tf_static'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
# DDS-SQL on the header stamp: at or after (%0 s, %1 ns), or before %2 s (stamps that went back by
# two record periods or more: a looping bag, a restarted simulation, a second publisher of older
# stamps; the recorder's own keep logic decides about those)
STAMP_FILTER = ('header.stamp.sec > %0 OR (header.stamp.sec = %0 AND header.stamp.nanosec >= %1) '
                'OR header.stamp.sec < %2')
OPEN = ('0', '0', '0')


def stamp_filter_params(kept_ns: int, period_ns: int) -> tuple:
    """STAMP_FILTER's parameters (text) once a message stamped ``kept_ns`` was kept in record periods of
    ``period_ns``: from the next period's start on, or before the whole second two periods earlier."""
    start = (kept_ns // period_ns + 1) * period_ns
    back = max(0, start - 2 * period_ns) // 1_000_000_000
    return str(start // 1_000_000_000), str(start % 1_000_000_000), str(back)


def stamp_filter_enabled() -> bool:
    """Whether ``filtered`` topics get their DDS stamp filter: only with ``DEPTHMARKS_RECORDER_FILTER=1``
    (changing a filter's parameters while the writer publishes crashes Fast DDS 3.2.2 now and then,
    eProsima/Fast-DDS#4878; docs/pipeline.md "Known issues")."""
    value = os.environ.get('DEPTHMARKS_RECORDER_FILTER', '').strip()
    if value not in ('', '0', '1'):
        warnings.warn(f'DEPTHMARKS_RECORDER_FILTER={value!r} is neither 0 nor 1: the stamp filter stays off '
                      '(set 1 to turn it on)', stacklevel=2)
    return value == '1'


@dataclass(frozen=True)
class RecordedTopic:
    key: str            # the name in metrics.json and the report (the node's relative topic name)
    name: str           # the absolute topic subscribed to and written (namespace and remaps applied)
    type_name: str
    decimate: bool = True


class RecorderNode(Node):
    """Counts, keeps the last messages of and records every topic of ``topics``."""

    def __init__(self, topics: Sequence[RecordedTopic], stats: TopicStats, recorder: Optional[McapRecorder],
                 record_rate: float, static_transforms: Sequence = (), local: Sequence[str] = (),
                 filtered: Sequence[str] = (), reopen_after: Optional[float] = None, **kwargs):
        """``local``: topic names (resolved) handed over in this process by the nodes' publishers
        (:meth:`local_tap`) instead of subscribed through DDS; ``filtered``: topic names (resolved)
        recorded once per period from another process (decimated stamped topics while recording at
        a record rate: :attr:`once_per_period`), with the DDS stamp filter if
        ``DEPTHMARKS_RECORDER_FILTER=1`` (only the messages it writes cross DDS);
        ``reopen_after``: s without a kept message before a filter is opened (default: 5 s, at
        least two record periods)."""
        super().__init__(RECORDER_NODE, **kwargs)
        self.local = set(local)
        self._stats = stats
        self._recorder = recorder
        self._period_ns = int(1e9 / record_rate) if record_rate > 0 else 0
        self.period_ns = self._period_ns
        self._kept: Dict[str, FirstOfPeriod] = {}   # topic name -> the periods written
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=20)
        self.topics: List[RecordedTopic] = list(topics)
        self.filters: Dict[str, object] = {}      # topic name -> subscription with a stamp filter
        self._filter_start: Dict[str, tuple] = {}  # topic name -> the filter's (sec, nanosec) as text
        self._accepted_at: Dict[str, float] = {}   # topic name -> monotonic time of its last kept message
        filtered = set(filtered) if recorder is not None and self._period_ns else set()
        # across processes, recorded once per period (the runner tells the node processes)
        self.once_per_period: List[str] = [t.name for t in self.topics if t.name in filtered
                                           and t.name not in self.local and t.decimate and t.type_name in STAMPED]
        with_filter = set(self.once_per_period) if stamp_filter_enabled() else set()
        for topic in self.topics:
            if recorder is not None:
                recorder.channel(topic.name, topic.type_name)
            if topic.name in self.local:
                continue
            use_filter = topic.name in with_filter
            sub = self.create_subscription(
                message_class(topic.type_name), topic.name, functools.partial(self._on_message, topic), qos,
                raw=True, content_filter_options=ContentFilterOptions(STAMP_FILTER, list(OPEN)) if use_filter else None)
            if use_filter and sub.is_cft_enabled:   # else (an RMW without content filters) every message
                self.filters[topic.name] = sub
                self._filter_start[topic.name] = OPEN
                self._accepted_at[topic.name] = time.monotonic()
        if self.filters:
            self._reopen_after = reopen_after if reopen_after is not None else max(5.0, 2 * self._period_ns * 1e-9)
            self.create_timer(min(1.0, self._reopen_after / 2), self._reopen_stale_filters)
        if recorder is not None and static_transforms:
            recorder.channel(TF_STATIC, TF_MESSAGE, offered_qos=LATCHED_QOS)
            now = self.get_clock().now().nanoseconds
            recorder.write(TF_STATIC, tf_message_cdr(list(static_transforms), now), now, now)

    def _on_message(self, topic: RecordedTopic, data: bytes) -> None:
        now = self.get_clock().now().nanoseconds
        stamp = cdr_stamp_ns(data) if topic.type_name in STAMPED else None
        self._stats.add(topic.key, data, stamp, now)
        if self._recorder is None or not self._keep(topic, stamp or now):
            return
        self._recorder.write(topic.name, data, now, stamp)
        if topic.name in self.filters and stamp:     # (a zero stamp moves nothing: it would close the filter)
            # from now on only the next record period's messages cross DDS
            self._set_filter(topic.name, stamp_filter_params(stamp, self._period_ns))

    def _set_filter(self, name: str, start: tuple) -> None:
        self._accepted_at[name] = time.monotonic()
        if self._filter_start[name] != start:
            self.filters[name].set_content_filter(STAMP_FILTER, list(start))
            self._filter_start[name] = start

    def _reopen_stale_filters(self) -> None:
        """A filter that let nothing through for ``reopen_after`` s is opened (stamps may have gone back)."""
        now = time.monotonic()
        for name in self.filters:
            if self._filter_start[name] != OPEN and now - self._accepted_at[name] > self._reopen_after:
                self._set_filter(name, OPEN)

    def local_tap(self) -> LocalTap:
        """The tap for :func:`depthmarks_ros.ros.local_tap.install`: every ``local`` topic, with the
        record period of the decimated ones (their publishers then build only what is kept)."""
        local = [t for t in self.topics if t.name in self.local]
        periods = {t.name: self._period_ns for t in local if t.decimate and self._recorder is not None}
        return LocalTap({t.name: functools.partial(self._on_local, t) for t in local}, periods)

    def _on_local(self, topic: RecordedTopic, msg) -> None:
        """A message handed over by a publisher of this process (in its thread): counted, kept as
        the object (read-only), serialised only when written."""
        now = self.get_clock().now().nanoseconds
        header = getattr(msg, 'header', None) if topic.type_name in STAMPED else None
        stamp = stamp_ns(header) if header is not None else None
        self._stats.add(topic.key, msg, stamp, now)
        if self._recorder is None or not self._keep(topic, stamp or now):
            return
        self._recorder.write(topic.name, serialize_message(msg), now, stamp)

    def _keep(self, topic: RecordedTopic, stamp: int) -> bool:
        if not topic.decimate or not self._period_ns:
            return True
        first = self._kept.get(topic.name)
        if first is None:
            first = self._kept[topic.name] = FirstOfPeriod(self._period_ns)
        return first.take(stamp)
