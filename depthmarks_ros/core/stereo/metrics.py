"""Disparity accuracy against ground truth (ROS-free): EPE, bad-N, density."""
from __future__ import annotations

from typing import Dict

import numpy as np


def disparity_metrics(disp: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """Scores over ground-truth pixels (finite, > 0). EPE and bad-N over the pixels we output;
    density = fraction of ground-truth pixels with an output."""
    has_gt = np.isfinite(gt) & (gt > 0)
    ours = has_gt & np.isfinite(disp)
    err = np.abs(disp[ours] - gt[ours])
    n = max(int(ours.sum()), 1)
    return {
        'epe': float(err.mean()) if err.size else float('nan'),
        'bad1': float((err > 1).sum() / n),
        'bad2': float((err > 2).sum() / n),
        'bad4': float((err > 4).sum() / n),
        'density': float(ours.sum() / max(int(has_gt.sum()), 1)),
    }


def sparsify_to_density(disp: np.ndarray, confidence: np.ndarray, gt: np.ndarray, density: float) -> np.ndarray:
    """``disp`` (H, W) keeping only its most confident pixels, so that its density over ``gt``'s pixels
    is at most ``density`` (compare methods at equal density). Returned unchanged if already sparser."""
    has_gt = np.isfinite(gt) & (gt > 0)
    ours = has_gt & np.isfinite(disp)
    keep = int(np.floor(density * has_gt.sum()))
    if ours.sum() <= keep:
        return disp
    order = np.argsort(-confidence[ours], kind='stable')  # most confident first
    drop = np.flatnonzero(ours.ravel())[order[keep:]]
    out = disp.copy()
    out.ravel()[drop] = np.nan
    return out


def fill_holes(disp: np.ndarray) -> np.ndarray:
    """``disp`` (H, W) with every invalid (NaN) pixel filled along its row, KITTI's rule for comparing
    methods of different density: a hole between two valid pixels takes the smaller (background)
    of the two, a hole at a row's end the nearest valid value; rows without any valid pixel stay NaN."""
    d = np.asarray(disp, np.float32)
    h, w = d.shape
    valid = np.isfinite(d)
    idx = np.where(valid, np.arange(w)[None, :], -1)
    left = np.maximum.accumulate(idx, axis=1)                            # last valid column at or before x
    idx_r = np.where(valid, np.arange(w)[None, :], w)
    right = np.minimum.accumulate(idx_r[:, ::-1], axis=1)[:, ::-1]       # next valid column at or after x
    rows = np.arange(h)[:, None]
    vl = np.where(left >= 0, d[rows, np.clip(left, 0, w - 1)], np.nan)
    vr = np.where(right < w, d[rows, np.clip(right, 0, w - 1)], np.nan)
    return np.fmin(vl, vr).astype(np.float32)  # fmin: NaN only where both sides are missing


def bad_filled(disp: np.ndarray, gt: np.ndarray, threshold: float = 2.0) -> float:
    """Share of ground-truth pixels off by more than ``threshold`` px after :func:`fill_holes`
    (every ground-truth pixel counts: density does not hide errors)."""
    has_gt = np.isfinite(gt) & (gt > 0)
    filled = fill_holes(disp)[has_gt]
    err = np.abs(filled - gt[has_gt])
    return float(np.mean(~(err <= threshold)))  # a pixel still NaN (an empty row) counts as bad
