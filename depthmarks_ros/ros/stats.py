"""Processing statistics for /diagnostics (ROS-free): rate, latency, drops, errors."""
from __future__ import annotations

import collections
import threading
import time
from typing import Deque, Dict, Optional, Tuple

import numpy as np


class ProcessingStats:
    """Sliding-window counters of one node's processing (thread-safe)."""

    def __init__(self, window_s: float = 5.0, max_samples: int = 512):
        self.window_s = window_s
        self._lock = threading.Lock()
        self._outputs: Deque[Tuple[float, float, float]] = collections.deque(maxlen=max_samples)
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0
        self.errors = 0
        self.last_error: Optional[str] = None
        self.last_error_time: Optional[float] = None
        self.last_output_time: Optional[float] = None

    def frame_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def error(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = message
            self.last_error_time = time.monotonic()

    def output(self, latency_s: float, compute_s: float = float('nan')) -> None:
        """Record one produced output: latency from the input stamp, and compute time."""
        now = time.monotonic()
        with self._lock:
            self.frames_out += 1
            self.last_output_time = now
            self._outputs.append((now, float(latency_s), float(compute_s)))

    def snapshot(self) -> Dict[str, float]:
        now = time.monotonic()
        with self._lock:
            recent = [o for o in self._outputs if now - o[0] <= self.window_s]
            lat = np.array([o[1] for o in recent]) if recent else np.array([np.nan])
            comp = np.array([o[2] for o in recent]) if recent else np.array([np.nan])
            if len(recent) >= 2:
                span = max(recent[-1][0] - recent[0][0], 1e-6)
                rate = (len(recent) - 1) / span
            else:
                rate = 0.0
            return {
                'rate_hz': float(rate),
                'latency_ms_median': float(np.nanmedian(lat) * 1e3) if np.isfinite(lat).any() else float('nan'),
                'latency_ms_max': float(np.nanmax(lat) * 1e3) if np.isfinite(lat).any() else float('nan'),
                'compute_ms_median': float(np.nanmedian(comp) * 1e3) if np.isfinite(comp).any() else float('nan'),
                'frames_in': self.frames_in,
                'frames_out': self.frames_out,
                'dropped': self.dropped,
                'errors': self.errors,
                'seconds_since_error': (now - self.last_error_time) if self.last_error_time else float('inf'),
            }
