"""Time synchronisation of several input streams, and the health of those inputs (ROS-free).

Two policies, like message_filters':

* :class:`ExactTimeSync` emits a tuple when every input has a message with the *same* stamp.
* :class:`ApproximateTimeSync` emits a tuple when every input has a message within ``slop``
  seconds of the others (the newest message's partners are the nearest ones in each queue).

Both keep at most ``queue_size`` messages per input (never unbounded memory). When a tuple is
emitted, every queued message older than or equal to its members is discarded, so old frames
are dropped rather than emitted late. Stamps are integer nanoseconds; the caller extracts them
(see :func:`depthmarks_ros.convert.stamps.stamp_ns`). Not thread-safe by itself: call
:meth:`add` from one thread (or under a lock).

Recovery from bad stamps: a bounded queue that keeps the largest stamps would, after a few
messages stamped far in the future (a sensor with a wrong clock, an NTP step, a looping bag),
discard every correct message that follows and never emit again. So when a message's stamp lies
more than ``jump_tolerance`` seconds *before* the newest one queued on its input, the stamps of
that input have jumped back: the queued messages newer than it (which nothing newer can match)
are discarded and the event is recorded (:attr:`events`, ``on_event``). :meth:`reset` empties
every queue (the node calls it when the ROS clock jumps back, as tf2 and message_filters users
expect). :class:`InputHealth` turns arrival times, emitted sets and these events into one
status with a reason (an input never received, stopped, or inputs that never pair).
"""
from __future__ import annotations

import collections
import re
from typing import Any, Callable, Deque, List, Optional, Sequence, Tuple

Callback = Callable[..., None]
OK, WARN, ERROR = 0, 1, 2
_NUMBERS = re.compile(r'[-+]?\d+(\.\d+)?')


class _SyncBase:
    def __init__(self, n_inputs: int, queue_size: int, callback: Optional[Callback] = None,
                 jump_tolerance: float = 1.0, on_event: Optional[Callable[[str], None]] = None,
                 names: Optional[Sequence[str]] = None):
        if n_inputs < 1:
            raise ValueError('need at least one input')
        if queue_size < 1:
            raise ValueError('queue_size must be >= 1')
        if jump_tolerance <= 0:
            raise ValueError('jump_tolerance must be > 0')
        self.n_inputs = n_inputs
        self.queue_size = queue_size
        self.callback = callback
        self.on_event = on_event
        self.names = list(names) if names is not None else [f'input {i}' for i in range(n_inputs)]
        if len(self.names) != n_inputs:
            raise ValueError('one name per input')
        self.jump_ns = int(round(jump_tolerance * 1e9))
        self.queues: List[Deque[Tuple[int, Any]]] = [collections.deque() for _ in range(n_inputs)]
        self.newest: List[Optional[int]] = [None] * n_inputs  # newest stamp received per input
        self.emitted = 0
        self.dropped = 0  # messages discarded without being part of an emitted tuple
        self.jumps = 0
        self.events: Deque[str] = collections.deque(maxlen=16)

    def _event(self, message: str) -> None:
        self.events.append(message)
        if self.on_event is not None:
            self.on_event(message)

    def _push(self, index: int, stamp_ns: int, msg: Any) -> None:
        if not 0 <= index < self.n_inputs:
            raise IndexError(f'input index {index} out of range (0..{self.n_inputs - 1})')
        q = self.queues[index]
        newest = self.newest[index]
        if newest is not None and stamp_ns < newest - self.jump_ns:
            stale = [e for e in q if e[0] > stamp_ns]
            if stale:
                kept = [e for e in q if e[0] <= stamp_ns]
                q.clear()
                q.extend(kept)
                self.dropped += len(stale)
            self.jumps += 1
            self._event(f'stamps of {self.names[index]} jumped back by {(newest - stamp_ns) * 1e-9:.3f} s '
                        f'({len(stale)} queued message(s) discarded): sensor clock step or looping bag?')
            self.newest[index] = stamp_ns
        elif newest is None or stamp_ns > newest:
            self.newest[index] = stamp_ns
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

    def reset(self, reason: str = 'reset') -> None:
        """Forget every queued message and the newest stamps (after a clock jump)."""
        n = self.pending()
        self.clear()
        self.dropped += n
        self.newest = [None] * self.n_inputs
        self._event(f'{reason}: synchronisation reset ({n} queued message(s) discarded)')

    def pending(self) -> int:
        return sum(len(q) for q in self.queues)

    def offsets(self) -> List[Optional[float]]:
        """Newest stamp of each input minus the newest of input 0 (s; None where nothing came)."""
        ref = self.newest[0]
        return [None if (s is None or ref is None) else (s - ref) * 1e-9 for s in self.newest]


