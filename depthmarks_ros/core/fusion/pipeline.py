"""One fusion step, shared by the depth_fusion node and the batch commands (ROS-free).

sparse LiDAR depth -> completed LiDAR depth + sigma -> (with stereo / mono) inverse-variance
fused depth + sigma.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.fusion.combine import fuse_inverse_variance
from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
from depthmarks_ros.core.fusion.projection import sparse_depth_image, visibility_filter
from depthmarks_ros.core.fusion.uncertainty import (SigmaModel, fused_edge_sigma, lidar_sigma_of_input, mono_sigma,
                                                   stereo_sigma)


@dataclass
class FusionResult:
    sparse: np.ndarray        # (H, W) float32 LiDAR z-buffer projection, NaN elsewhere (after the visibility filter)
    lidar_depth: np.ndarray   # completed LiDAR depth
    lidar_sigma: np.ndarray
    depth: np.ndarray         # fused
    sigma: np.ndarray
    sources: tuple            # names of the sources used


@dataclass(frozen=True)
class StereoInput:
    """Stereo depth to fuse: (H, W) metres (NaN invalid), the rectified focal length (px) and
    baseline (m) its sigma needs, and an optional (H, W) confidence in [0, 1]. Both focal and
    baseline must be positive: stereo without a baseline cannot be built."""
    depth: np.ndarray
    focal: float
    baseline: float
    confidence: Optional[np.ndarray] = None

    def __post_init__(self):
        if not (np.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f'stereo focal length must be > 0 px, got {self.focal}')
        if not (np.isfinite(self.baseline) and self.baseline > 0):
            raise ValueError(f'stereo baseline must be > 0 m, got {self.baseline}')
        if self.depth.ndim != 2:
            raise ValueError(f'stereo depth must be (H, W), got shape {self.depth.shape}')
        if self.confidence is not None and self.confidence.shape != self.depth.shape:
            raise ValueError(f'stereo confidence {self.confidence.shape} and depth {self.depth.shape} differ')


@dataclass(frozen=True)
class FusionSettings:
    """How to fuse: completion method (core.fusion.completion.METHODS), sigma model, largest depth (m),
    whether the fused sigma holds the sources' spread (core.fusion.combine: widens where they
    disagree), and the camera-visibility filter's window on the projected returns (rows x cols px,
    core.fusion.projection.camera_visible; rows 0 = off, the default)."""
    method: str = 'classical'
    model: SigmaModel = field(default_factory=SigmaModel)
    max_depth: float = 100.0
    spread: bool = True
    visibility_rows: int = 0
    visibility_cols: int = 3

    @classmethod
    def from_params(cls, p, model: Optional[SigmaModel] = None, **overrides) -> 'FusionSettings':
        """The settings that depth_fusion's parameters ``p`` (params.depth_fusion.DepthFusionParams, or
        anything with its field names) select; the node, fuse-kitti, fit-fusion and the benchmarks all
        build their settings here, so none of them drops a parameter. ``overrides``: fields to set
        otherwise (e.g. ``spread``)."""
        kw = dict(method=p.completion, max_depth=float(p.max_depth), visibility_rows=int(p.visibility_rows),
                  visibility_cols=int(p.visibility_cols))
        if model is not None:
            kw['model'] = model
        kw.update(overrides)
        return cls(**kw)


def fuse_frame(points_lidar: np.ndarray, lidar2cam: np.ndarray, camera: PinholeCamera,
               rgb: Optional[np.ndarray] = None, settings: FusionSettings = FusionSettings(), *,
               stereo: Optional[StereoInput] = None, mono_depth: Optional[np.ndarray] = None) -> FusionResult:
    """LiDAR points (N, 3) in the LiDAR frame, ``lidar2cam`` (4x4, LiDAR -> camera), the camera
    model, the RGB image (guided completion), and optional stereo / mono depth of the same size."""
    sparse = sparse_depth_image(points_lidar, lidar2cam, camera)
    return fuse_sparse(sparse, rgb, settings, stereo=stereo, mono_depth=mono_depth)


def fuse_sparse(sparse: np.ndarray, rgb: Optional[np.ndarray] = None, settings: FusionSettings = FusionSettings(),
                *, stereo: Optional[StereoInput] = None, mono_depth: Optional[np.ndarray] = None) -> FusionResult:
    model = settings.model
    sparse = visibility_filter(sparse, settings.visibility_rows, settings.visibility_cols)
    dense = complete(sparse, settings.method, rgb, settings.max_depth)
    dist = distance_to_measurement(sparse)
    s_lidar = lidar_sigma_of_input(sparse, dense, model, dist)
    depths, sigmas, names = [dense], [s_lidar], ['lidar']
    if stereo is not None:
        conf = stereo.confidence if stereo.confidence is not None else np.ones_like(stereo.depth)
        depths.append(stereo.depth)
        s_stereo = stereo_sigma(stereo.depth, conf, stereo.focal, stereo.baseline, model)
        if model.stereo_fuse_factor != 1:    # its fusion weight (SigmaModel.stereo_fuse_factor)
            s_stereo *= np.float32(model.stereo_fuse_factor)
        sigmas.append(s_stereo)
        names.append('stereo')
    if mono_depth is not None:
        depths.append(mono_depth)
        sigmas.append(mono_sigma(mono_depth, model))
        names.append('mono')
    fused, sigma = fuse_inverse_variance(depths, sigmas, settings.spread)
    if len(depths) > 1:                 # the fused-edge term and scale: only on a fusion of two sources or more
        sigma = fused_edge_sigma(fused, sigma, model)
    return FusionResult(sparse, dense, s_lidar, fused, sigma, tuple(names))
