"""Disparity from a rectified grey pair, using both cores (ROS-free).

Without post-filters the image is matched in ``strips`` overlapping horizontal bands in
parallel threads (parallel.py). With ``lr_check`` or ``wls_filter`` the left and right
disparity maps are computed in parallel instead (postfilter.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.backend import StereoBackend
from depthmarks_ros.core.stereo.confidence import confidence_map
from depthmarks_ros.core.stereo.params import StereoParams, create_opencv_matcher
from depthmarks_ros.core.stereo.parallel import compute_in_strips
from depthmarks_ros.core.stereo.postfilter import PostFilter, fixed_to_float, lr_consistent, lr_difference


@dataclass
class StereoResult:
    disparity: np.ndarray        # (H, W) float32 px, NaN where invalid
    confidence: Optional[np.ndarray]  # (H, W) float32 in [0, 1], 0 where invalid; None if not asked for
    valid_window: Tuple[int, int, int, int]  # x, y, width, height (as stereo_image_proc)


def valid_window(p: StereoParams, width: int, height: int) -> Tuple[int, int, int, int]:
    """Region where disparities can be valid (stereo_image_proc's definition)."""
    border = p.correlation_window_size // 2
    left = p.disparity_range + p.min_disparity + border - 1
    margin = border + p.min_disparity if p.min_disparity >= 0 else max(border, -p.min_disparity)
    right = width - 1 - margin
    top, bottom = border, height - 1 - border
    return max(left, 0), top, max(right - left, 0), max(bottom - top, 0)


def match_padded(match, left: np.ndarray, right: np.ndarray, pad: int):
    """``match(left, right)`` on the pair padded on the left by ``pad`` columns (replicated border), its
    output cropped back to the images' columns: an (H, W + pad) array, or a tuple of them (None kept),
    each returned as a contiguous (H, W) array. OpenCV's matchers leave the first min_disparity +
    disparity_range columns without a value; the pad moves that band onto the cropped columns. ``pad``
    <= 0: ``match`` on the pair as it is. The one pad-match-crop of the stereo code (the census
    backend's half-size matcher, the refinement network's classical disparity, bench_stereo's anchor)."""
    if pad <= 0:
        return match(left, right)
    import cv2
    out = match(cv2.copyMakeBorder(left, 0, 0, pad, 0, cv2.BORDER_REPLICATE),
                cv2.copyMakeBorder(right, 0, 0, pad, 0, cv2.BORDER_REPLICATE))

    def crop(a):
        return None if a is None else np.ascontiguousarray(a[:, pad:])
    return tuple(crop(a) for a in out) if isinstance(out, tuple) else crop(out)


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
        self._post = None
        if params.lr_check or params.wls_filter:
            self._post = PostFilter(create_opencv_matcher(params), params.wls_filter,
                                    params.wls_lambda, params.wls_sigma)

    def compute_raw(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """OpenCV fixed-point disparity (H, W) int16 (x16) of the whole image, matched in strips."""
        return compute_in_strips([m.compute for m in self._strip_matchers], self._pool, left, right,
                                 self.params.correlation_window_size)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True) -> StereoResult:
        """Disparity (+ confidence unless ``confidence`` is False) of a rectified pair (uint8 grey
        (H, W), same size)."""
        if left.shape != right.shape:
            raise ValueError(f'left and right images differ in size: {left.shape} vs {right.shape}')
        if left.ndim != 2 or left.dtype != np.uint8:
            raise ValueError('stereo matching needs single-channel uint8 images')
        p = self.params
        lr_diff = wls_conf = None
        if self._post is not None:
            disp, disp_right, wls_conf = self._post.run(self._pool, left, right, p.min_disparity)
            lr_diff = lr_difference(disp, disp_right)
        else:
            disp = fixed_to_float(self.compute_raw(left, right), p.min_disparity)
        conf = confidence_map(left, disp, p.correlation_window_size, lr_diff, wls_conf) if confidence else None
        if p.lr_check:
            bad = ~lr_consistent(lr_diff)
            disp[bad] = np.nan
            if conf is not None:
                conf[bad] = 0.0
        h, w = left.shape
        return StereoResult(disp, conf, valid_window(p, w, h))

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class OpenCVBackend(StereoBackend):
    """Backend ``opencv``: the OpenCV matchers of :class:`StereoMatcher` (BM / SGBM / SGBM_3WAY /
    HH4 by ``stereo_algorithm``, strips, LR check, WLS) with their confidence."""

    name = 'opencv'

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2):
        self.matcher = StereoMatcher(params, threads)

    @property
    def params(self) -> StereoParams:
        return self.matcher.params

    def set_params(self, params: StereoParams) -> None:
        self.matcher.set_params(params)

    def valid_window(self, width: int, height: int) -> Tuple[int, int, int, int]:
        return valid_window(self.params, width, height)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True):
        r = self.matcher.compute(left, right, confidence=confidence)
        return r.disparity, r.confidence

    def close(self) -> None:
        self.matcher.close()
