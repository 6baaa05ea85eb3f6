"""KITTI object/depth formats (ROS-free): calib txt, velodyne .bin, 16-bit depth PNG (m * 256)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from depthmarks_ros.core.camera import CalibrationError, PinholeCamera
from depthmarks_ros.core.transforms import make_transform


def read_calib(path: str) -> Dict[str, np.ndarray]:
    out = {}
    with open(path) as f:
        for line in f:
            if ':' not in line:
                continue
            key, vals = line.split(':', 1)
            try:
                out[key.strip()] = np.array([float(x) for x in vals.split()])
            except ValueError as exc:
                raise CalibrationError(f'{path}: field {key.strip()!r} is not numeric') from exc
    for key, n in (('P2', 12), ('R0_rect', 9), ('Tr_velo_to_cam', 12)):
        if key not in out or out[key].size != n:
            raise CalibrationError(f'{path}: missing or malformed field {key!r}')
    return out


def camera_and_extrinsics(calib: Dict[str, np.ndarray], width: int, height: int):
    """(PinholeCamera of image_2 with Tx folded into the extrinsics, ``velo2cam2`` 4x4: Velodyne
    points -> the rectified camera-2 frame, KITTI's ``P2 . R0_rect . Tr_velo_to_cam``)."""
    P2 = calib['P2'].reshape(3, 4)
    K = P2[:, :3]
    t2 = np.linalg.solve(K, P2[:, 3])
    rect2cam2 = make_transform(np.eye(3), t2)                 # rectified camera 0 -> camera 2 (its Tx)
    cam02rect = make_transform(calib['R0_rect'].reshape(3, 3), [0, 0, 0])
    velo2cam0 = np.vstack([calib['Tr_velo_to_cam'].reshape(3, 4), [0, 0, 0, 1]])
    velo2cam2 = rect2cam2 @ cam02rect @ velo2cam0
    cam = PinholeCamera(width, height, K, np.zeros(5), np.eye(3), np.hstack([K, np.zeros((3, 1))]),
                        name='kitti_image_2')
    return cam, velo2cam2


def read_velodyne(path: str) -> np.ndarray:
    """(N, 4) float32 x, y, z, reflectance."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size % 4:
        raise ValueError(f'{path}: size is not a multiple of 4 floats (not a velodyne .bin)')
    return data.reshape(-1, 4)


def write_depth_png(path: str, depth: np.ndarray) -> None:
    """KITTI depth PNG: uint16 = metres * 256, 0 = no value."""
    import cv2
    v = np.clip(np.round(np.nan_to_num(depth, nan=0.0) * 256.0), 0, 65535).astype(np.uint16)
    cv2.imwrite(path, v)


def read_depth_png(path: str) -> np.ndarray:
    import cv2
    v = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if v is None:
        raise ValueError(f'{path}: cannot read')
    d = v.astype(np.float32) / 256.0
    d[v == 0] = np.nan
    return d