class ExactTimeSync(_SyncBase):
    """Emit when all inputs hold a message with an identical stamp."""

    policy = 'exact'

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

    policy = 'approximate'

    def __init__(self, n_inputs: int, queue_size: int, slop: float, callback: Optional[Callback] = None,
                 **kwargs):
        super().__init__(n_inputs, queue_size, callback, **kwargs)
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
              callback: Optional[Callback] = None, **kwargs) -> _SyncBase:
    """``policy`` is 'exact' or 'approximate'; ``kwargs``: jump_tolerance, on_event, names."""
    if policy == 'exact':
        return ExactTimeSync(n_inputs, queue_size, callback, **kwargs)
    if policy == 'approximate':
        return ApproximateTimeSync(n_inputs, queue_size, slop, callback, **kwargs)
    raise ValueError(f"unknown sync policy {policy!r}: use 'exact' or 'approximate'")


class InputHealth:
    """Whether a node's inputs arrive and pair, as one (level, reason) (ROS-free; times in s).

    ``names`` are the inputs (topics). Call :meth:`seen` on
    every message, :meth:`paired` when a complete set goes to processing, :meth:`note` for an
    event (e.g. stamps jumped back), and :meth:`status` for the verdict. ``after`` seconds is
    the grace period: a never-received or silent input, or inputs that arrive but do not pair
    for that long, make the status WARN; with no complete set for that long it is ERROR (the
    node outputs nothing). Events stay in the status (WARN) for ``after`` seconds.
    """

    def __init__(self, names: Sequence[str], after: float, now: float, describe_sync: str = ''):
        self.names = list(names)
        self.after = float(after)
        self.start = now
        self.describe_sync = describe_sync
        self.last_seen: List[Optional[float]] = [None] * len(self.names)
        self.count = [0] * len(self.names)
        self.interval: List[Optional[float]] = [None] * len(self.names)  # smoothed period (s)
        self.last_paired: Optional[float] = None
        self._events: Deque[Tuple[float, str]] = collections.deque(maxlen=8)

    def seen(self, index: int, now: float) -> None:
        last = self.last_seen[index]
        if last is not None:
            dt = now - last
            prev = self.interval[index]
            self.interval[index] = dt if prev is None else 0.8 * prev + 0.2 * dt
        self.last_seen[index] = now
        self.count[index] += 1

    def paired(self, now: float) -> None:
        self.last_paired = now

    def note(self, message: str, now: float) -> None:
        self._events.append((now, message))

    def reset_clock(self, now: float) -> None:
        """Restart the grace period (e.g. after a reconfiguration)."""
        self.start = now

    def _rate(self, i: int) -> str:
        iv = self.interval[i]
        return f', was {1.0 / iv:.1f} Hz' if iv and iv > 0 else ''

    def status(self, now: float, offsets: Optional[Sequence[Optional[float]]] = None) -> Tuple[int, str]:
        """(level, reason): OK/WARN/ERROR (0/1/2) and what is wrong ('' when OK).

        ``offsets``: newest stamp of each input relative to input 0 (s), to say by how much
        never-pairing inputs disagree.
        """
        grace_over = now - self.start >= self.after
        problems: List[str] = []
        anything = any(c > 0 for c in self.count)
        for i, name in enumerate(self.names):
            last = self.last_seen[i]
            if last is None:
                if grace_over and anything:
                    problems.append(f'{name}: nothing received in {now - self.start:.1f} s')
            elif now - last >= self.after:
                problems.append(f'{name}: no message for {now - last:.1f} s{self._rate(i)}')
        if grace_over and not anything:
            problems.append('no input: nothing received on ' + ', '.join(self.names) +
                            f' in {now - self.start:.1f} s')
        deaf = grace_over and anything and (self.last_paired is None or now - self.last_paired >= self.after)
        if deaf and not problems:
            detail = ''
            if offsets is not None and len(self.names) > 1:
                parts = [f'{name} {off * 1e3:+.1f} ms' for name, off in zip(self.names[1:], offsets[1:])
                         if off is not None]
                if parts:
                    detail = f'; newest stamps relative to {self.names[0]}: ' + ', '.join(parts)
            problems.append(f'inputs arrive but never synchronise ({self.describe_sync or "sync"}) '
                            f'for {now - (self.last_paired or self.start):.1f} s{detail}')
        events: dict = {}   # one (the newest) of each distinct event, numbers aside
        for t, m in self._events:
            if now - t < self.after:
                events.pop(_NUMBERS.sub('#', m), None)
                events[_NUMBERS.sub('#', m)] = m
        events = list(events.values())
        if not problems and not events:
            return OK, ''
        # ERROR while no set goes through (the node is deaf); WARN while it still works (an optional
        # input is missing, or a recovered event), or while nothing runs upstream at all
        return (ERROR if deaf else WARN), '; '.join(problems + events)
