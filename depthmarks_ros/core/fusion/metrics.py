"""Depth accuracy in KITTI's units (ROS-free): RMSE/MAE in mm, iRMSE/iMAE in 1/km."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None) -> Dict[str, float]:
    ok = np.isfinite(gt) & (gt > 0) & np.isfinite(pred) & (pred > 0)
    if mask is not None:
        ok &= mask
    n_gt = int((np.isfinite(gt) & (gt > 0) & (mask if mask is not None else True)).sum())
    if not ok.any():
        return {'rmse': float('nan'), 'mae': float('nan'), 'irmse': float('nan'), 'imae': float('nan'),
                'median': float('nan'), 'over_1m': float('nan'), 'coverage': 0.0}
    e = (pred[ok] - gt[ok]).astype(np.float64)
    ie = (1.0 / pred[ok] - 1.0 / gt[ok]).astype(np.float64)
    return {'rmse': float(np.sqrt(np.mean(e ** 2)) * 1000), 'mae': float(np.mean(np.abs(e)) * 1000),
            'irmse': float(np.sqrt(np.mean(ie ** 2)) * 1000), 'imae': float(np.mean(np.abs(ie)) * 1000),
            'median': float(np.median(np.abs(e)) * 1000), 'over_1m': float(np.mean(np.abs(e) > 1.0) * 100),
            'coverage': float(ok.sum() / max(n_gt, 1))}


def sigma_calibration(pred: np.ndarray, sigma: np.ndarray, gt: np.ndarray, mask=None) -> Dict[str, float]:
    """Fraction of |error| within 1 and 2 sigma (a Gaussian gives 0.683 and 0.954)."""
    ok = np.isfinite(gt) & np.isfinite(pred) & np.isfinite(sigma) & (sigma > 0)
    if mask is not None:
        ok &= mask
    if not ok.any():
        return {'within_1sigma': float('nan'), 'within_2sigma': float('nan')}
    r = np.abs(pred[ok] - gt[ok]) / sigma[ok]
    return {'within_1sigma': float(np.mean(r <= 1)), 'within_2sigma': float(np.mean(r <= 2))}
