"""Hole filling of a disparity map along rows (ROS-free): the one implementation of KITTI's rule for
"bad-2, holes filled" (/work/shared/docs/real-data.md).

A hole is a pixel that is not finite or not positive (KITTI: disparity 0 = no value). A hole between
two valid pixels of a row takes the smaller (background) of the two values; holes touching the left
or right border take the nearest valid value of the row. A row without any valid pixel has nothing
to fill from: it gets ``empty_row`` -- ``'min'`` (the default) the smallest valid value of the
image (0 if the image has none), where a finite map is needed (the refinement network's starting
disparity); NaN for scoring (:func:`~depthmarks_ros.core.stereo.metrics.bad_filled` counts such
pixels as bad).
"""
from __future__ import annotations

from typing import Union

import numpy as np


def fill_holes_rows(disp: np.ndarray, empty_row: Union[str, float] = 'min') -> np.ndarray:
    """(H, W) float32 copy of ``disp`` with every hole filled along its row (see module doc)."""
    d = np.asarray(disp, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f'fill_holes_rows needs an (H, W) map, got shape {d.shape}')
    if isinstance(empty_row, str) and empty_row != 'min':
        raise ValueError(f"empty_row must be 'min' or a number, got {empty_row!r}")
    valid = np.isfinite(d) & (d > 0)
    if valid.all():
        return d.copy()
    h, w = d.shape
    if empty_row == 'min':
        empty_row = float(d[valid].min()) if valid.any() else 0.0
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
    out[~valid.any(axis=1)] = np.float32(empty_row)          # rows with nothing to fill from
    return out.astype(np.float32, copy=False)
