"""LiDAR points to a sparse depth image with a z-buffer (ROS-free)."""
from __future__ import annotations

from typing import Tuple

import numpy as np

from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.transforms import apply_transform


def project_points(points_cam: np.ndarray, camera: PinholeCamera, min_depth: float = 0.1
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of points in the camera optical frame.

    points_cam: (N, 3). Returns (u (M,) int, v (M,) int, z (M,) float32, index (M,) into the
    input) for points in front of the camera (z > min_depth), inside the image.
    """
    pts = np.asarray(points_cam, dtype=np.float32).reshape(-1, 3)
    P = camera.P.astype(np.float32)
    z = pts @ P[2, :3] + P[2, 3]
    front = np.isfinite(z) & (pts[:, 2] > min_depth)
    idx = np.nonzero(front)[0]
    p = pts[idx]
    zz = z[idx]
    u = (p @ P[0, :3] + P[0, 3]) / zz
    v = (p @ P[1, :3] + P[1, 3]) / zz
    ui = np.floor(u + 0.5).astype(np.int64)
    vi = np.floor(v + 0.5).astype(np.int64)
    inside = (ui >= 0) & (ui < camera.width) & (vi >= 0) & (vi < camera.height)
    return ui[inside], vi[inside], pts[idx[inside], 2], idx[inside]


def sparse_depth_image(points_lidar: np.ndarray, lidar2cam: np.ndarray, camera: PinholeCamera,
                       min_depth: float = 0.1) -> np.ndarray:
    """Project LiDAR points (N, 3, lidar frame) into a (H, W) float32 depth image, NaN elsewhere;
    ``lidar2cam`` (4x4) maps LiDAR points into the camera's optical frame.

    Points behind the camera or outside the image are dropped; where several points hit one pixel
    the nearest wins (z-buffer).
    """
    pts = apply_transform(lidar2cam, np.asarray(points_lidar, np.float32))
    u, v, z, _ = project_points(pts, camera, min_depth)
    depth = np.full((camera.height, camera.width), np.nan, np.float32)
    if z.size == 0:
        return depth
    flat = v * camera.width + u
    order = np.lexsort((z, flat))          # by pixel, then nearest first
    flat_sorted = flat[order]
    first = np.ones(order.size, bool)
    first[1:] = flat_sorted[1:] != flat_sorted[:-1]
    winners = order[first]
    depth.ravel()[flat[winners]] = z[winners]
    return depth


# Camera-visibility filter (docs/depth_fusion.md "Camera visibility"): a return farther than
# VISIBILITY_REL x + VISIBILITY_ABS beyond the nearest return in a small window around its pixel is a
# return the camera cannot see (LiDAR/camera parallax: seen past a nearer surface's edge, it projects
# among that surface's pixels), as in the KITTI depth-completion ground truth and common LiDAR-camera
# fusion code.
VISIBILITY_REL = 0.1
VISIBILITY_ABS = 0.3        # m


def camera_visible(sparse: np.ndarray, rows: int, cols: int = 3) -> np.ndarray:
    """(H, W) bool: measured pixels of ``sparse`` (NaN = none) whose depth z is at most
    (1 + VISIBILITY_REL) z_min + VISIBILITY_ABS, z_min the nearest measured depth in the ``rows`` x
    ``cols`` window around the pixel (odd sizes; the window should span about one gap between the
    LiDAR's scan lines in the image, so that a nearer surface's returns above and below cover it)."""
    import cv2
    if rows < 1 or cols < 1 or rows % 2 == 0 or cols % 2 == 0:
        raise ValueError(f'visibility window must be odd sizes >= 1, got {rows} x {cols}')
    fin = np.isfinite(sparse)
    out = np.zeros(sparse.shape, bool)
    band = np.flatnonzero(fin.any(axis=1))            # only the rows the LiDAR reaches
    if band.size == 0:
        return out
    r0, r1 = int(band[0]), int(band[-1]) + 1
    f = fin[r0:r1]
    z = np.where(f, sparse[r0:r1], np.float32(1e6)).astype(np.float32)
    zmin = cv2.erode(z, np.ones((rows, cols), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1e6)
    out[r0:r1] = f & (z <= zmin * np.float32(1 + VISIBILITY_REL) + np.float32(VISIBILITY_ABS))
    return out


def visibility_filter(sparse: np.ndarray, rows: int, cols: int = 3) -> np.ndarray:
    """``sparse`` with the returns :func:`camera_visible` rejects set to NaN (a copy); ``rows`` 0: unchanged."""
    if rows == 0:
        return sparse
    return np.where(camera_visible(sparse, rows, cols), sparse, np.float32(np.nan)).astype(np.float32)
