"""Metric scale for relative inverse depth (ROS-free).

Monocular models predict inverse depth up to an unknown scale and shift: 1/Z = s * r + t. Given
sparse metric depth (LiDAR projection or stereo), :func:`fit_scale_shift` estimates (s, t) robustly:
RANSAC on pairs of points (inlier threshold relative to the inverse depth) followed by iteratively
reweighted least squares with Huber weights on the inliers. :class:`TemporalAligner` smooths (s, t)
over frames and falls back to the last good fit when a frame has too few reference points.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Alignment:
    scale: float
    shift: float
    inliers: int
    residual: float          # robust RMS of inverse-depth residuals over inliers (1/m)
    n_reference: int

    def apply(self, relative: np.ndarray, max_depth: float = 100.0) -> np.ndarray:
        """Metric depth (m), NaN where the aligned inverse depth is not positive or beyond max_depth."""
        inv = self.scale * relative.astype(np.float32) + np.float32(self.shift)
        with np.errstate(divide='ignore', invalid='ignore'):
            z = np.where(inv > 1.0 / max_depth, 1.0 / inv, np.nan)
        return z.astype(np.float32)


def fit_scale_shift(relative: np.ndarray, reference_depth: np.ndarray, iterations: int = 200,
                    threshold: float = 0.05, seed: int = 0, min_points: int = 20) -> Optional[Alignment]:
    """Fit 1/Z_ref ~ s * r + t on pixels where the reference is valid. None if too few points."""
    ok = np.isfinite(relative) & np.isfinite(reference_depth) & (reference_depth > 0)
    r = relative[ok].astype(np.float64)
    y = 1.0 / reference_depth[ok].astype(np.float64)
    n = r.size
    if n < min_points:
        return None
    rng = np.random.default_rng(seed)
    best, best_count = None, -1
    scale_y = np.median(np.abs(y)) + 1e-9
    for _ in range(iterations):
        i, j = rng.integers(0, n, 2)
        if r[i] == r[j]:
            continue
        s = (y[i] - y[j]) / (r[i] - r[j])
        t = y[i] - s * r[i]
        count = int(np.sum(np.abs(s * r + t - y) < threshold * scale_y))
        if count > best_count:
            best, best_count = (s, t), count
    if best is None:
        return None
    s, t = best
    inl = np.abs(s * r + t - y) < threshold * scale_y
    A = np.stack([r[inl], np.ones(inl.sum())], 1)
    b = y[inl]
    w = np.ones(len(b))
    for _ in range(10):  # IRLS with Huber weights
        sol, *_ = np.linalg.lstsq(A * w[:, None], b * w, rcond=None)
        res = A @ sol - b
        delta = 1.345 * (np.median(np.abs(res)) / 0.6745 + 1e-12)
        w = np.sqrt(np.where(np.abs(res) <= delta, 1.0, delta / np.abs(res)))
    s, t = sol
    res = A @ sol - b
    return Alignment(float(s), float(t), int(inl.sum()), float(np.sqrt(np.mean(res ** 2))), int(n))


class TemporalAligner:
    """Exponential smoothing of (scale, shift) over frames; ``alpha`` = weight of the new fit."""

    def __init__(self, alpha: float = 0.3, min_points: int = 20):
        self.alpha, self.min_points = alpha, min_points
        self.current: Optional[Alignment] = None

    def update(self, relative: np.ndarray, reference_depth: Optional[np.ndarray]) -> Optional[Alignment]:
        fit = fit_scale_shift(relative, reference_depth, min_points=self.min_points) if reference_depth is not None else None
        if fit is None:
            return self.current
        if self.current is None:
            self.current = fit
        else:
            a = self.alpha
            self.current = Alignment((1 - a) * self.current.scale + a * fit.scale,
                                     (1 - a) * self.current.shift + a * fit.shift,
                                     fit.inliers, fit.residual, fit.n_reference)
        return self.current
