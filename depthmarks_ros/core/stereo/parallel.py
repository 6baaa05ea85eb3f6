"""Strip-parallel matching (ROS-free): one image matched as overlapping horizontal bands in threads.

OpenCV releases the GIL inside ``compute``, so ``n`` matchers on ``n`` bands use ``n`` cores.
Each band is extended by ``margin`` rows above and below (window half-size + 24 rows, enough for
SGBM's vertical/diagonal paths to settle) and only its own rows are kept; away from the band
borders the result equals the unsplit computation (test/test_stereo_core.py).
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable, List, Sequence, Tuple

import numpy as np

MARGIN_EXTRA_ROWS = 24


def strip_bounds(height: int, strips: int, window: int) -> List[Tuple[int, int, int, int]]:
    """``(src_top, src_bottom, keep_top, keep_bottom)`` per band; at most one band per 32 rows."""
    n = max(1, min(strips, height // 32))
    margin = window // 2 + MARGIN_EXTRA_ROWS
    cuts = np.linspace(0, height, n + 1).astype(int)
    return [(max(int(cuts[i]) - margin, 0), min(int(cuts[i + 1]) + margin, height), int(cuts[i]), int(cuts[i + 1]))
            for i in range(n)]


def compute_in_strips(computes: Sequence[Callable[[np.ndarray, np.ndarray], np.ndarray]], pool: Executor,
                      left: np.ndarray, right: np.ndarray, window: int) -> np.ndarray:
    """Raw (H, W) matcher output of ``left``/``right`` (H, W) matched in ``len(computes)`` bands.

    ``computes[i]`` is one matcher's ``compute`` (matchers are not thread-safe: one per band).
    """
    bounds = strip_bounds(left.shape[0], len(computes), window)
    if len(bounds) == 1:
        return computes[0](left, right)
    futures = [pool.submit(computes[i], left[s0:s1], right[s0:s1]) for i, (s0, s1, _k0, _k1) in enumerate(bounds)]
    parts = [f.result() for f in futures]
    out = np.empty(left.shape[:2], parts[0].dtype)
    for part, (s0, _s1, k0, k1) in zip(parts, bounds):
        out[k0:k1] = part[k0 - s0:k1 - s0]
    return out
