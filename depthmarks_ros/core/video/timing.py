"""Frame pacing and retry back-off (ROS-free, clock injectable for tests)."""
from __future__ import annotations

import time
from typing import Callable


class Pacer:
    """Keeps a steady rate: ``wait()`` sleeps until the next frame is due.

    If the caller falls behind by more than one period the schedule restarts from now
    (no burst of catch-up frames).
    """

    def __init__(self, rate_hz: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._clock, self._sleep = clock, sleep
        self._next = None

    def wait(self) -> None:
        if self.period <= 0:
            return
        now = self._clock()
        if self._next is None or now - self._next > self.period:
            self._next = now
        delay = self._next - now
        if delay > 0:
            self._sleep(delay)
        self._next += self.period


class Backoff:
    """Exponential back-off delays for retrying a lost device: initial, x2 each time, capped."""

    def __init__(self, initial: float = 0.5, maximum: float = 10.0):
        if initial <= 0 or maximum < initial:
            raise ValueError('need 0 < initial <= maximum')
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
