"""Image (+ depth) -> people with BlazePose-33 and COCO-17 keypoints in 2D and 3D (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.body.backends import create_backend
from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17
from depthmarks_ros.core.body.lifting3d import lift_keypoints, pixel_sigma
from depthmarks_ros.core.tracking import CentroidTracker


@dataclass
class Person:
    person_id: int
    keypoints: np.ndarray      # (33, 2) px
    visibility: np.ndarray     # (33,)
    sigma_px: np.ndarray       # (33,)
    xyz: np.ndarray            # (33, 3) metres (NaN where unknown)
    cov: np.ndarray            # (33, 3, 3)
    source: np.ndarray         # (33,) 0 none, 1 depth, 2 model
    score: float

    def coco17(self):
        i = BLAZEPOSE_TO_COCO17
        return self.keypoints[i], self.visibility[i], self.xyz[i]


class BodyPoseEstimator:
    """Backend + ids + 3D. ``max_depth_offset``: depth farther than this from the torso is background."""

    def __init__(self, backend: str = 'mediapipe', static: bool = False, max_depth_offset: float = 0.6,
                 **backend_kwargs):
        self.backend = create_backend(backend, static=static, **backend_kwargs)
        self.max_depth_offset = max_depth_offset
        self.tracker = CentroidTracker(max_distance=0.5)

    def process(self, rgb: np.ndarray, K: Optional[np.ndarray] = None, depth: Optional[np.ndarray] = None,
                depth_sigma: Optional[np.ndarray] = None) -> List[Person]:
        results = self.backend.process(rgb)
        boxes = [np.r_[r.keypoints.min(0), r.keypoints.max(0)] for r in results]
        ids = self.tracker.update(boxes)
        people = []
        for r, pid in zip(results, ids):
            n = len(r.keypoints)
            if K is not None:
                xyz, cov, source, sig = lift_keypoints(r.keypoints, r.visibility, K, depth, r.world,
                                                       self.max_depth_offset, depth_sigma)
            else:
                xyz, cov, source = np.full((n, 3), np.nan), np.full((n, 3, 3), np.nan), np.zeros(n, np.uint8)
                sig = pixel_sigma(r.keypoints, r.visibility)
            people.append(Person(pid, r.keypoints, r.visibility, sig, xyz, cov, source, r.score))
        return people

    def close(self) -> None:
        self.backend.close()


def crop_box(shape, bbox_xywh, pad: float = 0.125):
    """Integer crop (x0, y0, x1, y1) around a person box, grown by ``pad`` x size per side (25% in all), clipped."""
    h, w = shape[:2]
    x, y, bw, bh = bbox_xywh
    x0, y0 = int(max(0, x - pad * bw)), int(max(0, y - pad * bh))
    x1, y1 = int(min(w, x + bw * (1 + pad))), int(min(h, y + bh * (1 + pad)))
    return x0, y0, x1, y1


def coco17_in_box(backend, rgb: np.ndarray, bbox_xywh, pad: float = 0.125):
    """Top-down single person: run the backend on the padded box crop.

    Returns (keypoints (17, 2) px in the full image, visibility (17,), score) or None.
    """
    x0, y0, x1, y1 = crop_box(rgb.shape, bbox_xywh, pad)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    res = backend.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    if not res:
        return None
    i = BLAZEPOSE_TO_COCO17
    return res[0].keypoints[i] + (x0, y0), res[0].visibility[i], res[0].score
