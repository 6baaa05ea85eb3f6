"""Time synchronisation of several input streams (ROS-free).

Two policies, like message_filters':

* :class:`ExactTimeSync` emits a tuple when every input has a message with the *same* stamp.
* :class:`ApproximateTimeSync` emits a tuple when every input has a message within ``slop``
  seconds of the others (the newest message's partners are the nearest ones in each queue).

Both keep at most ``queue_size`` messages per input (never unbounded memory). When a tuple is
emitted, every queued message older than or equal to its members is discarded, so old frames
are dropped rather than emitted late. Stamps are integer nanoseconds; the caller extracts them
(see :func:`depthmarks_ros.convert.stamps.stamp_ns`). Not thread-safe by itself: call
:meth:`add` from one thread (or under a lock).
"""
from __future__ import annotations

import collections
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

Callback = Callable[..., None]


class _SyncBase:
    def __init__(self, n_inputs: int, queue_size: int, callback: Optional[Callback] = None):
        if n_inputs < 1:
            raise ValueError('need at least one input')
        if queue_size < 1:
            raise ValueError('queue_size must be >= 1')
        self.n_inputs = n_inputs
        self.queue_size = queue_size
        self.callback = callback
        self.queues: List[Deque[Tuple[int, Any]]] = [collections.deque() for _ in range(n_inputs)]
        self.emitted = 0
        self.dropped = 0  # messages discarded without being part of an emitted tuple

    def _push(self, index: int, stamp_ns: int, msg: Any) -> None:
        if not 0 <= index < self.n_inputs:
            raise IndexError(f'input index {index} out of range (0..{self.n_inputs - 1})')
        q = self.queues[index]
        # keep each queue sorted by stamp (messages normally arrive in order)
        if q and stamp_ns < q[-1][0]:
            items = sorted(list(q) + [(stamp_ns, msg)], key=lambda e: e[0])
            q.clear()
            q.extend(items)
        else:
            q.append((stamp_ns, msg))
        while len(q) > self.queue_size:
            q.popleft()
            self.dropped += 1

    def _emit(self, chosen: Sequence[Tuple[int, Any]]) -> Tuple[Any, ...]:
        for q, (stamp, _msg) in zip(self.queues, chosen):
            while q and q[0][0] <= stamp:
                s, _ = q.popleft()
                if s != stamp:
                    self.dropped += 1
        self.emitted += 1
        msgs = tuple(m for _s, m in chosen)
        if self.callback is not None:
            self.callback(*msgs)
        return msgs

    def clear(self) -> None:
        for q in self.queues:
            q.clear()

    def pending(self) -> int:
        return sum(len(q) for q in self.queues)


class ExactTimeSync(_SyncBase):
    """Emit when all inputs hold a message with an identical stamp."""

    def add(self, index: int, stamp_ns: int, msg: Any) -> Optional[Tuple[Any, ...]]:
        """Queue ``msg`` on input ``index``; returns (and calls back with) a tuple when complete."""
        self._push(index, stamp_ns, msg)
        chosen = []
        for q in self.queues:
            match = next((e for e in q if e[0] == stamp_ns), None)
            if match is None:
                return None
            chosen.append(match)
        return self._emit(chosen)


class ApproximateTimeSync(_SyncBase):
    """Emit when every input has a message within ``slop`` seconds of the others."""

    def __init__(self, n_inputs: int, queue_size: int, slop: float, callback: Optional[Callback] = None):
        super().__init__(n_inputs, queue_size, callback)
        if slop < 0:
            raise ValueError('slop must be >= 0')
        self.slop_ns = int(round(slop * 1e9))

    def add(self, index: int, stamp_ns: int, msg: Any) -> Optional[Tuple[Any, ...]]:
        self._push(index, stamp_ns, msg)
        # Pivot on the newest stamp that every queue can reach; try pivots from newest to oldest
        # so that the freshest complete tuple wins.
        pivots = sorted({s for s, _ in self.queues[index]}, reverse=True)
        for pivot in pivots:
            chosen = []
            for i, q in enumerate(self.queues):
                if i == index:
                    cand = next(e for e in q if e[0] == pivot)
                else:
                    cand = min(q, key=lambda e: abs(e[0] - pivot), default=None)
                if cand is None or abs(cand[0] - pivot) > self.slop_ns:
                    chosen = None
                    break
                chosen.append(cand)
            if chosen is None:
                continue
            stamps = [s for s, _ in chosen]
            if max(stamps) - min(stamps) <= self.slop_ns:
                return self._emit(chosen)
        return None


def make_sync(policy: str, n_inputs: int, queue_size: int, slop: float = 0.0,
              callback: Optional[Callback] = None) -> _SyncBase:
    """``policy`` is 'exact' or 'approximate'."""
    if policy == 'exact':
        return ExactTimeSync(n_inputs, queue_size, callback)
    if policy == 'approximate':
        return ApproximateTimeSync(n_inputs, queue_size, slop, callback)
    raise ValueError(f"unknown sync policy {policy!r}: use 'exact' or 'approximate'")
