"""Lifting 2D image points to 3D with a depth image, and their covariance (ROS-free).

Used by the face and body nodes (landmarks/keypoints in the camera optical frame).

* :func:`robust_depth` reads depth around each pixel in a window and takes the median of the
  *nearest* depth cluster (occlusion-aware: a keypoint on a person in front of a wall takes the
  person's depth even when part of the window sees the wall). NaN where no valid depth.
* :func:`lift` back-projects pixels with depth and propagates a 2x2 pixel covariance and a
  depth sigma to a 3x3 covariance by first-order (Jacobian) propagation::

      X = (u - cx) Z / fx,  Y = (v - cy) Z / fy,  Z
      J = [[Z/fx, 0, (u-cx)/fx], [0, Z/fy, (v-cy)/fy], [0, 0, 1]]   (w.r.t. u, v, Z)
      Sigma_xyz = J diag(Sigma_uv, sigma_Z^2) J^T
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def robust_depth(depth: np.ndarray, uv: np.ndarray, radius: int = 3,
                 cluster_gap: float = 0.15, sigma_map: Optional[np.ndarray] = None
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """Depth at pixels (N, 2) from a window of (2*radius+1)^2 pixels.

    Returns (z (N,), spread (N,)): the median of the nearest depth cluster (values within
    ``cluster_gap`` metres plus 5% of depth of the window's nearest valid value), and that
    cluster's robust spread (1.4826 * MAD, or the mean of ``sigma_map`` there when it is
    larger). NaN where the window holds no valid depth or the pixel is outside the image.
    """
    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    n = uv.shape[0]
    z = np.full(n, np.nan, np.float32)
    spread = np.full(n, np.nan, np.float32)
    for i in range(n):
        u, v = uv[i]
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        iu, iv = int(round(u)), int(round(v))
        if not (0 <= iu < w and 0 <= iv < h):
            continue
        u0, u1 = max(iu - radius, 0), min(iu + radius + 1, w)
        v0, v1 = max(iv - radius, 0), min(iv + radius + 1, h)
        win = depth[v0:v1, u0:u1]
        valid = np.isfinite(win) & (win > 0)
        if not valid.any():
            continue
        vals = win[valid]
        near = vals.min()
        cluster = vals[vals <= near + cluster_gap + 0.05 * near]
        med = float(np.median(cluster))
        mad = float(np.median(np.abs(cluster - med))) * 1.4826
        if sigma_map is not None:
            sw = sigma_map[v0:v1, u0:u1][valid]
            sw = sw[vals <= near + cluster_gap + 0.05 * near]
            sw = sw[np.isfinite(sw)]
            if sw.size:
                mad = max(mad, float(np.mean(sw)))
        z[i], spread[i] = med, mad
    return z, spread


def lift(uv: np.ndarray, z: np.ndarray, fx: float, fy: float, cx: float, cy: float,
         cov_uv: Optional[np.ndarray] = None, sigma_z: Optional[np.ndarray] = None
         ) -> Tuple[np.ndarray, np.ndarray]:
    """Back-project pixels (N, 2) at depths (N,) to (N, 3) points and (N, 3, 3) covariances.

    cov_uv: (N, 2, 2) pixel covariance (default zero); sigma_z: (N,) depth std (default zero).
    NaN depth gives NaN point and covariance.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    n = uv.shape[0]
    du = uv[:, 0] - cx
    dv = uv[:, 1] - cy
    pts = np.stack([du * z / fx, dv * z / fy, z], axis=1)
    J = np.zeros((n, 3, 3))
    J[:, 0, 0] = z / fx
    J[:, 0, 2] = du / fx
    J[:, 1, 1] = z / fy
    J[:, 1, 2] = dv / fy
    J[:, 2, 2] = 1.0
    S = np.zeros((n, 3, 3))
    if cov_uv is not None:
        S[:, :2, :2] = np.asarray(cov_uv, dtype=np.float64).reshape(n, 2, 2)
    if sigma_z is not None:
        S[:, 2, 2] = np.asarray(sigma_z, dtype=np.float64).reshape(n) ** 2
    cov = J @ S @ np.transpose(J, (0, 2, 1))
    return pts, cov
