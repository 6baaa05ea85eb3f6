"""Body keypoints to 3D (ROS-free): depth where it belongs to the person, else the model's guess.

Per keypoint: an occlusion-aware depth lookup (the nearest depth cluster around the pixel,
:func:`depthmarks_ros.core.lifting.robust_depth`) accepted when it lies within ``max_offset`` m of
the torso depth (the median over shoulders and hips), so depth of the background or of an
occluder far in front is rejected. Keypoints without accepted depth fall back to the model's
world landmarks (metric, hip-centred) placed at the torso: translated so that the hip centre sits
on its pixel ray at the torso depth. Source per keypoint: 1 depth, 2 model, 0 none.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.body.coco17 import TORSO
from depthmarks_ros.core.lifting import lift, robust_depth

SOURCE_NONE, SOURCE_DEPTH, SOURCE_MODEL = 0, 1, 2


def pixel_sigma(keypoints: np.ndarray, visibility: np.ndarray, rel: float = 0.015) -> np.ndarray:
    """Per-keypoint pixel std: a share of the person's size, growing as visibility drops."""
    finite = keypoints[np.all(np.isfinite(keypoints), axis=1)]
    size = float(np.ptp(finite, axis=0).max()) if len(finite) else 100.0
    return rel * max(size, 20.0) / np.clip(visibility, 0.1, 1.0)


def lift_keypoints(keypoints: np.ndarray, visibility: np.ndarray, K: np.ndarray,
                   depth: Optional[np.ndarray] = None, world: Optional[np.ndarray] = None,
                   max_offset: float = 0.6, depth_sigma: Optional[np.ndarray] = None
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(xyz (N, 3), cov (N, 3, 3), source (N,) uint8, sigma_px (N,)) in the camera optical frame."""
    n = len(keypoints)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    sig_px = pixel_sigma(keypoints, visibility)
    cov_uv = np.zeros((n, 2, 2))
    cov_uv[:, 0, 0] = cov_uv[:, 1, 1] = sig_px ** 2
    xyz = np.full((n, 3), np.nan)
    cov = np.full((n, 3, 3), np.nan)
    source = np.zeros(n, np.uint8)
    torso_z = np.nan
    if depth is not None:
        z, spread = robust_depth(depth, keypoints, radius=4, sigma_map=depth_sigma)
        torso = [i for i in TORSO if i < n and np.isfinite(z[i])]
        if torso:
            torso_z = float(np.median(z[torso]))
            ok = np.isfinite(z) & (np.abs(z - torso_z) <= max_offset)
            p, c = lift(keypoints[ok], z[ok], fx, fy, cx, cy, cov_uv[ok], np.maximum(np.nan_to_num(spread[ok]), 0.01))
            xyz[ok], cov[ok], source[ok] = p, c, SOURCE_DEPTH
    if world is not None and np.any(source != SOURCE_DEPTH):
        hips = [i for i in (23, 24) if i < n]
        hip_px = keypoints[hips].mean(axis=0)
        if not np.isfinite(torso_z):
            # no usable depth: the torso depth that makes the model's shoulder width match the pixels
            sw_m = np.linalg.norm(world[11] - world[12])
            sw_px = np.linalg.norm(keypoints[11] - keypoints[12])
            torso_z = fx * sw_m / sw_px if sw_px > 1 and sw_m > 0 else np.nan
        if np.isfinite(torso_z):
            hip_cam = np.array([(hip_px[0] - cx) / fx * torso_z, (hip_px[1] - cy) / fy * torso_z, torso_z])
            placed = world - world[hips].mean(axis=0) + hip_cam
            miss = source != SOURCE_DEPTH
            xyz[miss] = placed[miss]
            s_model = 0.05 + 0.05 * torso_z  # metres: the model's metric guess is coarse
            cov[miss] = np.eye(3) * s_model ** 2
            source[miss] = SOURCE_MODEL
    return xyz, cov, source, sig_px


def lift_part(keypoints: np.ndarray, sigma_px: np.ndarray, K: np.ndarray, depth: Optional[np.ndarray],
              anchor: Optional[np.ndarray], max_offset: float, depth_sigma: Optional[np.ndarray] = None,
              world: Optional[np.ndarray] = None, root: int = 0
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3D of a body part (hand, face): (xyz (N, 3), cov (N, 3, 3), source (N,)).

    Depth (the nearest depth cluster around each pixel) is accepted within ``max_offset`` m of the
    anchor's depth (the body's wrist or nose in 3D; without one, the median of the part's own
    depths). Points left over use the model's metric ``world`` landmarks translated so that the
    ``root`` point sits at its lifted position (or at the anchor): sigma 0.02 + 0.03 z m each axis.
    """
    n = len(keypoints)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    xyz = np.full((n, 3), np.nan)
    cov = np.full((n, 3, 3), np.nan)
    source = np.zeros(n, np.uint8)
    anchor = None if anchor is None or not np.all(np.isfinite(anchor)) else np.asarray(anchor, float)
    if depth is not None:
        z, spread = robust_depth(depth, keypoints, radius=3, sigma_map=depth_sigma)
        ref = anchor[2] if anchor is not None else (float(np.nanmedian(z)) if np.isfinite(z).any() else np.nan)
        if np.isfinite(ref):
            ok = np.isfinite(z) & (np.abs(z - ref) <= max_offset)
            cov_uv = np.zeros((int(ok.sum()), 2, 2))
            cov_uv[:, 0, 0] = cov_uv[:, 1, 1] = sigma_px[ok] ** 2
            p, c = lift(keypoints[ok], z[ok], fx, fy, cx, cy, cov_uv, np.maximum(np.nan_to_num(spread[ok]), 0.01))
            xyz[ok], cov[ok], source[ok] = p, c, SOURCE_DEPTH
    if world is not None and np.any(source != SOURCE_DEPTH):
        base = xyz[root] if source[root] == SOURCE_DEPTH else anchor
        if base is not None:
            placed = world - world[root] + base
            miss = source != SOURCE_DEPTH
            s = 0.02 + 0.03 * float(base[2])
            xyz[miss], cov[miss], source[miss] = placed[miss], np.eye(3) * s ** 2, SOURCE_MODEL
    return xyz, cov, source
