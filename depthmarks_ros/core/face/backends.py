"""Face landmark backends behind one interface (ROS-free).

* :class:`MediaPipeFaceMesh`: the legacy ``mediapipe.solutions.face_mesh`` (models inside the
  wheel): 468 points, or 478 with iris refinement; z is relative depth (image-width units).
* :class:`DlibFace68`: dlib's HOG (or MMOD CNN) detector + the 68-point shape predictor shipped by
  the ``face-recognition-models`` package (located with importlib, without importing it).

Both return :class:`FaceResult` with the native landmarks and the iBUG-68 layout.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.face.ibug68 import MEDIAPIPE_TO_IBUG68


class BackendError(RuntimeError):
    """A backend cannot be created (missing model file or package); the message says which."""


@dataclass
class FaceResult:
    landmarks: np.ndarray        # (N, 2) px, native layout
    landmarks68: np.ndarray      # (68, 2) px, iBUG layout
    bbox: np.ndarray             # x0, y0, x1, y1 px
    score: float
    layout: str                  # 'mediapipe468' | 'mediapipe478' | 'dlib68'
    z: Optional[np.ndarray] = None  # (N,) relative depth (MediaPipe), px units


def _bbox(points: np.ndarray) -> np.ndarray:
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])


class MediaPipeFaceMesh:
    name = 'mediapipe'

    def __init__(self, max_faces: int = 4, refine: bool = False, static: bool = False,
                 min_detection_confidence: float = 0.5):
        try:
            import mediapipe as mp
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=max_faces, refine_landmarks=refine,
                min_detection_confidence=min_detection_confidence, min_tracking_confidence=0.5)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f'MediaPipe Face Mesh is not available ({exc}); it needs mediapipe==0.10.21 '
                               '(the legacy solutions API)') from exc
        self.layout = 'mediapipe478' if refine else 'mediapipe468'

    def process(self, rgb: np.ndarray) -> List[FaceResult]:
        h, w = rgb.shape[:2]
        res = self._mesh.process(np.ascontiguousarray(rgb))
        out = []
        for lm in res.multi_face_landmarks or []:
            arr = np.array([(p.x * w, p.y * h, p.z * w) for p in lm.landmark], np.float64)
            pts = arr[:, :2]
            out.append(FaceResult(pts, pts[MEDIAPIPE_TO_IBUG68], _bbox(pts), 1.0, self.layout, arr[:, 2]))
        return out

    def close(self) -> None:
        self._mesh.close()


def dlib_model_path(name: str) -> str:
    """Path of a model file shipped by face-recognition-models (its __init__ is not imported)."""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise BackendError('package face-recognition-models is not installed (it ships dlib\'s model files)')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'models', name)
    if not os.path.isfile(path):
        raise BackendError(f'dlib model {path} not found')
    return path


class DlibFace68:
    name = 'dlib'
    layout = 'dlib68'

    def __init__(self, detector: str = "hog", upsample: int = 0, min_score: float = 0.3):
        try:
            import dlib
        except ImportError as exc:
            raise BackendError(f'dlib is not available ({exc}); install dlib-bin') from exc
        self._predictor = dlib.shape_predictor(dlib_model_path('shape_predictor_68_face_landmarks.dat'))
        if detector == 'mmod':
            self._cnn = dlib.cnn_face_detection_model_v1(dlib_model_path('mmod_human_face_detector.dat'))
            self._hog = None
        elif detector == 'hog':
            self._hog, self._cnn = dlib.get_frontal_face_detector(), None
        else:
            raise BackendError(f"unknown dlib detector {detector!r}: use 'hog' or 'mmod'")
        self.upsample = upsample
        self.min_score = min_score  # HOG scores below ~0.3 are mostly false positives (dlib's default is 0)
        self._dlib = dlib

    def detect(self, grey: np.ndarray):
        if self._hog is not None:
            rects, scores, _ = self._hog.run(grey, self.upsample, self.min_score)
            return list(zip(rects, scores))
        return [(d.rect, d.confidence) for d in self._cnn(grey, self.upsample)]

    def landmarks(self, rgb: np.ndarray, rect) -> np.ndarray:
        shape = self._predictor(rgb, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)

    def process(self, rgb: np.ndarray) -> List[FaceResult]:
        import cv2
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        out = []
        for rect, score in self.detect(grey):
            pts = self.landmarks(rgb, rect)
            out.append(FaceResult(pts, pts.copy(), _bbox(pts), float(score), self.layout))
        return out

    def close(self) -> None:
        pass


def create_backend(name: str, max_faces: int = 4, refine: bool = False, static: bool = False,
                   dlib_detector: str = 'hog'):
    if name == 'mediapipe':
        return MediaPipeFaceMesh(max_faces, refine, static)
    if name == 'dlib':
        return DlibFace68(dlib_detector)
    raise BackendError(f"unknown face backend {name!r}: use 'mediapipe' or 'dlib'")
