"""Landmark accuracy and uncertainty calibration (ROS-free)."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from depthmarks_ros.core.learning.calibration import calibration_2d  # noqa: F401 (face metrics in one place)

YAW_BANDS = (0, 15, 30, 45, 60, 360)      # |yaw| band edges (deg) the face studies report errors by


def nme_interocular(pred68: np.ndarray, gt68: np.ndarray) -> float:
    """Mean point-to-point error over 68 points divided by the outer-eye-corner distance."""
    d = np.linalg.norm(gt68[LEFT_EYE_OUTER] - gt68[RIGHT_EYE_OUTER])
    return float(np.mean(np.linalg.norm(pred68 - gt68, axis=1)) / d)


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
