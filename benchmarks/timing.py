"""Shared timing helper of the benchmark scripts."""
import time

import numpy as np


def median_ms(fn, n: int = 10, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``n`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(n, 1)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
