"""Disparity accuracy against ground truth (ROS-free): EPE, bad-N, density, bad-N with holes filled."""
from __future__ import annotations

from typing import Dict

import numpy as np

from depthmarks_ros.core.stereo.fill import fill_holes_rows


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


def bad_filled(disp: np.ndarray, gt: np.ndarray, threshold: float = 2.0) -> float:
    """Share of ground-truth pixels off by more than ``threshold`` px after filling the holes of
    ``disp`` along rows (:func:`~depthmarks_ros.core.stereo.fill.fill_holes_rows`, KITTI's rule; every
    ground-truth pixel counts: density does not hide errors, a row with nothing to fill from is bad)."""
    has_gt = np.isfinite(gt) & (gt > 0)
    filled = fill_holes_rows(disp, empty_row=np.nan)[has_gt]
    err = np.abs(filled - gt[has_gt])
    return float(np.mean(~(err <= threshold)))  # a pixel still NaN (an empty row) counts as bad
