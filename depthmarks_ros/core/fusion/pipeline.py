"""One fusion step, shared by the depth_fusion node and the batch commands (ROS-free).

sparse LiDAR depth -> completed LiDAR depth + sigma -> (with stereo / mono) inverse-variance
fused depth + sigma.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.fusion.combine import fuse_inverse_variance
from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
from depthmarks_ros.core.fusion.projection import sparse_depth_image
from depthmarks_ros.core.fusion.uncertainty import SigmaModel, lidar_sigma, mono_sigma, stereo_sigma


@dataclass
class FusionResult:
    sparse: np.ndarray        # (H, W) float32 LiDAR z-buffer projection, NaN elsewhere
    lidar_depth: np.ndarray   # completed LiDAR depth
    lidar_sigma: np.ndarray
    depth: np.ndarray         # fused
    sigma: np.ndarray
    sources: tuple            # names of the sources used


def fuse_frame(points_lidar: np.ndarray, T_cam_lidar: np.ndarray, camera: PinholeCamera,
               rgb: Optional[np.ndarray] = None, method: str = 'classical',
               model: Optional[SigmaModel] = None, max_depth: float = 100.0,
               stereo_depth: Optional[np.ndarray] = None, stereo_confidence: Optional[np.ndarray] = None,
               stereo_focal: float = 0.0, stereo_baseline: float = 0.0,
               mono_depth: Optional[np.ndarray] = None) -> FusionResult:
    model = model or SigmaModel()
    sparse = sparse_depth_image(points_lidar, T_cam_lidar, camera)
    return fuse_sparse(sparse, rgb, method, model, max_depth, stereo_depth, stereo_confidence,
                       stereo_focal, stereo_baseline, mono_depth)


def fuse_sparse(sparse: np.ndarray, rgb: Optional[np.ndarray] = None, method: str = 'classical',
                model: Optional[SigmaModel] = None, max_depth: float = 100.0,
                stereo_depth: Optional[np.ndarray] = None, stereo_confidence: Optional[np.ndarray] = None,
                stereo_focal: float = 0.0, stereo_baseline: float = 0.0,
                mono_depth: Optional[np.ndarray] = None) -> FusionResult:
    model = model or SigmaModel()
    dense = complete(sparse, method, rgb, max_depth)
    dist = distance_to_measurement(sparse)
    s_lidar = lidar_sigma(dense, dist, model)
    depths, sigmas, names = [dense], [s_lidar], ['lidar']
    if stereo_depth is not None and stereo_baseline > 0:
        conf = stereo_confidence if stereo_confidence is not None else np.ones_like(stereo_depth)
        depths.append(stereo_depth)
        sigmas.append(stereo_sigma(stereo_depth, conf, stereo_focal, stereo_baseline, model))
        names.append('stereo')
    if mono_depth is not None:
        depths.append(mono_depth)
        sigmas.append(mono_sigma(mono_depth, model))
        names.append('mono')
    fused, sigma = fuse_inverse_variance(depths, sigmas)
    return FusionResult(sparse, dense, s_lidar, fused, sigma, tuple(names))
