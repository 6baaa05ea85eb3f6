"""Depth completion of a sparse LiDAR depth image (ROS-free).

Classical (the IP-Basic family, Ku et al., "In Defense of Classical Image Processing: Fast Depth
Completion on the CPU", CRV 2018): work on *inverted* depth (max_depth - d) so that grey
dilation prefers near points, then dilate with a diamond kernel, close small gaps, fill
remaining holes with growing full kernels, median and Gaussian blur valid regions, and invert
back. Written from the paper's description.

Image-guided: the classical result refined with a guided filter whose guide is the RGB image
(depth edges snap to image edges), with the measured LiDAR pixels put back afterwards.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

DIAMOND_5 = np.array([[0, 0, 1, 0, 0],
                      [0, 1, 1, 1, 0],
                      [1, 1, 1, 1, 1],
                      [0, 1, 1, 1, 0],
                      [0, 0, 1, 0, 0]], np.uint8)


def _full(n: int) -> np.ndarray:
    return np.ones((n, n), np.uint8)


def complete_classical(sparse: np.ndarray, max_depth: float = 100.0, extend_to_top: bool = False,
                       blur: bool = True) -> np.ndarray:
    """(H, W) float32 sparse depth (NaN = none) -> dense float32 depth (NaN where nothing reached)."""
    import cv2
    d = np.nan_to_num(np.asarray(sparse, np.float32), nan=0.0)
    valid = d > 0.1
    inv = np.where(valid, np.float32(max_depth) - d, 0).astype(np.float32)
    # 1. dilate with a diamond: fills the gaps between scan points
    inv = cv2.dilate(inv, DIAMOND_5)
    # 2. close small holes
    inv = cv2.morphologyEx(inv, cv2.MORPH_CLOSE, _full(5))
    # 3. fill remaining small holes with a 7x7 dilation where still empty
    np.copyto(inv, cv2.dilate(inv, _full(7)), where=inv < 0.1)
    # 4. optionally extend the top-most measurement up to the image top (outdoor scenes)
    if extend_to_top:
        h, w = inv.shape
        has = inv > 0.1
        top = np.where(has.any(axis=0), has.argmax(axis=0), h)
        for c in np.nonzero(top < h)[0]:
            inv[:top[c], c] = inv[top[c], c]
    # 5. large hole fill
    np.copyto(inv, cv2.dilate(inv, _full(31)), where=inv < 0.1)
    if blur:
        # 6. median blur removes outliers, Gaussian smooths; only inside valid regions
        np.copyto(inv, cv2.medianBlur(inv, 5), where=inv > 0.1)
        np.copyto(inv, cv2.GaussianBlur(inv, (5, 5), 0), where=inv > 0.1)
    out = np.where(inv > 0.1, np.float32(max_depth) - inv, np.nan).astype(np.float32)
    return out


def complete_guided(sparse: np.ndarray, rgb: np.ndarray, max_depth: float = 100.0,
                    radius: int = 4, eps: float = 1e-3) -> np.ndarray:
    """Classical completion refined by a guided filter on the RGB image (same size)."""
    import cv2
    dense = complete_classical(sparse, max_depth)
    valid = np.isfinite(dense)
    if not valid.any():
        return dense
    guide = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    guide = guide.astype(np.float32) / 255.0
    # filter inverse depth (edges are sharper there); holes are filled by the classical pass
    inv = np.where(valid, 1.0 / np.maximum(dense, 1e-3), 0).astype(np.float32)
    filt = cv2.ximgproc.guidedFilter(guide, inv, radius, eps)
    out = np.where(valid & (filt > 1e-6), 1.0 / np.maximum(filt, 1e-6), np.nan).astype(np.float32)
    measured = np.isfinite(sparse)
    out[measured] = sparse[measured]
    return out


def distance_to_measurement(sparse: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance in pixels from each pixel to the nearest measured one."""
    import cv2
    none = (~np.isfinite(sparse)).astype(np.uint8)
    if none.all():
        return np.full(sparse.shape, np.inf, np.float32)
    return cv2.distanceTransform(none, cv2.DIST_L2, 3)


def complete(sparse: np.ndarray, method: str = 'classical', rgb: Optional[np.ndarray] = None,
             max_depth: float = 100.0) -> np.ndarray:
    if method == 'classical':
        return complete_classical(sparse, max_depth)
    if method == 'guided':
        if rgb is None:
            raise ValueError('guided completion needs the RGB image')
        return complete_guided(sparse, rgb, max_depth)
    raise ValueError(f"unknown completion method {method!r}: use 'classical' or 'guided'")
