"""2D keypoint accuracy (ROS-free): PCK and COCO OKS."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.core.body.coco17 import COCO_SIGMAS


def pck(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, ref_size: float, alpha: float = 0.2) -> float:
    """Share of labelled keypoints within alpha * ref_size pixels (pred/gt (17, 2))."""
    if not labelled.any():
        return float('nan')
    d = np.linalg.norm(pred[labelled] - gt[labelled], axis=1)
    return float(np.mean(np.nan_to_num(d, nan=np.inf) <= alpha * ref_size))


def oks(pred: np.ndarray, gt: np.ndarray, labelled: np.ndarray, area: float) -> float:
    """COCO object keypoint similarity of one person."""
    if not labelled.any():
        return float('nan')
    d2 = np.sum((pred - gt) ** 2, axis=1)
    e = d2 / (2 * area * (2 * COCO_SIGMAS) ** 2 + np.spacing(1))
    return float(np.mean(np.exp(-np.nan_to_num(e[labelled], nan=np.inf))))
