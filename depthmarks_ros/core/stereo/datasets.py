"""Real stereo frames with ground truth for training and benchmarks (ROS-free), and the split rule.

Folder layout as in the development data (``--data DIR``, e.g. ../shared/data):
``stereo/kitti2012/{image_0,image_1,disp_noc}/NNNNNN_10.png`` (disparity = value / 256, 0 = none),
``stereo/Cloth3`` (Middlebury 2006 half size: view1/view5, disp1 = value / 2),
``stereo/Cones2003`` (Middlebury 2003 quarter size: im2/im6, disp2 = value / 4), and skimage's
``stereo_motorcycle`` (Middlebury 2014, shipped with scikit-image).

Split rule (docs: real-data): a frame is in the report split when
``int(hashlib.sha1(stem.encode()).hexdigest(), 16) % 5 == 0`` (stem = file name without extension),
else in the fit split. The Middlebury frames are never trained on (all held out).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List

import numpy as np

from depthmarks_ros.core.split import SPLIT_RULE, in_split, is_report  # noqa: F401 (the one split rule)


@dataclass
class StereoFrame:
    name: str
    left: np.ndarray     # (H, W) uint8 grey or (H, W, 3) uint8 RGB
    right: np.ndarray
    gt: np.ndarray       # (H, W) float32 disparity px, NaN = no ground truth
    disparity_range: int = 128


def _read(path: str, flags):
    import cv2
    img = cv2.imread(path, flags)
    if img is None:
        raise FileNotFoundError(f'cannot read {path}')
    return img


def kitti2012_stems(data: str) -> List[str]:
    folder = os.path.join(data, 'stereo', 'kitti2012', 'disp_noc')
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder) if n.endswith('.png'))


def kitti2012_frames(data: str, split: str = 'all') -> List[StereoFrame]:
    """KITTI Stereo 2012 frames of ``split`` ('fit', 'report' or 'all'), grey images."""
    import cv2
    root = os.path.join(data, 'stereo', 'kitti2012')
    out = []
    for stem in kitti2012_stems(data):
        if not in_split(stem, split):
            continue
        v = _read(os.path.join(root, 'disp_noc', stem + '.png'), cv2.IMREAD_UNCHANGED)
        gt = v.astype(np.float32) / 256.0
        gt[v == 0] = np.nan
        out.append(StereoFrame(f'kitti2012/{stem}', _read(os.path.join(root, 'image_0', stem + '.png'),
                                                          cv2.IMREAD_GRAYSCALE),
                               _read(os.path.join(root, 'image_1', stem + '.png'), cv2.IMREAD_GRAYSCALE), gt, 128))
    return out


def middlebury_frames(data: str) -> List[StereoFrame]:
    """Cloth3, Cones2003 (from ``data``, when present) and skimage's motorcycle; RGB images."""
    import cv2
    out = []
    for name, lf, rf, gf, scale, rng in (('Cloth3', 'view1.png', 'view5.png', 'disp1.png', 2.0, 96),
                                        ('Cones2003', 'im2.png', 'im6.png', 'disp2.png', 4.0, 64)):
        folder = os.path.join(data, 'stereo', name)
        if not os.path.isdir(folder):
            continue
        v = _read(os.path.join(folder, gf), cv2.IMREAD_UNCHANGED)
        gt = v.astype(np.float32) / scale
        gt[v == 0] = np.nan
        out.append(StereoFrame(f'middlebury/{name}', _read(os.path.join(folder, lf), cv2.IMREAD_COLOR)[..., ::-1].copy(),
                               _read(os.path.join(folder, rf), cv2.IMREAD_COLOR)[..., ::-1].copy(), gt, rng))
    from skimage import data as skdata
    left, right, disp = skdata.stereo_motorcycle()
    gt = np.where(np.isfinite(disp) & (disp > 0), disp, np.nan).astype(np.float32)
    out.append(StereoFrame('middlebury/motorcycle (skimage)', left, right, gt, 64))
    return out
