"""Faces in an image -> landmarks (native + iBUG-68) with covariance and visibility, stable ids,
3D points with covariance (given depth) and head pose. Shared by the face_landmarks node and the
`depthmarks face` command (ROS-free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.face.backends import DlibFace68, create_backend
from depthmarks_ros.core.face.head_pose import HeadPose, solve_head_pose
from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, MEDIAPIPE_TO_IBUG68, RIGHT_EYE_OUTER
from depthmarks_ros.core.tracking import CentroidTracker
from depthmarks_ros.core.face.uncertainty import (DEFAULT_AUGMENTATIONS, UncertaintyModel, augmented_predictions,
                                                  landmark_covariance, match_faces)
from depthmarks_ros.core.lifting import lift, robust_depth


@dataclass
class Face:
    face_id: int
    layout: str
    landmarks: np.ndarray          # (N, 2) native layout, px
    cov: np.ndarray                # (N, 2, 2) px^2
    visibility: np.ndarray         # (N,)
    landmarks68: np.ndarray        # (68, 2)
    cov68: np.ndarray
    visibility68: np.ndarray
    bbox: np.ndarray
    points3d: Optional[np.ndarray] = None      # (N, 3) metres, NaN where no depth
    cov3d: Optional[np.ndarray] = None         # (N, 3, 3)
    head_pose: Optional[HeadPose] = None

    def subset68(self):
        """Indices of the 68 layout inside the native one."""
        return MEDIAPIPE_TO_IBUG68 if self.layout.startswith('mediapipe') else np.arange(68)


class FaceLandmarker:
    def __init__(self, backend: str = 'mediapipe', max_faces: int = 4, refine: bool = False,
                 uncertainty: bool = True, static: bool = False, dlib_detector: str = 'hog',
                 model: Optional[UncertaintyModel] = None, learned_model: str = '', dlib_redetect_every: int = 1):
        self.backend_name = backend
        self.backend = create_backend(backend, max_faces, refine, static, dlib_detector, dlib_redetect_every)
        self.model = model or UncertaintyModel()
        self.uncertainty = uncertainty
        self._aug = []
        if uncertainty and backend == 'mediapipe':
            self._aug = [create_backend(backend, max_faces, refine, static) for _ in DEFAULT_AUGMENTATIONS]
        self.tracker = CentroidTracker()
        # a trained patch model (depthmarks train-landmarks) replaces the TTA covariance of the 68 points
        self.learned = None
        if learned_model:
            from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
            self.learned = LandmarkUncertaintyModel.load(learned_model)

    def close(self) -> None:
        for b in [self.backend] + self._aug:
            b.close()

    def _native_runs(self, rgb):
        if isinstance(self.backend, DlibFace68):
            return None
        return [lambda img, b=b: [f.landmarks for f in b.process(img)] for b in self._aug]

    def process(self, rgb: np.ndarray, K: Optional[np.ndarray] = None, depth: Optional[np.ndarray] = None,
                depth_sigma: Optional[np.ndarray] = None) -> List[Face]:
        """rgb (H, W, 3) uint8; K the rectified 3x3 camera matrix (for 3D and head pose)."""
        h, w = rgb.shape[:2]
        results = self.backend.process(rgb)
        if not results:
            self.tracker.update([])
            return []
        others_per_face: List[List[np.ndarray]] = [[] for _ in results]
        if self.uncertainty:
            if isinstance(self.backend, DlibFace68):
                others_per_face = [self._dlib_jitter(rgb, r.bbox) for r in results]
            else:
                runs = augmented_predictions(rgb, self._native_runs(rgb))
                for aug in runs:
                    iod = [np.linalg.norm(r.landmarks68[LEFT_EYE_OUTER] - r.landmarks68[RIGHT_EYE_OUTER]) for r in results]
                    for i, m in enumerate(match_faces([r.landmarks for r in results], aug, max(max(iod), 10.0))):
                        if m is not None and m.shape == results[i].landmarks.shape:
                            others_per_face[i].append(m)
        ids = self.tracker.update([r.bbox for r in results])
        faces = []
        for r, others, fid in zip(results, others_per_face, ids):
            iod = float(np.linalg.norm(r.landmarks68[LEFT_EYE_OUTER] - r.landmarks68[RIGHT_EYE_OUTER]))
            cov, vis = landmark_covariance(r.landmarks, others, (w, h), self.model, iod)
            sub = MEDIAPIPE_TO_IBUG68 if r.layout.startswith('mediapipe') else np.arange(68)
            face = Face(fid, r.layout, r.landmarks, cov, vis, r.landmarks68, cov[sub], vis[sub], r.bbox)
            if self.learned is not None:
                face.cov68, face.visibility68 = self.learned.predict(rgb, r.landmarks68)
                face.cov[sub], face.visibility[sub] = face.cov68, face.visibility68
            if K is not None:
                face.head_pose = solve_head_pose(face.landmarks68, K, face.cov68)
                if depth is not None:
                    z, spread = robust_depth(depth, face.landmarks, radius=2, sigma_map=depth_sigma)
                    face.points3d, face.cov3d = lift(face.landmarks, z, K[0, 0], K[1, 1], K[0, 2], K[1, 2],
                                                     face.cov, np.nan_to_num(spread, nan=0.0))
            faces.append(face)
        return faces

    def _dlib_jitter(self, rgb, bbox) -> List[np.ndarray]:
        import dlib
        x0, y0, x1, y1 = bbox
        size = max(x1 - x0, y1 - y0)
        out = []
        for dx, dy, s in ((0.04, 0.03, 1.0), (-0.03, -0.04, 0.95), (0.0, 0.0, 1.06)):
            cx, cy = (x0 + x1) / 2 + dx * size, (y0 + y1) / 2 + dy * size
            half = s * size * 0.6
            rect = dlib.rectangle(int(cx - half), int(cy - half), int(cx + half), int(cy + half))
            out.append(self.backend.landmarks(rgb, rect))
        return out
