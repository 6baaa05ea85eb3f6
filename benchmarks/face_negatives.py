"""Shared by the face studies (study_face_nofaces.py, study_face_pose_head.py): the real images of
../shared/data without a face close enough to find (KITTI object and Stereo 2012, Middlebury, the hand
sets), plus a synthetic blank and a noise image. Two OneHand10K images do hold a face (looked at):
REAL_FACES, which a detector must still find."""
import glob
import os
from typing import List, Tuple

import numpy as np

from depthmarks_ros.core.camera import assumed_K
from depthmarks_ros.core.face.datasets import load_aflw2000_3d, load_pts_folder, read_rgb

NEGATIVES = ('lidar/kitti_object/image_2/*.png', 'stereo/kitti2012/image_0/*.png', 'stereo/Cloth3/view*.png',
             'stereo/Cones2003/im*.png', 'hands/*/*.jpg')
REAL_FACES = ('onehand10k/33.jpg', 'onehand10k/9.jpg')      # hand images that hold a face (looked at)


def no_face_images(data: str, seed: int = 0) -> List[Tuple[str, np.ndarray]]:
    """[(name relative to ``data``, RGB image)]: every file of NEGATIVES in sorted order, then the
    synthetic blank and noise images (480x640; the noise from ``seed``)."""
    rng = np.random.default_rng(seed)
    out = [(os.path.relpath(p, data), read_rgb(p)) for pat in NEGATIVES
           for p in sorted(glob.glob(os.path.join(data, pat)))]
    out += [('synthetic blank 480x640', np.full((480, 640, 3), 128, np.uint8)),
            ('synthetic noise 480x640', rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))]
    return out


def holds_a_face(name: str) -> bool:
    """Whether the no-face image ``name`` is one of REAL_FACES."""
    return any(name.endswith(r) for r in REAL_FACES)


def faces_on(lm, rgb: np.ndarray):
    """The faces a FaceLandmarker finds on ``rgb`` with the assumed camera (core/camera.assumed_K): what
    the studies count on each image."""
    return lm.process(rgb, assumed_K(rgb.shape[1], rgb.shape[0]))


def fit_sets(data: str) -> dict:
    """{set name: the fit-split samples}: 300-W LFPW test and AFLW2000-3D (the report split is never read)."""
    return {'300-W': load_pts_folder(os.path.join(data, 'faces', '300w_lfpw_test'), 'fit'),
            'AFLW2000-3D': load_aflw2000_3d(os.path.join(data, 'faces', 'aflw2000_3d'), 'fit')}
