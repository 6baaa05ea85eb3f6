"""Inverse-variance fusion of several depth sources (ROS-free).

D = sum_i w_i D_i / sum_i w_i with w_i = 1 / sigma_i^2 and sigma = sqrt(1 / sum_i w_i): the
maximum-likelihood combination of independent Gaussian estimates. Sources missing at a pixel
(NaN depth or sigma) do not count there.

With ``spread`` the fused variance also holds the sources' weighted spread around the fused
depth, sum_i w_i (D_i - D)^2 / sum_i w_i (the variance of the weighted mixture of the sources): where
the sources agree within their sigmas it adds little, where they disagree by more (both wrong
at a depth edge, one of them failing without knowing it: errors that are not independent) the
fused sigma widens to cover the gap instead of shrinking below either source's.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def fuse_inverse_variance(depths: Sequence[np.ndarray], sigmas: Sequence[np.ndarray], spread: bool = False
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """(depth (H, W), sigma (H, W)) float32; NaN where no source has a value. ``spread``: add the
    sources' weighted spread to the fused variance (module docstring)."""
    if len(depths) != len(sigmas) or not depths:
        raise ValueError('need one sigma per depth source, and at least one source')
    shape = depths[0].shape
    if len(depths) == 1:            # one source: itself where it counts (the same test as below), no arithmetic
        d, s = np.asarray(depths[0], np.float32), np.asarray(sigmas[0], np.float32)
        if s.shape != shape:
            raise ValueError(f'depth sources differ in size: {s.shape} vs {shape}')
        with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
            w = np.float32(1.0) / (s * s)
            ok = np.isfinite(d) & (d > 0) & (s > 0) & np.isfinite(w) & (w > 0)
        nan = np.float32(np.nan)
        return np.where(ok, d, nan), np.where(ok, s, nan)
    num = np.zeros(shape, np.float32)
    den = np.zeros(shape, np.float32)
    used = []                                   # (depth, weight) per source, for the spread
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        for d, s in zip(depths, sigmas):
            if d.shape != shape or s.shape != shape:
                raise ValueError(f'depth sources differ in size: {d.shape} / {s.shape} vs {shape}')
            d = np.asarray(d, np.float32)
            s = np.asarray(s, np.float32)
            w = np.float32(1.0) / (s * s)
            # NaN compares False: a NaN depth or sigma does not count; nor do inf or non-positive
            # values, nor a sigma so small (< ~1e-19 m) that its weight overflows float32
            ok = np.isfinite(d) & (d > 0) & (s > 0) & np.isfinite(w)
            w[~ok] = 0.0
            den += w
            if spread and len(depths) > 1:
                used.append((d, ok, w.copy()))
            w *= d
            w[~ok] = 0.0
            num += w
        fused = np.where(den > 0, num / den, np.float32(np.nan))
        var = np.float32(1.0) / den
        if used:
            spread_sum = np.zeros(shape, np.float32)
            for d, ok, w in used:
                dev = d - fused
                dev *= dev
                dev *= w
                dev[~ok] = 0.0
                spread_sum += dev
            var += spread_sum / den
        sigma = np.where(den > 0, np.sqrt(var), np.float32(np.nan))
    return fused.astype(np.float32), sigma.astype(np.float32)
