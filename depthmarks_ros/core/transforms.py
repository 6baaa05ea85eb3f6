"""Rigid transforms and rotations (ROS-free). Quaternions are [x, y, z, w] as in geometry_msgs.

Naming (pytransform3d's ``A2B``): a 4x4 transform (or 3x3 rotation) that maps coordinates in frame A
to frame B is called ``A2B``: ``p_B = apply_transform(A2B, p_A)``. Compositions then check by reading:
``B2C @ A2B`` is ``A2C`` (inner names meet), ``inv(A2B)`` is ``B2A``. E.g. ``lidar2cam`` maps LiDAR
points into the camera frame; ``sensor2base`` is a sensor's pose in the rig's base frame.
"""
from __future__ import annotations

import numpy as np


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 homogeneous transform from a 3x3 rotation and a 3-vector translation."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points (N, 3); returns (N, 3) in the points' float dtype."""
    pts = np.asarray(points)
    dtype = pts.dtype if pts.dtype in (np.float32, np.float64) else np.float64
    R = T[:3, :3].astype(dtype)
    t = T[:3, 3].astype(dtype)
    return pts.reshape(-1, 3).astype(dtype, copy=False) @ R.T + t


def quaternion_to_matrix(q) -> np.ndarray:
    """[x, y, z, w] (normalised here) to a 3x3 rotation matrix."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix to [x, y, z, w] with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        w, x, y, z = (R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        w, x, y, z = (R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        w, x, y, z = (R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def euler_to_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Fixed-axis X (roll), Y (pitch), Z (yaw) rotation, R = Rz(yaw) Ry(pitch) Rx(roll) (REP-103)."""
    cr, sr = np.cos(roll), np.sin(roll)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def matrix_to_euler(R: np.ndarray):
    """Inverse of :func:`euler_to_matrix`: (roll, pitch, yaw) radians."""
    R = np.asarray(R, dtype=np.float64)
    pitch = np.arcsin(np.clip(-R[2, 0], -1.0, 1.0))
    roll = np.arctan2(R[2, 1], R[2, 2])
    yaw = np.arctan2(R[1, 0], R[0, 0])
    return float(roll), float(pitch), float(yaw)


# Rotation between a REP-103 body frame (x forward, y left, z up) and an optical frame (x right, y
# down, z forward): its columns are the optical axes expressed in the body frame, so it maps optical
# coordinates to body coordinates (named A2B like every transform here: see module docstring).
OPTICAL2BODY = np.array([[0.0, 0.0, 1.0],
                           [-1.0, 0.0, 0.0],
                           [0.0, -1.0, 0.0]])
