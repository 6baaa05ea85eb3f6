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
