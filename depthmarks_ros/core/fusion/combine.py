"""Inverse-variance fusion of several depth sources (ROS-free).

D = sum_i w_i D_i / sum_i w_i with w_i = 1 / sigma_i^2 and sigma = sqrt(1 / sum_i w_i): the
maximum-likelihood combination of independent Gaussian estimates. Sources missing at a pixel
(NaN depth or sigma) do not count there.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def fuse_inverse_variance(depths: Sequence[np.ndarray], sigmas: Sequence[np.ndarray]
                          ) -> Tuple[np.ndarray, np.ndarray]:
    """(depth (H, W), sigma (H, W)) float32; NaN where no source has a value."""
    if len(depths) != len(sigmas) or not depths:
        raise ValueError('need one sigma per depth source, and at least one source')
    shape = depths[0].shape
    num = np.zeros(shape, np.float64)
    den = np.zeros(shape, np.float64)
    for d, s in zip(depths, sigmas):
        if d.shape != shape or s.shape != shape:
            raise ValueError(f'depth sources differ in size: {d.shape} / {s.shape} vs {shape}')
        ok = np.isfinite(d) & np.isfinite(s) & (s > 0) & (d > 0)
        w = np.zeros(shape)
        w[ok] = 1.0 / (s[ok].astype(np.float64) ** 2)
        num[ok] += w[ok] * d[ok]
        den += w
    with np.errstate(divide='ignore', invalid='ignore'):
        fused = np.where(den > 0, num / den, np.nan)
        sigma = np.where(den > 0, 1.0 / np.sqrt(den), np.nan)
    return fused.astype(np.float32), sigma.astype(np.float32)
