"""face_landmarks' parameters (``depthmarks face`` takes its options and defaults from here)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from depthmarks_ros.core.face.convention import CONVENTIONS, check_convention
from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import (CompressedImageParams, DepthTransportParams, ImageTransportParams, InputParams,
                                         NodeParams)


@dataclass
class FaceLandmarksParams(NodeParams, CompressedImageParams, InputParams, ImageTransportParams, DepthTransportParams):
    backend: str = param('hybrid', 'Landmark backend (hybrid: MediaPipe mesh + dlib predictor, blended; dlib: HOG + '
                         'predictor; mediapipe: mesh + learned 68 map; docs/face_landmarks.md)',
                         choices=('hybrid', 'mediapipe', 'dlib'), read_only=True)
    max_faces: int = param(4, 'Most faces per frame', min=1, max=32, read_only=True)
    refine_landmarks: bool = param(False, 'MediaPipe: 478 points with irises', read_only=True)
    dlib_detector: str = param('hog', 'dlib face detector: hog, mmod, or cascade (MediaPipe detectors then '
                               "fallbacks: finds turned faces dlib's predictor then fails on; docs/face_landmarks.md)",
                               choices=('hog', 'cascade', 'mmod'), read_only=True)
    dlib_redetect_every: int = param(5, 'dlib: scan the whole image for faces on every N-th frame; in between, '
                                     "only around each face's previous box (1 = the whole image every frame)",
                                     min=1, max=100, read_only=True, cli=False)
    detector_all_views: bool = param(True, 'Independent images (depthmarks face; the node runs on video): run every '
                                     'view of the face detector cascade (mirrored, half-size, padded, rotated by '
                                     '+-30/60 deg), not only until one finds a face, and keep each face no other '
                                     'covers (one the mesh cannot follow only where two views found it or the first view '
                                     'alone did, and where its box is not noise-like): several times '
                                     'the time per image; where that keeps no face, the last resorts run: MMOD '
                                     '(detector_mmod), then the oversized-face view (hybrid and mediapipe backends, '
                                     'not the dlib cascade) and the head of a person from the body pose '
                                     '(docs/face_landmarks.md)', read_only=True)
    detector_mmod: bool = param(True, "Independent images: dlib's CNN (MMOD) face detector as the last resort where no "
                                'other detector finds a face (~1-3 s per image on a CPU; the node on video never '
                                'runs it); with detector_all_views it runs before the oversized-face view and the '
                                'head of a person from the body pose, which run with it off too', read_only=True)
    landmark_convention: str = param(
        '2d', "Convention of the 68 points: 2d = 300-W's, clicks on the visible outline (the jaw follows the "
        "silhouette of a turned face); 3d = AFLW2000-3D's, projections of 3D face-model points (the jaw stays on "
        'the face surface where hidden: for lifting to 3D and head pose), the hybrid\'s artefacts fitted on '
        "AFLW2000-3D alone (face_mesh_to_68_3d.npz, face_hybrid_3d.json and face_fit.json's hybrid_3d head-pose "
        'factors, and with uncertainty face_sigma_hybrid_3d.json: a missing one stops the start); hybrid backend only '
        '(docs/face_landmarks.md)',
        choices=CONVENTIONS, read_only=True)
    uncertainty: bool = param(True, 'Per-landmark covariance by test-time augmentation', read_only=True)
    fitted_data: str = param('', 'Folder of the fitted face artefacts (face_fit.json, face_model_68.npy, '
                             'face_hybrid.json, face_sigma_*.json, ...: depthmarks fit-face -o DIR), each read from '
                             'there; a file the chosen backend, dlib detector and uncertainty read missing there '
                             'stops the start; empty = the ones shipped in the package', read_only=True)
    uncertainty_model: str = param('', 'Trained patch model folder (depthmarks train-landmarks) for the 68-point '
                                   'covariance and visibility; empty = test-time augmentation', read_only=True)
    layout: str = param('ibug68', 'Landmarks published on face/landmarks', choices=('ibug68', 'native'),
                        cli=False)
    depth_topic: str = param('', 'Depth image (32FC1 m or 16UC1 mm) for 3D landmarks; empty = none',
                             read_only=True, cli=False)
    depth_slop: float = param(0.05, 'Largest image/depth stamp difference (s)', min=0.0, max=1.0,
                              read_only=True, cli=False)

    def cross_check(self) -> Optional[str]:
        try:
            check_convention(self.landmark_convention, self.backend)
        except ValueError as exc:
            return str(exc)
        return None
