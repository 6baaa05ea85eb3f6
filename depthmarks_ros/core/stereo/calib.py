"""Stereo calibration from a file, fitted to the images at hand (ROS-free)."""
from __future__ import annotations

from typing import Tuple

from depthmarks_ros.core.camera import CalibrationError, PinholeCamera


def fit_to_size(left: PinholeCamera, right: PinholeCamera, width: int, height: int
                ) -> Tuple[PinholeCamera, PinholeCamera]:
    """The (left, right) cameras for images of ``width`` x ``height``: unchanged, or scaled when the
    images are a resized copy (same aspect ratio within 1%); CalibrationError otherwise."""
    if left.size == (width, height):
        return left, right
    if abs(left.width * height - left.height * width) > 0.01 * width * height:
        raise CalibrationError(f'calibration is for {left.width}x{left.height}, images are {width}x{height} '
                               '(another aspect ratio)')
    return left.scaled(width, height), right.scaled(width, height)
