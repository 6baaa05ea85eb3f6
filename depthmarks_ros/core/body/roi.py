"""Rotated square regions for the landmark models, and the rules that make them (ROS-free).

Convention: a :class:`Roi` is a square of side ``size`` px centred at (``cx``, ``cy``) px, rotated
by ``rotation`` rad (MediaPipe's ``NormalizedRect.rotation``: the angle that turns the region's
"up" onto the image's up; 0 = upright). Alignment rule (MediaPipe's AlignmentPoints /
RectTransformation calculators, rewritten here): with a start point s and an end point e,
``rotation = wrap(pi/2 - atan2(-(e_y - s_y), e_x - s_x))``, so the s -> e direction becomes
"up" in the crop; a shift sy moves the centre by sy x (the height before scaling) along the
region's rotated y axis.

Rules (scales are MediaPipe's published constants):

* person from the pose detector: centre keypoint 0 (hip centre), side 2 |kp1 - kp0|, scale 1.25;
* person from the previous frame's auxiliary landmarks: the same rule (tracking);
* hand from hand landmarks: rotation wrist (0) -> middle-finger base (9), the box of the palm and
  finger-base landmarks in the rotated frame, scale 2.0, shift -0.1 (towards the fingers);
* hand from a palm detection: rotation keypoint 0 -> 2, the detector box, scale 2.6, shift -0.5;
* hand from the body (ours): wrist w and finger bases (BlazePose index/pinky) m = (2 index +
  pinky) / 3, rotation w -> m, centre w + ``HAND_FROM_BODY_SHIFT`` (m - w), side
  ``HAND_FROM_BODY_SCALE`` |m - w|.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

HAND_FROM_BODY_SHIFT = 0.7
HAND_FROM_BODY_SCALE = 3.6
HAND_PALM_POINTS = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]


@dataclass
class Roi:
    cx: float
    cy: float
    size: float
    rotation: float = 0.0

    def box(self) -> np.ndarray:
        """Axis-aligned box (x0, y0, x1, y1) that holds the rotated square."""
        half = 0.5 * self.size * (abs(np.cos(self.rotation)) + abs(np.sin(self.rotation)))
        return np.array([self.cx - half, self.cy - half, self.cx + half, self.cy + half])


def _wrap(a: float) -> float:
    return float((a + np.pi) % (2 * np.pi) - np.pi)


def alignment_rotation(start: np.ndarray, end: np.ndarray, target_angle: float = np.pi / 2) -> float:
    """The rotation (rad, wrapped to [-pi, pi)) that turns the ``start`` -> ``end`` line (image px) to
    ``target_angle`` (counter-clockwise from image-right, y up; default up: a person's or hand's
    alignment points; 0: a face's eye line), as MediaPipe's DetectionsToRectsCalculator computes it."""
    return _wrap(target_angle - np.arctan2(-(end[1] - start[1]), end[0] - start[0]))


def _shifted(cx: float, cy: float, height: float, rotation: float, shift_y: float, size: float) -> Roi:
    # RectTransformation: shift along the rotated y axis by a share of the height before scaling
    dx, dy = -height * shift_y * np.sin(rotation), height * shift_y * np.cos(rotation)
    return Roi(float(cx + dx), float(cy + dy), float(size), float(rotation))


def roi_from_alignment(centre: np.ndarray, circle_point: np.ndarray, scale: float = 1.25) -> Optional[Roi]:
    """Person region from two alignment points (detector keypoints 0/1 or auxiliary landmarks)."""
    radius = float(np.linalg.norm(np.asarray(circle_point) - np.asarray(centre)))
    if not np.isfinite(radius) or radius < 1.0:
        return None
    return Roi(float(centre[0]), float(centre[1]), 2 * radius * scale, alignment_rotation(centre, circle_point))


def hand_roi_from_landmarks(kp21: np.ndarray, scale: float = 2.0, shift_y: float = -0.1) -> Optional[Roi]:
    if not np.all(np.isfinite(kp21[HAND_PALM_POINTS])):
        return None
    rot = alignment_rotation(kp21[0], kp21[9])
    c, s = np.cos(rot), np.sin(rot)
    pts = kp21[HAND_PALM_POINTS]
    # into the region's frame (undo the rotation), box there, centre back
    R = np.array([[c, s], [-s, c]])
    local = pts @ R.T
    lo, hi = local.min(0), local.max(0)
    centre = R.T @ ((lo + hi) / 2)
    size = float(max(hi - lo)) * scale
    if size < 4.0:
        return None
    return _shifted(centre[0], centre[1], float(hi[1] - lo[1]), rot, shift_y, size)


def hand_roi_from_palm(box: np.ndarray, kp: np.ndarray, scale: float = 2.6, shift_y: float = -0.5) -> Optional[Roi]:
    if len(kp) < 3:
        return None
    rot = alignment_rotation(kp[0], kp[2])
    size = float(max(box[2] - box[0], box[3] - box[1])) * scale
    if size < 4.0:
        return None
    return _shifted((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, float(box[3] - box[1]), rot, shift_y, size)


def hand_roi_from_body(wrist: np.ndarray, index: np.ndarray, pinky: np.ndarray) -> Optional[Roi]:
    m = (2 * np.asarray(index) + np.asarray(pinky)) / 3.0
    d = m - np.asarray(wrist)
    length = float(np.linalg.norm(d))
    if not np.isfinite(length) or length < 2.0:
        return None
    c = np.asarray(wrist) + HAND_FROM_BODY_SHIFT * d
    return Roi(float(c[0]), float(c[1]), HAND_FROM_BODY_SCALE * length, alignment_rotation(wrist, m))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def keypoint_box(kp: np.ndarray, weights: Optional[np.ndarray] = None, min_weight: float = 0.3) -> np.ndarray:
    """Box (x0, y0, x1, y1) of the keypoints (those with weight >= min_weight when given, else all finite)."""
    ok = np.all(np.isfinite(kp), axis=1)
    if weights is not None and (ok & (weights >= min_weight)).sum() >= 2:
        ok &= weights >= min_weight
    if not ok.any():
        return np.zeros(4)
    p = kp[ok]
    return np.r_[p.min(0), p.max(0)]
