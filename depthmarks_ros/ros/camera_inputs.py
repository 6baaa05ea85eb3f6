"""camera/image_raw + camera/camera_info (+ an optional depth image), synchronised and decoded once
for the nodes that work on the RGB camera (face_landmarks, body_pose)."""
from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import Any, Callable, Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from depthmarks_ros.convert.camera_info import camera_from_info
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_to_rgb8
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.pipeline import node_inputs
from depthmarks_ros.ros.synced_inputs import inputs_of


@dataclass(frozen=True)
class CameraMessages:
    """One synchronised set of camera messages (Image or CompressedImage for the images)."""
    image: Any
    info: CameraInfo
    depth: Any = None
    received: float = field(default_factory=time.monotonic)


@dataclass
class CameraFrame:
    header: object
    rgb: np.ndarray                  # (H, W, 3) uint8
    camera: PinholeCamera
    depth: Optional[np.ndarray]      # (H, W) float32 metres (NaN invalid), or None


class CameraInputs:
    """Subscribes the camera (and ``depth_topic`` if set: approximate sync within ``slop``) through
    the node's synced inputs (``image_transport`` / ``depth_transport`` parameters: raw or
    compressed) and calls ``process(frame)`` from the node's latest-only worker. Bad frames are
    rejected through the node: undecodable image or camera_info, or a camera_info of another size:
    the frame is dropped; a depth image of another size: the frame goes on without depth
    (``no_depth_note`` says what that means)."""

    def __init__(self, node, depth_topic: str, slop: float, process: Callable[[CameraFrame], None],
                 no_depth_note: str = 'processed without depth'):
        self.node, self._process, self.note = node, process, no_depth_note
        inputs, _ = inputs_of(node_inputs.camera({'depth_topic': depth_topic, 'image_transport': node.p.image_transport,
                                                   'depth_transport': node.p.depth_transport}))
        self.sync = node.synced_inputs(inputs, CameraMessages, self._decode,
                                       policy='approximate' if depth_topic else 'exact', queue_size=5, slop=slop)
        self.worker = self.sync.worker

    def _decode(self, msgs: CameraMessages) -> None:
        node = self.node
        try:
            rgb = image_to_rgb8(msgs.image)
            cam = camera_from_info(msgs.info)
            depth = depth_image_to_metres(msgs.depth) if msgs.depth is not None else None
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
        self._process(CameraFrame(msgs.image.header, rgb, cam, depth))
