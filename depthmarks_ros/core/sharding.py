"""Scaling a slow node out: several instances share one input stream, one ordered output.

Two ROS-free pieces:

* :class:`ShardSelector` — which frames an instance processes. Every instance sees every input
  message; instance ``index`` of ``count`` takes the frames whose *frame number*
  ``round(stamp / period)`` is ``index`` modulo ``count``. All instances compute the same frame
  number from the same stamp, so each frame is taken by exactly one instance and consecutive
  frames go to different instances (round-robin), without any coordination between them.
  ``period`` is the nominal input period; stamps may jitter by up to half of it.
* :class:`StampSequencer` — merges the outputs of the ``count`` instances into one stream in
  stamp order. Each instance's own output is in stamp order, so once instance ``j`` has
  delivered stamp ``t_j`` it will never deliver an earlier one: an item with stamp ``s`` is
  released when every *live* instance has delivered a stamp >= ``s``. An instance that has sent
  nothing for ``max_wait`` seconds (stopped, or it dropped frames) no longer holds the others
  back; an item that arrives after a later stamp was released is dropped (counted), never
  published out of order.

Conventions: stamps are integers in nanoseconds; clocks (``now``) are seconds, monotonic.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


@dataclass(frozen=True)
class ShardSelector:
    """Round-robin frame assignment by stamp.

    Args:
        count: number of instances (1 = take every frame).
        index: this instance, ``0 <= index < count``.
        period_s: nominal input period in seconds (> 0), e.g. 0.1 for a 10 Hz camera.
    """
    count: int = 1
    index: int = 0
    period_s: float = 0.1

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f'shard count must be >= 1 (got {self.count})')
        if not 0 <= self.index < self.count:
            raise ValueError(f'shard index must be in [0, {self.count - 1}] (got {self.index})')
        if not self.period_s > 0:
            raise ValueError(f'shard period must be > 0 s (got {self.period_s})')

    def frame_number(self, stamp_ns: int) -> int:
        period_ns = self.period_s * 1e9
        return int((stamp_ns + period_ns / 2) // period_ns)

    def takes(self, stamp_ns: int) -> bool:
        """True when this instance processes the frame stamped ``stamp_ns``."""
        return self.count == 1 or self.frame_number(stamp_ns) % self.count == self.index


@dataclass
class SequencerStats:
    released: int = 0
    dropped_late: int = 0        # arrived after a later stamp had been released
    forced: int = 0              # released because an instance was silent for max_wait


@dataclass
class StampSequencer:
    """Reorder buffer over ``count`` sources whose own items come in stamp order.

    Args:
        count: number of sources (instances).
        max_wait: seconds a source may stay silent before it stops holding the others back;
            also the longest an item waits in the buffer.
        max_items: bound on the buffer (the oldest stamp is released when it is exceeded).
    """
    count: int
    max_wait: float = 0.5
    max_items: int = 64
    stats: SequencerStats = field(default_factory=SequencerStats)

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f'count must be >= 1 (got {self.count})')
        if not self.max_wait > 0:
            raise ValueError(f'max_wait must be > 0 s (got {self.max_wait})')
        self._heap: List[Tuple[int, int, float, Any]] = []   # (stamp, tie, arrival, item)
        self._tie = itertools.count()
        self._last: Dict[int, int] = {}          # source -> latest stamp delivered
        self._heard: Dict[int, float] = {}       # source -> clock of its latest delivery
        self._started: Optional[float] = None    # clock of the first push
        self._released: Optional[int] = None     # latest stamp released

    @property
    def pending(self) -> int:
        return len(self._heap)

    def push(self, source: int, stamp_ns: int, item: Any, now: float) -> List[Tuple[int, Any]]:
        """Add ``item`` from ``source``; return the items now releasable, as (stamp, item)."""
        if not 0 <= source < self.count:
            raise ValueError(f'source must be in [0, {self.count - 1}] (got {source})')
        if self._started is None:
            self._started = now
        self._last[source] = max(stamp_ns, self._last.get(source, stamp_ns))
        self._heard[source] = now
        if self._released is not None and stamp_ns <= self._released:
            self.stats.dropped_late += 1
            return self.poll(now)
        heapq.heappush(self._heap, (stamp_ns, next(self._tie), now, item))
        return self.poll(now)

    def poll(self, now: float) -> List[Tuple[int, Any]]:
        """Items releasable at clock ``now`` (call it from a timer too, for silent sources)."""
        out: List[Tuple[int, Any]] = []
        while self._heap:
            stamp = self._heap[0][0]
            blocked = self._blocked(stamp, now)
            if blocked:
                oldest = min(arrival for _, _, arrival, _ in self._heap)
                if len(self._heap) <= self.max_items and now - oldest < self.max_wait:
                    break
                self.stats.forced += 1
            stamp, _, _, item = heapq.heappop(self._heap)
            self._released = stamp
            self.stats.released += 1
            out.append((stamp, item))
        return out

    def _blocked(self, stamp: int, now: float) -> bool:
        """True while a live source may still deliver a stamp below ``stamp``."""
        for s in range(self.count):
            heard = self._heard.get(s)
            if heard is None:
                if now - self._started < self.max_wait:    # not heard from yet: wait a while
                    return True
                continue
            if now - heard >= self.max_wait:                  # silent: stopped or dropping
                continue
            if self._last[s] < stamp:
                return True
        return False
