"""Hole filling of a disparity map along rows (ROS-free): the one implementation of KITTI's rule for
"bad-2, holes filled" (/work/shared/docs/real-data.md).

A hole is a pixel that is not finite or not positive (KITTI: disparity 0 = no value). A hole between
two valid pixels of a row takes the smaller (background) of the two values; holes touching the left
or right border take the nearest valid value of the row. A row without any valid pixel has nothing
to fill from: it gets ``empty_row`` -- ``'min'`` (the default) the smallest valid value of the
image (0 if the image has none), where a finite map is needed (the refinement network's starting
disparity); NaN for scoring (:func:`~depthmarks_ros.core.stereo.metrics.bad_filled` counts such
pixels as bad).

``row_fills`` gives each hole's left and right neighbours, their linear interpolation and an
edge-aware choice of the two (the v2 refinement network's candidates, refine_net.py).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np


def fill_holes_rows(disp: np.ndarray, empty_row: Union[str, float] = 'min',
                    holes: Optional[np.ndarray] = None) -> np.ndarray:
    """(H, W) float32 copy of ``disp`` with every hole filled along its row (see module doc).
    ``holes``: (H, W) bool, the holes, where they are not KITTI's (e.g. NaN only, for a matcher whose
    disparities may be 0 or negative with a negative ``min_disparity``); non-finite pixels are
    holes either way."""
    d = np.asarray(disp, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f'fill_holes_rows needs an (H, W) map, got shape {d.shape}')
    if isinstance(empty_row, str) and empty_row != 'min':
        raise ValueError(f"empty_row must be 'min' or a number, got {empty_row!r}")
    if holes is None:
        valid = np.isfinite(d) & (d > 0)
    else:
        if np.shape(holes) != d.shape:
            raise ValueError(f'holes mask {np.shape(holes)} does not match the map {d.shape}')
        valid = np.isfinite(d) & ~np.asarray(holes, bool)
    if valid.all():
        return d.copy()
    if empty_row == 'min':
        empty_row = float(d[valid].min()) if valid.any() else 0.0
    _li, _ri, left, right, _base = row_neighbours(d, valid)
    out = np.fmin(left, right)                                 # NaN only where the row has nothing
    out[~valid.any(axis=1)] = np.float32(empty_row)          # rows with nothing to fill from
    return out.astype(np.float32, copy=False)


def row_neighbours(d: np.ndarray, valid: np.ndarray):
    """Per pixel: column of the last valid pixel at or left of it (-1 none) and of the first at or
    right of it (w none), their values (NaN none), and the flat row offsets used to index them."""
    h, w = d.shape
    cols = np.arange(w, dtype=np.int32)[None, :]
    li = np.maximum.accumulate(np.where(valid, cols, np.int32(-1)), axis=1)
    ri = np.minimum.accumulate(np.where(valid, cols, np.int32(w))[:, ::-1], axis=1)[:, ::-1]
    # values padded with NaN at both ends of every row: index -1 -> column 0, w -> column w + 1
    padded = np.full((h, w + 2), np.nan, np.float32)
    padded[:, 1:-1][valid] = d[valid]
    base = (np.arange(h, dtype=np.int32) * (w + 2))[:, None] + 1
    flat = padded.ravel()
    return li, ri, flat[base + li], flat[base + ri], base


def row_fills(d: np.ndarray, valid: np.ndarray, edges: Optional[np.ndarray] = None) -> Tuple[np.ndarray, ...]:
    """Per pixel, along its row: the nearest valid value on the left, on the right (each falling back
    to the other side where one has none) and their linear interpolation; valid pixels keep their
    value in all three. Rows without any valid pixel take the smallest valid value (0 if none).
    Returns (linear, left, right), and with ``edges`` (bool (H, W): image edges) a fourth, edge-aware
    fill: the side reached crossing fewer edges, the smaller of the two when both cross as many."""
    h, w = d.shape
    cols = np.arange(w, dtype=np.int32)[None, :]
    li, ri, lv, rv, base = row_neighbours(d, valid)
    lv_nan, rv_nan = np.isnan(lv), np.isnan(rv)
    lv = np.where(lv_nan, rv, lv)
    rv = np.where(rv_nan, lv, rv)
    span = (ri - li).astype(np.float32)
    t = np.where(lv_nan | rv_nan, np.float32(0), (cols - li) / np.maximum(span, 1))
    lin = lv + (rv - lv) * t.astype(np.float32)
    empty = np.isnan(lin)
    if empty.any():
        fallback = np.float32(d[valid].min()) if valid.any() else np.float32(0)
        lv[empty] = rv[empty] = lin[empty] = fallback
    if edges is None:
        return lin, lv, rv
    # edges crossed from the left / right neighbour: cumulative edge count along the row
    count = np.zeros((h, w + 2), np.int32)
    np.cumsum(edges, axis=1, out=count[:, 1:-1])
    count[:, -1] = count[:, -2]
    cflat = count.ravel()
    here = count[:, 1:-1]
    n_left = here - cflat[base + li]
    n_right = cflat[base + ri] - here
    edge_fill = np.where(n_left < n_right, lv, np.where(n_right < n_left, rv, np.minimum(lv, rv)))
    return lin, lv, rv, edge_fill.astype(np.float32)
