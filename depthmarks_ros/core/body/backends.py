"""Body pose backends behind one interface (ROS-free). A new model (e.g. an HRNet in PyTorch) is
added by writing a class with ``process(rgb) -> List[BodyResult]`` and registering it in
:data:`BACKENDS`; the node does not change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np


class BackendError(RuntimeError):
    """A backend cannot be created (the message says why and what to do)."""


@dataclass
class BodyResult:
    keypoints: np.ndarray             # (K, 2) px
    visibility: np.ndarray            # (K,) in [0, 1]
    layout: str                       # 'blazepose33'
    world: Optional[np.ndarray] = None  # (K, 3) metres, model's own 3D guess (hip-centred)
    score: float = 1.0


class MediaPipePose:
    """BlazePose through the legacy ``mediapipe.solutions.pose`` API; one person per image."""

    name = 'mediapipe'
    layout = 'blazepose33'

    def __init__(self, model_complexity: int = 1, static: bool = False, min_confidence: float = 0.5):
        if model_complexity != 1:
            raise BackendError(f'model_complexity {model_complexity} is not bundled with the mediapipe wheel '
                               '(only 1 is; 0 and 2 are downloaded at run time, which needs internet)')
        try:
            from depthmarks_ros.core.mediapipe_env import import_mediapipe
            mp = import_mediapipe()
            self._pose = mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1,
                                                min_detection_confidence=min_confidence,
                                                min_tracking_confidence=0.5)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f'MediaPipe Pose is not available ({exc}); it needs mediapipe==0.10.21') from exc

    def process(self, rgb: np.ndarray) -> List[BodyResult]:
        h, w = rgb.shape[:2]
        res = self._pose.process(np.ascontiguousarray(rgb))
        if res.pose_landmarks is None:
            return []
        lm = res.pose_landmarks.landmark
        kp = np.array([(p.x * w, p.y * h) for p in lm], np.float64)
        vis = np.array([p.visibility for p in lm], np.float64)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark], np.float64)
        return [BodyResult(kp, np.clip(vis, 0, 1), self.layout, world, float(np.mean(vis)))]

    def close(self) -> None:
        self._pose.close()


BACKENDS = {'mediapipe': MediaPipePose}


def create_backend(name: str, **kwargs):
    if name not in BACKENDS:
        raise BackendError(f'unknown body backend {name!r}: known {sorted(BACKENDS)}')
    return BACKENDS[name](**kwargs)
