"""body_pose's parameters (``depthmarks body`` takes its options and defaults from here)."""
from __future__ import annotations

from dataclasses import dataclass

from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import (CompressedImageParams, DepthTransportParams, ImageTransportParams, InputParams,
                                         NodeParams)


@dataclass
class BodyPoseParams(NodeParams, CompressedImageParams, InputParams, ImageTransportParams, DepthTransportParams):
    backend: str = param('mediapipe', 'Keypoint backend (core/body/backends.py)', choices=('mediapipe',),
                         read_only=True)
    model_complexity: int = param(1, 'BlazePose model (only 1 ships with the wheel; 0 and 2 need downloads)',
                                  min=0, max=2, read_only=True)
    min_detection_confidence: float = param(0.5, 'Person detector threshold', min=0.0, max=1.0, read_only=True)
    layout: str = param('coco17', 'Keypoints on body/keypoints (body/keypoints_native always has 33)',
                        choices=('coco17', 'blazepose33'), cli=False)
    depth_topic: str = param('', 'Depth image (32FC1 m or 16UC1 mm) for 3D keypoints; empty = model only',
                             read_only=True, cli=False)
    depth_slop: float = param(0.05, 'Largest image/depth stamp difference (s)', min=0.0, max=1.0,
                              read_only=True, cli=False)
    max_depth_offset: float = param(0.6, 'Depth farther than this from the torso depth is background (m)',
                                    min=0.05, max=5.0, cli=False)
    min_visibility: float = param(0.3, 'Keypoints below this visibility are left out of body/markers',
                                  min=0.0, max=1.0, cli=False)
    max_people: int = param(8, 'Most people per image (highest scores kept)', min=1, max=64, read_only=True)
    redetect_every: int = param(5, 'Person detector every N-th frame; people are tracked by their landmarks in '
                                'between', min=1, max=100, read_only=True)
    detect_tiles: int = param(0, 'Person detector also on 2x2, 4x4 ... grids of tiles up to n x n (small people; '
                              '0 = whole image only)', min=0, max=6, read_only=True)
    hands: bool = param(True, '21 keypoints per hand (hands/keypoints)', read_only=True)
    hand_model: int = param(0, 'Hand landmark and palm models: 0 lite, 1 full (both ship with the wheel; lite: '
                            'more hands found and 40% cheaper on the hand samples, docs/body_pose.md)',
                            min=0, max=1, read_only=True)
    palms: str = param('auto', 'Palm detector for hands without a body: on detection frames where no person has '
                       'a hand found (auto), on every detection frame (always), never',
                       choices=('auto', 'always', 'never'), read_only=True)
    workers: int = param(2, 'Threads for the landmark passes of one frame (people, then their hands), each with its '
                         'own model instances; 1 = one after the other (the results are the same)', min=1, max=8,
                         read_only=True)
    face: bool = param(False, '68 face keypoints per person (dlib shape predictor, ~2 ms a person) in body/wholebody',
                       read_only=True)


def estimator_settings(p: BodyPoseParams) -> dict:
    """The core's settings (core/body/pipeline.py BodyPoseEstimator keywords) from the node's values:
    the node, ``depthmarks body`` and the benchmark build the estimator from these."""
    return dict(backend=p.backend, model_complexity=p.model_complexity,
                min_detection_confidence=p.min_detection_confidence, max_people=p.max_people,
                redetect_every=p.redetect_every, detect_tiles=p.detect_tiles, hands=p.hands,
                hand_model=p.hand_model, palms=p.palms, face=p.face, workers=p.workers)
