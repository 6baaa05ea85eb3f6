"""Landmark accuracy and uncertainty calibration (ROS-free)."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from depthmarks_ros.core.learning.calibration import calibration_2d  # noqa: F401 (face metrics in one place)


def nme_interocular(pred68: np.ndarray, gt68: np.ndarray) -> float:
    """Mean point-to-point error over 68 points divided by the outer-eye-corner distance."""
    d = np.linalg.norm(gt68[LEFT_EYE_OUTER] - gt68[RIGHT_EYE_OUTER])
    return float(np.mean(np.linalg.norm(pred68 - gt68, axis=1)) / d)
