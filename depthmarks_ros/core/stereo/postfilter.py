"""Post-filters on OpenCV fixed-point disparities (ROS-free): right matcher, WLS, left-right check.

All maps are OpenCV's raw output: (H, W) int16, disparity x 16, ``(min_disparity - 1) * 16`` where
invalid. ``PostFilter.run`` matches left and right in parallel (two threads; OpenCV releases the
GIL) and returns float disparities (px, NaN invalid).
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Optional, Tuple

import numpy as np


def fixed_to_float(raw: np.ndarray, min_disparity: int) -> np.ndarray:
    """OpenCV int16 x16 disparity -> float32 px, NaN below ``min_disparity`` (invalid)."""
    d = raw.astype(np.float32) * np.float32(1.0 / 16.0)
    d[raw < min_disparity * 16] = np.nan
    return d


def lr_difference(disp_left: np.ndarray, disp_right: np.ndarray) -> np.ndarray:
    """|d_L(x) - d_R(x - d_L(x))| per left pixel, (H, W) float32, NaN where either is invalid.

    ``disp_right`` holds positive disparities indexed by right-image pixels.
    """
    h, w = disp_left.shape
    xs = np.arange(w, dtype=np.float32)[None, :] - disp_left
    xr = np.round(np.nan_to_num(xs, nan=-1)).astype(np.int64)
    inside = (xr >= 0) & (xr < w) & np.isfinite(disp_left)
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    dr = np.full((h, w), np.nan, np.float32)
    dr[inside] = disp_right[rows[inside], xr[inside]]
    return np.abs(disp_left - dr)


def lr_consistent(diff: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """Left-right check: (H, W) bool, True where the two maps agree within ``tolerance`` px."""
    return np.nan_to_num(diff, nan=np.inf) <= tolerance


class PostFilter:
    """Right matcher (+ optional WLS) built from a left OpenCV matcher (cv2.ximgproc)."""

    def __init__(self, left_matcher, wls: bool, wls_lambda: float = 8000.0, wls_sigma: float = 1.5):
        import cv2
        self.left = left_matcher
        self.right = cv2.ximgproc.createRightMatcher(left_matcher)
        self.wls = None
        if wls:
            self.wls = cv2.ximgproc.createDisparityWLSFilter(left_matcher)
            self.wls.setLambda(wls_lambda)
            self.wls.setSigmaColor(wls_sigma)

    def run(self, pool: Executor, left: np.ndarray, right: np.ndarray, min_disparity: int
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(left disparity, right disparity, WLS confidence in [0, 1] or None), (H, W) float32 each.

        With WLS the left disparity is the filtered one, NaN where the filter's confidence is 0.
        """
        fl = pool.submit(self.left.compute, left, right)
        fr = pool.submit(self.right.compute, right, left)
        raw_l, raw_r = fl.result(), fr.result()
        # the right matcher searches negated disparities; its invalid value is below its own minimum
        disp_right = -raw_r.astype(np.float32) * np.float32(1.0 / 16.0)
        disp_right[raw_r < self.right.getMinDisparity() * 16] = np.nan
        if self.wls is None:
            return fixed_to_float(raw_l, min_disparity), disp_right, None
        filtered = self.wls.filter(raw_l, left, disparity_map_right=raw_r)
        conf = self.wls.getConfidenceMap().astype(np.float32) / 255.0
        disp = fixed_to_float(filtered, min_disparity)
        disp[conf <= 0] = np.nan
        return disp, disp_right, conf
