"""Stereo parameters with stereo_image_proc's names, meanings and ranges (where they overlap).

``stereo_algorithm``: 0 block matching (BM), 1 semi-global block matching (SGBM; ``full_dp``
selects OpenCV's full 8-path MODE_HH as in stereo_image_proc), and ours: 2 SGBM_3WAY, 3 HH4.
Ranges follow stereo_image_proc's disparity node. Our defaults differ where it pays (a 5-px
SGBM_3WAY window with P1 = 8 w^2, P2 = 32 w^2): see docs/stereo_depth.md.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Dict, Tuple

ALGORITHMS = {0: 'bm', 1: 'sgbm', 2: 'sgbm_3way', 3: 'hh4'}

# name -> (min, max) as in stereo_image_proc (ours marked)
RANGES: Dict[str, Tuple[float, float]] = {
    'stereo_algorithm': (0, 3),
    'prefilter_size': (5, 255),
    'prefilter_cap': (1, 63),
    'correlation_window_size': (5, 255),
    'min_disparity': (-2048, 2048),
    'disparity_range': (32, 4096),
    'texture_threshold': (0, 10000),
    'speckle_size': (0, 1000),
    'speckle_range': (0, 31),
    'disp12_max_diff': (0, 128),
    'uniqueness_ratio': (0.0, 100.0),
    'P1': (0.0, 4000.0),
    'P2': (0.0, 4000.0),
}


@dataclass
class StereoParams:
    stereo_algorithm: int = 2
    prefilter_size: int = 9
    prefilter_cap: int = 31
    correlation_window_size: int = 5
    min_disparity: int = 0
    disparity_range: int = 128
    texture_threshold: int = 10
    speckle_size: int = 100
    speckle_range: int = 2
    disp12_max_diff: int = 1
    uniqueness_ratio: float = 10.0
    P1: float = 200.0
    P2: float = 800.0
    full_dp: bool = False
    # ours
    strips: int = 0                 # horizontal strips matched in parallel; 0 = auto (see effective_strips)
    lr_check: bool = False          # left-right consistency check (invalidates occlusions)
    wls_filter: bool = False        # edge-aware WLS post-filter (cv2.ximgproc); implies a right matcher
    wls_lambda: float = 8000.0
    wls_sigma: float = 1.5

    def validate(self) -> None:
        for name, (lo, hi) in RANGES.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f'{name} = {v} is outside [{lo}, {hi}]')
        for name in ('prefilter_size', 'correlation_window_size'):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f'{name} must be odd, got {getattr(self, name)}')
        if self.disparity_range % 16:
            raise ValueError(f'disparity_range must be a multiple of 16, got {self.disparity_range}')
        if self.stereo_algorithm != 0 and self.P2 <= self.P1:
            raise ValueError(f'P2 ({self.P2}) must be greater than P1 ({self.P1})')
        if self.strips < 0:
            raise ValueError('strips must be >= 0 (0 = auto)')

    def effective_strips(self, threads: int) -> int:
        """Auto: split only SGBM/HH (OpenCV runs them on one core); BM and SGBM_3WAY are already
        parallel inside OpenCV, where strips measured slower (benchmarks/bench_stereo.py)."""
        if self.strips:
            return self.strips
        return threads if self.stereo_algorithm == 1 else 1

    @property
    def algorithm_name(self) -> str:
        return ALGORITHMS[self.stereo_algorithm]

    def replace(self, **changes) -> 'StereoParams':
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        p = StereoParams(**values)
        p.validate()
        return p


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
