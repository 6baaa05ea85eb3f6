"""camera/image_raw + camera/camera_info (+ an optional depth image), synchronised and decoded once
for the nodes that work on the RGB camera (face_landmarks, body_pose)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from depthmarks_ros.convert.camera_info import camera_from_info
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_to_rgb8
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.ros.synced_inputs import SyncedInputs


@dataclass
class CameraFrame:
    header: object
    rgb: np.ndarray                  # (H, W, 3) uint8
    camera: PinholeCamera
    depth: Optional[np.ndarray]      # (H, W) float32 metres (NaN invalid), or None


class CameraInputs:
    """Subscribes the camera (and ``depth_topic`` if set: approximate sync within ``slop``) and calls
    ``process(frame)`` from the node's latest-only worker. Bad frames are rejected through the node:
    undecodable image or camera_info, or a camera_info of another size: the frame is dropped; a depth
    image of another size: the frame goes on without depth (``no_depth_note`` says what that means)."""

    def __init__(self, node, depth_topic: str, slop: float, process: Callable[[CameraFrame], None],
                 no_depth_note: str = 'processed without depth'):
        self.node, self._process, self.note = node, process, no_depth_note
        topics = [(Image, 'camera/image_raw'), (CameraInfo, 'camera/camera_info')]
        if depth_topic:
            topics.append((Image, depth_topic))
        self.worker = node.make_worker(self._decode)
        self.sync = SyncedInputs(node, topics, self._on_inputs, 'approximate' if depth_topic else 'exact', 5, slop)

    def _on_inputs(self, *msgs):
        self.node.stats.frame_in()
        self.worker.submit(msgs)

    def _decode(self, msgs) -> None:
        img, info = msgs[:2]
        node = self.node
        try:
            rgb = image_to_rgb8(img)
            cam = camera_from_info(info)
            depth = depth_image_to_metres(msgs[2]) if len(msgs) > 2 else None
        except ConversionError as exc:
            node.reject('input', str(exc))
            return
        h, w = rgb.shape[:2]
        if cam.size != (w, h):
            node.reject('camera_info', f'camera_info is {cam.width}x{cam.height} but the image is {w}x{h}: '
                                       'frame dropped')
            return
        if depth is not None and depth.shape != (h, w):
            node.reject('depth_size', f'depth image is {depth.shape[1]}x{depth.shape[0]} but the camera image is '
                                      f'{w}x{h}: {self.note}')
            depth = None
        self._process(CameraFrame(img.header, rgb, cam, depth))
