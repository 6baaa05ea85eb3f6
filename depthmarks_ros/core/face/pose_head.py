"""The last resort of the face search on independent images: a head from the body pose (ROS-free).

Where every face view (MediaPipe's detectors on ten views, dlib's MMOD CNN, the oversized-face HOG
view) found nothing, a head may still be in the image: seen from behind or in full profile (no face
detector is trained for those). MediaPipe's BlazePose (legacy ``solutions.pose``, model 1, which ships
in the wheel; the same model body_pose runs) estimates the nose, eyes, ears and mouth corners of a
person it finds, seen from any side. :class:`PoseHeadFinder` turns them into a face detection in the
cascade's format (:class:`~depthmarks_ros.core.face.detection.Detection`, source ``'pose_head'``): the
six BlazeFace keypoints (the face's right eye, left eye, nose tip, mouth centre, right ear, left ear)
and a head box, so the hybrid's keypoint path (regression to 68 points, then the turned-face predictor,
:meth:`HybridFace68._from_keypoints`) gives its landmarks as for any face the mesh cannot follow.

It never runs on video (the node): a stream without a face would pay it on every frame. A head too
small (``min_head_px``) is no face; ``min_head_visibility`` (mean visibility of the 11 head landmarks)
is 0 by default: the face points of a head seen from behind are hidden by definition.

A person seen from behind (:func:`facing_away`: their left shoulder and left ear on image-left) gives
the source ``'pose_head_back'`` (BACK_SOURCE; :func:`seen_from_behind`): no mesh is run on that head,
and the face pipeline reports its 68 points with visibility 0 (core/face/pipeline.py), as the
self-occlusion labels mark a point the head hides (core/face/visibility.py); their positions stay the
keypoint path's estimate (a back view's keypoints are mirrored relative to a face's).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

# BlazePose landmark indices: nose 0, left eye 2, right eye 5, left ear 7, right ear 8, mouth left 9, right 10
_NOSE, _LEYE, _REYE, _LEAR, _REAR, _MOUTH_L, _MOUTH_R = 0, 2, 5, 7, 8, 9, 10
_LSHOULDER, _RSHOULDER = 11, 12
BACK_SOURCE = 'pose_head_back'     # the Detection source of a head seen from behind
# facing_away: for shoulders and ears alike, left-minus-right image x below -this x the head box side (a
# profile's shoulders and ears nearly coincide: no decision), each point BlazePose-visible at least so. On
# the fit split's 1061 heads it finds on AFLW2000-3D / 300-W faces (none seen from behind), one pair alone
# (shoulders, else ears) called 7 back views, both together none (benchmarks/study_face_back_view.py)
BACK_MIN_SEPARATION = 0.15
BACK_MIN_VISIBILITY = 0.5
HEAD = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
# the smallest head taken (box side, px): the smallest face issue 18 asks for (40 px inter-ocular at
# 640x480) has a head box of >= ~52 px; the two false heads BlazePose found on 49 real images without a
# face (a FreiHAND and an InterHand2.6M hand) were 25 and 30 px (benchmarks/study_face_pose_head.py)
MIN_HEAD_PX = 48.0


def head_keypoints(pose_xy: np.ndarray) -> np.ndarray:
    """(6, 2) BlazeFace-order keypoints (right eye, left eye, nose tip, mouth centre, right ear, left
    ear) from BlazePose's (33, 2) landmarks (px)."""
    p = np.asarray(pose_xy, float)
    return np.array([p[_REYE], p[_LEYE], p[_NOSE], (p[_MOUTH_L] + p[_MOUTH_R]) / 2, p[_REAR], p[_LEAR]])


