"""Fitting the shipped face artefacts on annotated real faces (ROS-free): the 3D mean face for head
pose (from AFLW2000-3D's 3D landmarks), and helpers shared by ``depthmarks fit-face``."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from depthmarks_ros.core.face.head_pose import rotation_from_angles
from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

OUTER_CANTHAL_M = 0.090   # metres between the outer eye corners of the mean face (typical adult)


def unrotate(points3d: np.ndarray, pose_deg: np.ndarray) -> np.ndarray:
    """AFLW2000-3D 3D landmarks (x, y px, z px away) -> the head frame at zero pose, centred, with the
    outer eye corners 1 apart."""
    R = rotation_from_angles(*pose_deg)
    X = (points3d - points3d.mean(axis=0)) @ R        # R^T applied to each row
    return X / np.linalg.norm(X[LEFT_EYE_OUTER] - X[RIGHT_EYE_OUTER])


def fit_mean_face(points3d: Sequence[np.ndarray], poses_deg: Sequence[np.ndarray],
                  n_modes: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean 68-point face in metres (head frame: x image-right, y down, z away from the camera at zero
    pose), its first ``n_modes`` PCA shape modes (n_modes, 68, 3) scaled by their standard deviation,
    and the per-point residual RMS (68,) in metres about the mean."""
    shapes = np.stack([unrotate(p, a) for p, a in zip(points3d, poses_deg)]) * OUTER_CANTHAL_M
    mean = shapes.mean(axis=0)
    mean -= mean.mean(axis=0)
    d = (shapes - mean).reshape(len(shapes), -1)
    resid = np.sqrt(np.mean(np.sum((shapes - mean) ** 2, axis=2), axis=0))
    if n_modes:
        _, s, vt = np.linalg.svd(d - d.mean(axis=0), full_matrices=False)
        modes = (vt[:n_modes] * (s[:n_modes, None] / np.sqrt(len(shapes)))).reshape(n_modes, 68, 3)
    else:
        modes = np.zeros((0, 68, 3))
    return mean, modes, resid
