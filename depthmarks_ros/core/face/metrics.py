"""Landmark accuracy and uncertainty calibration (ROS-free)."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from depthmarks_ros.core.learning.calibration import calibration_2d  # noqa: F401 (face metrics in one place)

YAW_BANDS = (0, 15, 30, 45, 60, 360)      # |yaw| band edges (deg) the face studies report errors by


def interocular(landmarks68: np.ndarray) -> float:
    """The outer-eye-corner distance of 68 points (the 300-W 'inter-ocular' NME normaliser)."""
    return float(np.linalg.norm(landmarks68[LEFT_EYE_OUTER] - landmarks68[RIGHT_EYE_OUTER]))


def bbox_size(landmarks68: np.ndarray) -> float:
    """sqrt(w h) of the landmarks' bounding box (the AFLW2000-3D 'box' NME normaliser)."""
    w, h = np.ptp(landmarks68[:, 0]), np.ptp(landmarks68[:, 1])
    return float(np.sqrt(max(w * h, 1e-9)))


def nme_norm(landmarks68: np.ndarray, dataset: str) -> float:
    """The NME normaliser of a face of set ``dataset`` (datasets.FaceSample.dataset) from its ground truth:
    the box size (:func:`bbox_size`) for AFLW2000-3D, the outer-eye-corner distance (:func:`interocular`)
    for 300-W and the other 2D sets (the fits and bench_face.py)."""
    return bbox_size(landmarks68) if dataset == 'aflw2000_3d' else interocular(landmarks68)


def nme_interocular(pred68: np.ndarray, gt68: np.ndarray) -> float:
    """Mean point-to-point error over 68 points divided by the outer-eye-corner distance (:func:`interocular`)."""
    return float(np.mean(np.linalg.norm(pred68 - gt68, axis=1)) / interocular(gt68))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney, ties halved);
    NaN when one class is empty."""
    from scipy.stats import rankdata
    labels, scores = np.asarray(labels, bool).ravel(), np.asarray(scores, float).ravel()
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float('nan')
    r = rankdata(scores)
    return float((r[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
