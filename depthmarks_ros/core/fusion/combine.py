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
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        for d, s in zip(depths, sigmas):
            if d.shape != shape or s.shape != shape:
                raise ValueError(f'depth sources differ in size: {d.shape} / {s.shape} vs {shape}')
            s64 = s.astype(np.float64)
            w = 1.0 / (s64 * s64)
            # NaN compares False: a NaN depth or sigma does not count; nor do inf or non-positive values
            ok = np.isfinite(d) & (d > 0) & (s64 > 0) & np.isfinite(w)
            w = np.where(ok, w, 0.0)
            num += np.where(ok, w * d, 0.0)
            den += w
        fused = np.where(den > 0, num / den, np.nan)
        sigma = np.where(den > 0, 1.0 / np.sqrt(den), np.nan)
    return fused.astype(np.float32), sigma.astype(np.float32)
