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
    finite = np.all(np.isfinite(uv), axis=1)
    iuv = np.zeros((n, 2), np.int64)
    iuv[finite] = np.round(uv[finite]).astype(np.int64)   # (half to even, as Python's round)
    inside = finite & (iuv[:, 0] >= 0) & (iuv[:, 0] < w) & (iuv[:, 1] >= 0) & (iuv[:, 1] < h)
    if not inside.any():
        return z, spread
    # all windows at once: (M, k) samples, k = (2 radius + 1)^2; outside the image = invalid
    off = np.arange(-radius, radius + 1)
    du, dv = np.meshgrid(off, off)
    cols = iuv[inside, 0:1] + du.ravel()[None, :]
    rows = iuv[inside, 1:2] + dv.ravel()[None, :]
    in_img = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    cols, rows = np.clip(cols, 0, w - 1), np.clip(rows, 0, h - 1)
    vals = np.where(in_img, depth[rows, cols], np.nan)
    vals[~(vals > 0)] = np.nan                              # zero, negative (and NaN) depth: invalid
    vals[~np.isfinite(vals)] = np.nan
    has = np.isfinite(vals).any(axis=1)
    if not has.any():
        return z, spread
    vals, rows, cols = vals[has], rows[has], cols[has]
    near = np.nanmin(vals, axis=1, keepdims=True)
    in_cluster = vals <= near + cluster_gap + 0.05 * near        # False for NaN
    cluster = np.where(in_cluster, vals, np.nan)
    med = np.nanmedian(cluster, axis=1)
    mad = np.nanmedian(np.abs(cluster - med[:, None]), axis=1) * 1.4826
    if sigma_map is not None:
        sw = np.where(in_cluster, np.asarray(sigma_map, np.float32)[rows, cols], np.nan)
        sw[~np.isfinite(sw)] = np.nan
        counted = np.isfinite(sw).any(axis=1)
        mean_sw = np.full(len(mad), -np.inf)
        mean_sw[counted] = np.nanmean(sw[counted], axis=1)
        mad = np.maximum(mad, mean_sw)
    idx = np.flatnonzero(inside)[has]
    z[idx], spread[idx] = med, mad
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
