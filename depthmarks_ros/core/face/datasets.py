"""Readers for the annotated face sets used to fit and report (ROS-free), and the split rule.

* AFLW2000-3D: ``<stem>.jpg`` + ``<stem>.mat`` (``pt3d_68``: 3 x 68, x, y in pixels of the 450x450
  image, z towards the viewer; ``Pose_Para[0:3]`` = pitch, yaw, roll in radians in the convention of
  :mod:`depthmarks_ros.core.face.head_pose`).
* 300-W style folders: ``<stem>.png|.jpg`` + ``<stem>.pts`` (68 points, 1-based pixel origin:
  1 is subtracted).

Split rule (docs/face_landmarks.md): ``int(sha1(stem).hexdigest(), 16) % 5 == 0`` -> report split,
the rest -> fit split. Everything shipped in ``depthmarks_ros/data`` is fitted on the fit split only.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.split import SPLIT_RULE, in_split, is_report  # noqa: F401 (the one split rule)



def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; ValueError naming the file where it cannot be read."""
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'{path}: cannot read the image')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

@dataclass
class FaceSample:
    stem: str
    image_path: str
    landmarks68: np.ndarray                  # (68, 2) px, 0-based
    points3d: Optional[np.ndarray] = None    # (68, 3): x, y px, z px away from the camera (AFLW2000-3D)
    pose_deg: Optional[np.ndarray] = None    # yaw, pitch, roll (AFLW2000-3D)
    dataset: str = ''

    def load_rgb(self) -> np.ndarray:
        return read_rgb(self.image_path)


def _image_for(stem_path: str) -> Optional[str]:
    for ext in ('.jpg', '.png', '.jpeg'):
        if os.path.isfile(stem_path + ext):
            return stem_path + ext
    return None


def _annotated(folder: str, ext: str, split: str):
    """(stem, annotation file, image file) of each ``*<ext>`` annotation in ``folder`` (sorted) that has an
    image beside it and whose stem is in ``split`` (core/split.py)."""
    for path in sorted(glob.glob(os.path.join(folder, '*' + ext))):
        stem = os.path.splitext(os.path.basename(path))[0]
        img = _image_for(path[:-len(ext)])
        if img is not None and in_split(stem, split):
            yield stem, path, img


def load_aflw2000_3d(folder: str, split: str = 'all') -> List[FaceSample]:
    from scipy.io import loadmat
    out = []
    for stem, mat, img in _annotated(folder, '.mat', split):
        m = loadmat(mat)
        p = np.asarray(m['pt3d_68'], np.float64).T.copy()      # (68, 3)
        p[:, 2] *= -1.0                                          # z away from the camera
        pitch, yaw, roll = np.degrees(np.asarray(m['Pose_Para'], np.float64).ravel()[:3])
        out.append(FaceSample(stem, img, p[:, :2].copy(), p, np.array([yaw, pitch, roll]), 'aflw2000_3d'))
    return out


def load_pts_folder(folder: str, split: str = 'all', dataset: str = '300w') -> List[FaceSample]:
    from depthmarks_ros.core.pts_io import read_pts
    out = []
    for stem, pts, img in _annotated(folder, '.pts', split):
        lm = read_pts(pts)
        if lm.shape != (68, 2):
            continue
        out.append(FaceSample(stem, img, lm - 1.0, dataset=dataset))
    return out


# AFLW2000-3D ships no intrinsics and its labels come from a weak-perspective (scaled orthographic)
# 3DMM fit: the assumed pinhole camera has this focal length (px) and the principal point at the
# image centre. Chosen on the fit split: solvePnP of the ground-truth landmarks against the fitted
# mean face gives MAE 3.8 deg at f = 450, 2.1 at 900, 1.4 at 2000, 1.2 at 5000 (benchmarks and
# anchors use the same camera).
AFLW_FOCAL_PX = 2000.0
