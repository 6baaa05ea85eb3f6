"""Stereo parameters with stereo_image_proc's names, meanings and ranges (where they overlap).

``stereo_algorithm``: 0 block matching (BM), 1 semi-global block matching (SGBM; ``full_dp``
selects OpenCV's full 8-path MODE_HH as in stereo_image_proc), and ours: 2 SGBM_3WAY, 3 HH4.
Ranges follow stereo_image_proc's disparity node. Our defaults differ where it pays (a 5-px
SGBM_3WAY window with P1 = 8 w^2, P2 = 32 w^2): see docs/stereo_depth.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from depthmarks_ros.core.params import ParamSet, multiple_of, odd, param

ALGORITHMS = {0: 'bm', 1: 'sgbm', 2: 'sgbm_3way', 3: 'hh4'}


@dataclass
class StereoParams(ParamSet):
    """The matcher's parameters: the one spec of stereo_depth's matching parameters (ranges as in
    stereo_image_proc's disparity node; ours: strips, lr_check, wls_*)."""
    stereo_algorithm: int = param(2, '0 block matching, 1 SGBM (full_dp: 8 paths), 2 SGBM_3WAY, 3 HH4',
                                  min=0, max=3)
    prefilter_size: int = param(9, 'BM: normalisation window of the pre-filter (odd)', min=5, max=255,
                                check=odd, check_text='odd')
    prefilter_cap: int = param(31, 'Bound on the pre-filtered pixel values', min=1, max=63)
    correlation_window_size: int = param(5, 'Matching window (odd)', min=5, max=255, check=odd,
                                         check_text='odd')
    min_disparity: int = param(0, 'Smallest disparity searched (px)', min=-2048, max=2048)
    disparity_range: int = param(128, 'Number of disparities searched (multiple of 16)', min=32, max=4096,
                                 check=multiple_of(16), check_text='multiple of 16')
    texture_threshold: int = param(10, 'BM: minimum texture of a window', min=0, max=10000)
    speckle_size: int = param(100, 'Largest speckle (px) to remove', min=0, max=1000)
    speckle_range: int = param(2, 'Disparity variation allowed inside a connected component', min=0, max=31)
    disp12_max_diff: int = param(1, 'Left-right check tolerance inside OpenCV (px, 0 = off)', min=0, max=128)
    uniqueness_ratio: float = param(10.0, 'Margin (%) by which the best match must win', min=0.0, max=100.0)
    P1: float = param(200.0, 'SGBM: penalty for disparity changes of 1 between neighbours (< P2)',
                      min=0.0, max=4000.0)
    P2: float = param(800.0, 'SGBM: penalty for larger disparity changes (> P1)', min=0.0, max=4000.0)
    full_dp: bool = param(False, 'SGBM: full 8-direction dynamic programming (MODE_HH)')
    # ours
    strips: int = param(0, 'Horizontal strips matched in parallel (0 = auto: split only SGBM)', min=0, max=16)
    lr_check: bool = param(False, 'Left-right consistency check (drops occlusions and mismatches)')
    wls_filter: bool = param(False, 'Edge-aware WLS post-filter (OpenCV ximgproc; implies a right matcher)')
    wls_lambda: float = param(8000.0, 'WLS smoothness', min=0.0, max=1e6)
    wls_sigma: float = param(1.5, 'WLS edge sensitivity', min=0.0, max=100.0)

    def cross_check(self) -> Optional[str]:
        if self.stereo_algorithm != 0 and self.P2 <= self.P1:
            return (f'P2 ({self.P2}) must be greater than P1 ({self.P1}) for SGBM '
                    f'(stereo_algorithm {self.stereo_algorithm}); set both at once to move them together')
        return None

    def effective_strips(self, threads: int) -> int:
        """Auto: split only SGBM/HH (OpenCV runs them on one core); BM and SGBM_3WAY are already
        parallel inside OpenCV, where strips measured slower (benchmarks/bench_stereo.py)."""
        if self.strips:
            return self.strips
        return threads if self.stereo_algorithm == 1 else 1

    @property
    def algorithm_name(self) -> str:
        return ALGORITHMS[self.stereo_algorithm]


def stereo_image_proc_defaults() -> StereoParams:
    """stereo_image_proc's disparity node defaults, SGBM (the peer of our benchmark)."""
    return StereoParams(stereo_algorithm=1, prefilter_size=9, prefilter_cap=31, correlation_window_size=15,
                        min_disparity=0, disparity_range=64, texture_threshold=10, speckle_size=100,
                        speckle_range=4, disp12_max_diff=0, uniqueness_ratio=15.0, P1=200.0, P2=400.0,
                        full_dp=False, strips=1)


def create_opencv_matcher(p: StereoParams):
    """The OpenCV matcher object for parameters ``p`` (left matcher)."""
    import cv2
    if p.stereo_algorithm == 0:
        m = cv2.StereoBM_create(p.disparity_range, p.correlation_window_size)
        m.setPreFilterType(cv2.STEREO_BM_PREFILTER_XSOBEL)
        m.setPreFilterSize(p.prefilter_size)
        m.setPreFilterCap(p.prefilter_cap)
        m.setMinDisparity(p.min_disparity)
        m.setTextureThreshold(p.texture_threshold)
        m.setUniquenessRatio(int(round(p.uniqueness_ratio)))
        m.setSpeckleWindowSize(p.speckle_size)
        m.setSpeckleRange(p.speckle_range)
        m.setDisp12MaxDiff(p.disp12_max_diff if p.disp12_max_diff > 0 else -1)
        return m
    mode = {1: cv2.STEREO_SGBM_MODE_HH if p.full_dp else cv2.STEREO_SGBM_MODE_SGBM,
            2: cv2.STEREO_SGBM_MODE_SGBM_3WAY, 3: cv2.STEREO_SGBM_MODE_HH4}[p.stereo_algorithm]
    return cv2.StereoSGBM_create(
        minDisparity=p.min_disparity, numDisparities=p.disparity_range, blockSize=p.correlation_window_size,
        P1=int(round(p.P1)), P2=int(round(p.P2)), disp12MaxDiff=p.disp12_max_diff if p.disp12_max_diff > 0 else -1,
        preFilterCap=p.prefilter_cap, uniquenessRatio=int(round(p.uniqueness_ratio)),
        speckleWindowSize=p.speckle_size, speckleRange=p.speckle_range, mode=mode)
