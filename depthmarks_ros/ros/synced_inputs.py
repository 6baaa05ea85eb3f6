"""Synchronised subscriptions: several topics -> one callback with matching stamps.

The ROS side of :mod:`depthmarks_ros.core.sync` (message_filters is not available everywhere).
Subscriptions use SensorDataQoS; the sync queues are bounded by ``queue_size``.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Sequence, Tuple

from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.sync import make_sync


class SyncedInputs:
    """Subscribe ``topics`` (a list of (msg_type, topic)) and call ``callback(*msgs)`` when synced.

    policy: 'exact' or 'approximate' (with ``slop`` seconds). Thread-safe under a
    multi-threaded executor.
    """

    def __init__(self, node, topics: Sequence[Tuple[type, str]], callback: Callable[..., None],
                 policy: str = 'exact', queue_size: int = 5, slop: float = 0.05, qos=None,
                 callback_group=None):
        self._lock = threading.Lock()
        self._callback = callback
        self.policy, self.slop = policy, slop
        self.last_emit = time.monotonic()
        self._dropped_seen = 0
        self.sync = make_sync(policy, len(topics), queue_size, slop)
        qos = qos if qos is not None else node.sensor_qos()
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._make_cb(i), qos, callback_group=callback_group)
            for i, (msg_type, topic) in enumerate(topics)]

    def _make_cb(self, index: int):
        def cb(msg):
            with self._lock:
                out: Optional[tuple] = self.sync.add(index, stamp_ns(msg.header), msg)
            if out is not None:
                self.last_emit = time.monotonic()
                self._callback(*out)
        return cb

    def stalled(self, after: float) -> Optional[str]:
        """A message when inputs keep arriving (and being dropped) but no set was complete for
        ``after`` seconds, else None. Call it periodically (e.g. from a timer)."""
        dropped = self.sync.dropped
        new_drops = dropped > self._dropped_seen
        self._dropped_seen = dropped
        if new_drops and time.monotonic() - self.last_emit > after:
            policy = f'approximate, slop {self.slop:.3f} s' if self.policy == 'approximate' else 'exact'
            return (f'inputs arrive but never synchronise ({policy}; {dropped} messages dropped): '
                    'check that every input is published and that their stamps agree')
        return None

    @property
    def dropped(self) -> int:
        return self.sync.dropped
