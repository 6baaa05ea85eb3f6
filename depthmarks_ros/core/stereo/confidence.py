"""Per-pixel stereo confidence in [0, 1] (ROS-free).

conf = texture term x left-right term (x WLS confidence when that filter runs), 0 where invalid:

* texture: 1 - exp(-s / 8) with s the local grey-level standard deviation over the matching
  window (flat regions cannot be matched reliably);
* left-right: exp(-|d_L(x) - d_R(x - d_L(x))|) when a right disparity map exists (occlusions and
  mismatches disagree).
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def local_std(gray: np.ndarray, window: int) -> np.ndarray:
    """(H, W) float32 grey-level standard deviation over a ``window`` x ``window`` box."""
    import cv2
    g = gray.astype(np.float32)
    k = (window, window)
    mean = cv2.boxFilter(g, -1, k)
    sq = cv2.sqrBoxFilter(g, -1, k)
    return np.sqrt(np.maximum(sq - mean * mean, 0))


def confidence_map(left_gray: np.ndarray, disp_left: np.ndarray, window: int,
                   lr_diff: Optional[np.ndarray] = None, wls_confidence: Optional[np.ndarray] = None
                   ) -> np.ndarray:
    """Confidence (H, W) float32 in [0, 1] of ``disp_left`` (H, W, NaN invalid -> 0).

    ``lr_diff``: |d_L - d_R| per left pixel (postfilter.lr_difference), NaN = no right match.
    """
    conf = 1.0 - np.exp(local_std(left_gray, max(window, 3)) * np.float32(-1.0 / 8.0))
    if lr_diff is not None:
        conf *= np.exp(-np.nan_to_num(lr_diff, nan=np.inf))
    if wls_confidence is not None:
        conf *= wls_confidence
    conf[~np.isfinite(disp_left)] = 0.0
    return conf.astype(np.float32, copy=False)
