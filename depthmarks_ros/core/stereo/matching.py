"""Disparity from a rectified grey pair, using both cores (ROS-free).

Without post-filters the image is split into ``strips`` horizontal bands with overlapping
margins, matched in parallel threads (OpenCV releases the GIL) and stitched; away from the
strip borders the result equals the unsplit computation (tested). With ``lr_check`` or
``wls_filter`` the left and right disparity maps are computed in parallel instead.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.confidence import confidence_map
from depthmarks_ros.core.stereo.params import StereoParams, create_opencv_matcher


@dataclass
class StereoResult:
    disparity: np.ndarray        # (H, W) float32 px, NaN where invalid
    confidence: np.ndarray       # (H, W) float32 in [0, 1], 0 where invalid
    valid_window: Tuple[int, int, int, int]  # x, y, width, height (as stereo_image_proc)


def valid_window(p: StereoParams, width: int, height: int) -> Tuple[int, int, int, int]:
    """Region where disparities can be valid (stereo_image_proc's definition)."""
    border = p.correlation_window_size // 2
    left = p.disparity_range + p.min_disparity + border - 1
    margin = border + p.min_disparity if p.min_disparity >= 0 else max(border, -p.min_disparity)
    right = width - 1 - margin
    top, bottom = border, height - 1 - border
    return max(left, 0), top, max(right - left, 0), max(bottom - top, 0)


def _fixed_to_float(raw: np.ndarray, min_disparity: int) -> np.ndarray:
    d = raw.astype(np.float32) * np.float32(1.0 / 16.0)
    d[raw < min_disparity * 16] = np.nan
    return d


class StereoMatcher:
    """Reusable matcher: ``compute(left, right)`` on uint8 grey images of equal size."""

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2):
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix='stereo')
        self.set_params(params or StereoParams())

    def set_params(self, params: StereoParams) -> None:
        params.validate()
        self.params = params
        n = params.effective_strips(self.threads)
        self._strip_matchers = [create_opencv_matcher(params) for _ in range(n)]
        self._left = create_opencv_matcher(params)
        self._right = None
        self._wls = None
        if params.lr_check or params.wls_filter:
            import cv2
            self._right = cv2.ximgproc.createRightMatcher(self._left)
            if params.wls_filter:
                self._wls = cv2.ximgproc.createDisparityWLSFilter(self._left)
                self._wls.setLambda(params.wls_lambda)
                self._wls.setSigmaColor(params.wls_sigma)

    # ------------------------------------------------------------------ raw matching
    def _strip_bounds(self, height: int) -> List[Tuple[int, int, int, int]]:
        """(src_top, src_bottom, keep_top, keep_bottom) per strip; keep rows are in image rows."""
        n = min(len(self._strip_matchers), max(height // 32, 1))
        margin = self.params.correlation_window_size // 2 + 24
        cuts = np.linspace(0, height, n + 1).astype(int)
        out = []
        for i in range(n):
            k0, k1 = cuts[i], cuts[i + 1]
            out.append((max(k0 - margin, 0), min(k1 + margin, height), k0, k1))
        return out

    def compute_raw(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """OpenCV fixed-point disparity (int16, x16) of the whole image, matched in strips."""
        bounds = self._strip_bounds(left.shape[0])
        if len(bounds) == 1:
            return self._strip_matchers[0].compute(left, right)
        futures = [self._pool.submit(self._strip_matchers[i].compute, left[s0:s1], right[s0:s1])
                   for i, (s0, s1, _k0, _k1) in enumerate(bounds)]
        out = np.empty(left.shape[:2], np.int16)
        for f, (s0, _s1, k0, k1) in zip(futures, bounds):
            out[k0:k1] = f.result()[k0 - s0:k1 - s0]
        return out

    # ------------------------------------------------------------------ full result
    def compute(self, left: np.ndarray, right: np.ndarray) -> StereoResult:
        """Disparity + confidence of a rectified pair (uint8 grey, same size)."""
        if left.shape != right.shape:
            raise ValueError(f'left and right images differ in size: {left.shape} vs {right.shape}')
        if left.ndim != 2 or left.dtype != np.uint8:
            raise ValueError('stereo matching needs single-channel uint8 images')
        p = self.params
        disp_right = None
        if self._right is not None:
            fl = self._pool.submit(self._left.compute, left, right)
            fr = self._pool.submit(self._right.compute, right, left)
            raw_l, raw_r = fl.result(), fr.result()
            if self._wls is not None:
                filtered = self._wls.filter(raw_l, left, disparity_map_right=raw_r)
                wls_conf = self._wls.getConfidenceMap().astype(np.float32) / 255.0
                disp = _fixed_to_float(filtered, p.min_disparity)
                disp[wls_conf <= 0] = np.nan
            else:
                disp = _fixed_to_float(raw_l, p.min_disparity)
                wls_conf = None
            # OpenCV's right matcher returns negated disparities
            disp_right = _fixed_to_float(-raw_r, p.min_disparity)
        else:
            disp = _fixed_to_float(self.compute_raw(left, right), p.min_disparity)
            wls_conf = None
        conf, consistent = confidence_map(left, disp, disp_right, p.correlation_window_size, wls_conf)
        if p.lr_check and consistent is not None:
            disp[~consistent] = np.nan
            conf[~consistent] = 0.0
        h, w = left.shape
        return StereoResult(disp, conf, valid_window(p, w, h))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
