"""sensor_msgs/CameraInfo <-> :class:`~depthmarks_ros.core.camera.PinholeCamera`."""
from __future__ import annotations

import numpy as np

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.core.camera import CalibrationError, PinholeCamera


def camera_from_info(msg) -> PinholeCamera:
    """Camera model of a CameraInfo message.

    An all-zero K (an uncalibrated camera) or any other unusable value raises
    :class:`ConversionError` with the reason. ``binning`` and ``roi`` are applied like
    image_geometry: the model describes the image actually published.
    """
    K = np.asarray(msg.k, dtype=np.float64)
    if K.size != 9 or not np.any(K):
        raise ConversionError('camera_info has no calibration (K is all zeros)')
    P = np.asarray(msg.p, dtype=np.float64)
    if P.size != 12 or not np.any(P):
        P = np.hstack([K.reshape(3, 3), np.zeros((3, 1))]).ravel()
    R = np.asarray(msg.r, dtype=np.float64)
    if R.size != 9 or not np.any(R):
        R = np.eye(3).ravel()
    try:
        cam = PinholeCamera(width=int(msg.width), height=int(msg.height), K=K, D=np.asarray(msg.d, dtype=np.float64),
                            R=R, P=P, distortion_model=msg.distortion_model or 'plumb_bob',
                            frame_id=msg.header.frame_id)
    except CalibrationError as exc:
        raise ConversionError(f'bad camera_info: {exc}') from exc
    bx, by = max(int(msg.binning_x), 1), max(int(msg.binning_y), 1)
    roi = msg.roi
    if roi.width and roi.height and (roi.width, roi.height) != (cam.width, cam.height):
        S = np.eye(3)
        S[0, 2], S[1, 2] = -roi.x_offset, -roi.y_offset
        cam = PinholeCamera(roi.width, roi.height, S @ cam.K, cam.D, cam.R, S @ cam.P,
                            cam.distortion_model, cam.frame_id, cam.name)
    if bx > 1 or by > 1:
        cam = cam.scaled(cam.width // bx, cam.height // by)
    return cam


def info_from_camera(cam: PinholeCamera, header=None):
    """A CameraInfo message of a camera model."""
    from sensor_msgs.msg import CameraInfo
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    elif cam.frame_id:
        msg.header.frame_id = cam.frame_id
    msg.width, msg.height = int(cam.width), int(cam.height)
    msg.distortion_model = cam.distortion_model or 'plumb_bob'
    msg.d = [float(x) for x in cam.D]
    msg.k = [float(x) for x in cam.K.ravel()]
    msg.r = [float(x) for x in cam.R.ravel()]
    msg.p = [float(x) for x in cam.P.ravel()]
    return msg
