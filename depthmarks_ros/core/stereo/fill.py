"""Hole filling of a disparity map along rows (ROS-free), KITTI's rule for "bad-2, holes filled".

A hole between two valid pixels of a row takes the smaller (background) of the two values; holes
touching the left or right border take the nearest valid value; rows without any valid pixel take
the smallest valid value of the image (0 if there is none). Used by the benchmark to score methods
of different density on equal terms and by the refinement network as its starting disparity.
"""
from __future__ import annotations

import numpy as np


def fill_holes_rows(disp: np.ndarray) -> np.ndarray:
    """(H, W) float32 copy of ``disp`` with every NaN / non-positive pixel filled (see module doc)."""
    d = np.asarray(disp, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f'fill_holes_rows needs an (H, W) map, got shape {d.shape}')
    valid = np.isfinite(d) & (d > 0)
    if valid.all():
        return d.copy()
    h, w = d.shape
    if not valid.any():
        return np.zeros_like(d)
    cols = np.arange(w, dtype=np.int32)[None, :]
    # index of the last valid pixel at or left of x (-1 none), and of the first at or right of x (w none)
    left_idx = np.maximum.accumulate(np.where(valid, cols, np.int32(-1)), axis=1)
    right_idx = np.minimum.accumulate(np.where(valid, cols, np.int32(w))[:, ::-1], axis=1)[:, ::-1]
    # values padded with +inf at both ends of every row: index -1 -> column 0, w -> column w + 1
    padded = np.full((h, w + 2), np.inf, np.float32)
    padded[:, 1:-1][valid] = d[valid]
    base = (np.arange(h, dtype=np.int32) * (w + 2))[:, None] + 1
    flat = padded.ravel()
    out = np.minimum(flat[base + left_idx], flat[base + right_idx])
    empty_rows = ~np.isfinite(out)
    if empty_rows.any():
        out[empty_rows] = float(d[valid].min())
    return out.astype(np.float32, copy=False)