def head_box(pose_xy: np.ndarray) -> np.ndarray:
    """Square head box (x0, y0, x1, y1) px about the mean of the 11 head landmarks: its side 1.3 x the
    larger of the ear-to-ear distance and twice the nose-to-ear-midpoint distance (a profile's ears
    coincide). The hybrid's keypoint path takes its points from the keypoints; the box sets the size
    limit and the scale of that path's covariance."""
    p = np.asarray(pose_xy, float)
    ears = (p[_LEAR] + p[_REAR]) / 2
    side = 1.3 * max(np.linalg.norm(p[_LEAR] - p[_REAR]), 2.0 * np.linalg.norm(p[_NOSE] - ears), 1.0)
    c = p[list(HEAD)].mean(axis=0)
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])


def facing_away(landmarks: np.ndarray, side: float) -> bool:
    """Whether BlazePose's (33, 3) landmarks (x px, y px, visibility) show the person from behind: their
    left side on image-left (facing the camera, a person's left is on image-right), for the shoulders
    and the ears both: each of the four visible (BACK_MIN_VISIBILITY) and each pair's left at least
    BACK_MIN_SEPARATION x ``side`` (the head box side, px) left of its right. Anything else (a profile,
    a pair not seen, the pairs disagreeing: BlazePose swaps left and right on some frontal faces) is
    no back view (False: a face, as before)."""
    lm = np.asarray(landmarks, float)
    for left, right in ((_LSHOULDER, _RSHOULDER), (_LEAR, _REAR)):
        d = lm[left, 0] - lm[right, 0]
        if not (min(lm[left, 2], lm[right, 2]) >= BACK_MIN_VISIBILITY and d <= -BACK_MIN_SEPARATION * side):
            return False
    return True


def seen_from_behind(source: str) -> bool:
    """Whether a detection (or face result) of this source is a head seen from behind (BACK_SOURCE)."""
    return str(source) == BACK_SOURCE


class PoseHeadFinder:
    """BlazePose (static images, model 1) -> at most one head as a face ``Detection``."""

    def __init__(self, min_detection_confidence: float = 0.5, min_head_px: float = MIN_HEAD_PX,
                 min_head_visibility: float = 0.0):
        # the body node's BlazePose backend (core/body/backends.MediaPipePose: a clear BackendError where
        # mediapipe's legacy pose solution is missing)
        from depthmarks_ros.core.body.backends import MediaPipePose
        self._pose = MediaPipePose(static=True, min_confidence=min_detection_confidence)
        self.min_head_px = float(min_head_px)
        self.min_head_visibility = float(min_head_visibility)
        self.runs = 0

    def landmarks(self, rgb: np.ndarray) -> Optional[np.ndarray]:
        """(33, 3) x px, y px, visibility of the one person BlazePose finds, or None."""
        self.runs += 1
        people = self._pose.process(rgb)
        if not people:
            return None
        return np.column_stack([people[0].keypoints, people[0].visibility])

    def find(self, rgb: np.ndarray) -> List:
        """[] or [Detection] of the head of the person BlazePose finds in ``rgb``."""
        from depthmarks_ros.core.face.detection import Detection
        if rgb.ndim != 3 or min(rgb.shape[:2]) < 32:
            return []
        lm = self.landmarks(rgb)
        if lm is None:
            return []
        xy = lm[:, :2]
        if not np.all(np.isfinite(xy[list(HEAD)])):
            return []
        box = head_box(xy)
        h, w = rgb.shape[:2]
        c = (box[:2] + box[2:]) / 2
        vis = float(np.mean(lm[list(HEAD), 2]))
        if (box[2] - box[0] < self.min_head_px or vis < self.min_head_visibility
                or not (0 <= c[0] < w and 0 <= c[1] < h)):
            return []
        kp = head_keypoints(xy)
        facing = (kp[2, 0] - c[0]) / (box[2] - box[0])
        source = BACK_SOURCE if facing_away(lm, box[2] - box[0]) else 'pose_head'
        return [Detection(box, vis, source, facing=float(facing), keypoints=kp)]

    def close(self) -> None:
        self._pose.close()
