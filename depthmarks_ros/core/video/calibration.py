"""Camera models for captured frames: a calibration checked against the frame size, or a default."""
from __future__ import annotations

import math
from typing import Optional, Tuple

from depthmarks_ros.core.camera import CalibrationError, PinholeCamera, assumed_K


def uncalibrated_camera(width: int, height: int, hfov_deg: float = 60.0) -> PinholeCamera:
    """A distortion-free pinhole camera with fx = fy = (width/2) / tan(hfov/2): core/camera.assumed_K
    (its centred principal point) with the video source's focal from a horizontal field of view instead
    of assumed_K's default (the larger image side, ~53 deg)."""
    f = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    return PinholeCamera(width, height, assumed_K(width, height, f), name='uncalibrated')


def camera_for_frames(calibrated: Optional[PinholeCamera], width: int, height: int,
                      hfov_deg: float = 60.0) -> Tuple[PinholeCamera, str]:
    """The camera model to publish with frames of (width, height), and a note ('' if exact).

    A calibration of the same aspect ratio but another resolution is scaled (with a note); one of
    another aspect ratio raises :class:`CalibrationError`. Without a calibration the default
    :func:`uncalibrated_camera` is returned with a note saying so.
    """
    if calibrated is None:
        cam = uncalibrated_camera(width, height, hfov_deg)
        return cam, (f'no calibration given: publishing an uncalibrated camera_info with '
                     f'fx = fy = {cam.fx:.1f} px ({hfov_deg:g} deg horizontal field of view)')
    if calibrated.size == (width, height):
        return calibrated, ''
    cw, ch = calibrated.size
    if abs(cw / ch - width / height) > 1e-3:
        raise CalibrationError(f'calibration is for {cw}x{ch} but frames are {width}x{height} '
                               '(different aspect ratio): recalibrate or set the capture size')
    return calibrated.scaled(width, height), (f'calibration for {cw}x{ch} scaled to the '
                                              f'{width}x{height} frames')
