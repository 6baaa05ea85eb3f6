"""Per-pixel stereo confidence in [0, 1] (ROS-free).

conf = texture term x left-right term (x WLS confidence when that filter runs), 0 where invalid:

* texture: 1 - exp(-s / 8) with s the local grey-level standard deviation over the matching
  window (flat regions cannot be matched reliably);
* left-right: exp(-|d_L(x) - d_R(x - d_L(x))|) when a right disparity map exists (occlusions and
  mismatches disagree), and ``consistent`` = that difference <= 1 px.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def local_std(gray: np.ndarray, window: int) -> np.ndarray:
    import cv2
    g = gray.astype(np.float32)
    k = (window, window)
    mean = cv2.boxFilter(g, -1, k)
    sq = cv2.boxFilter(g * g, -1, k)
    return np.sqrt(np.maximum(sq - mean * mean, 0))


def lr_difference(disp_left: np.ndarray, disp_right: np.ndarray) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| per left pixel (NaN where either is invalid)."""
    h, w = disp_left.shape
    xs = np.arange(w, dtype=np.float32)[None, :] - disp_left
    xr = np.round(np.nan_to_num(xs, nan=-1)).astype(np.int64)
    inside = (xr >= 0) & (xr < w) & np.isfinite(disp_left)
    rows = np.repeat(np.arange(h)[:, None], w, axis=1)
    dr = np.full((h, w), np.nan, np.float32)
    dr[inside] = disp_right[rows[inside], xr[inside]]
    return np.abs(disp_left - dr)


def confidence_map(left_gray: np.ndarray, disp_left: np.ndarray, disp_right: Optional[np.ndarray],
                   window: int, wls_confidence: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(confidence (H, W) float32, left-right consistent mask or None)."""
    conf = 1.0 - np.exp(-local_std(left_gray, max(window, 3)) / 8.0)
    consistent = None
    if disp_right is not None:
        diff = lr_difference(disp_left, disp_right)
        conf *= np.exp(-np.nan_to_num(diff, nan=np.inf))
        consistent = np.nan_to_num(diff, nan=np.inf) <= 1.0
    if wls_confidence is not None:
        conf *= wls_confidence
    conf[~np.isfinite(disp_left)] = 0.0
    return conf.astype(np.float32), consistent
