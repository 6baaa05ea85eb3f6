"""Fitting and scoring samples from real sensor data (ROS-free): the KITTI LiDAR hold-out and KITTI
Stereo 2012 disparities, in the sample format of :func:`core.fusion.learned.fit_sigma_model`.

Split rule (docs/real-data): a frame whose stem ``s`` has ``int(sha1(s).hexdigest(), 16) % 5 == 0``
is in the report split, every other frame in the fit split. With the two KITTI object frames of the
development data this puts 000001 in the fit split and 000002 in the report split.

LiDAR hold-out (the protocol of benchmarks/bench_fusion.py): a random 20 % of the projected LiDAR
pixels are hidden, the rest is completed, and the hidden returns are the truth.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

from depthmarks_ros.core.split import SPLIT_RULE, is_report  # noqa: F401 (the one split rule)
from depthmarks_ros.core.split import split_stems as _split_stems

HOLD_OUT_SHARE = 0.2
# KITTI's rig: fx of the rectified cameras (721.5377 px) x the 0.54 m stereo baseline. KITTI Stereo
# 2012 ships no calibration here; its frames are taken with this rig, so depth figures assume it.
KITTI_FOCAL_BASELINE = 721.5377 * 0.54
# fitted on the fit split of real KITTI data (its "provenance" says how); for KITTI-like rigs
SHIPPED_KITTI_MODEL = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'data',
                                                    'fusion_sigma_kitti.json'))
in_report_split = is_report


def split_stems(stems: List[str], part: str) -> List[str]:
    """The stems of ``part`` ('fit' or 'report') by SPLIT_RULE."""
    if part not in ('fit', 'report'):
        raise ValueError(f"split part must be 'fit' or 'report', not {part!r}")
    return _split_stems(stems, part)


def hold_out(sparse: np.ndarray, share: float = HOLD_OUT_SHARE, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(input with a random ``share`` of the measured pixels hidden, (H, W) bool mask of the hidden ones)."""
    rng = np.random.default_rng(seed)
    measured = np.argwhere(np.isfinite(sparse))
    hide = measured[rng.random(len(measured)) < share]
    inp = sparse.copy()
    inp[hide[:, 0], hide[:, 1]] = np.nan
    mask = np.zeros(sparse.shape, bool)
    mask[hide[:, 0], hide[:, 1]] = True
    return inp, mask


def kitti_object_stems(root: str) -> List[str]:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'image_2')) if n.endswith('.png'))


def kitti_object_frame(root: str, stem: str):
    """(sparse LiDAR depth (H, W), rgb (H, W, 3)) of one KITTI object/depth frame."""
    import cv2
    from depthmarks_ros.core.fusion import kitti
    from depthmarks_ros.core.fusion.projection import sparse_depth_image
    bgr = cv2.imread(os.path.join(root, 'image_2', f'{stem}.png'))
    if bgr is None:
        raise ValueError(f'cannot read {root}/image_2/{stem}.png')
    calib = kitti.read_calib(os.path.join(root, 'calib', f'{stem}.txt'))
    velo = kitti.read_velodyne(os.path.join(root, 'velodyne', f'{stem}.bin'))
    cam, velo2cam = kitti.camera_and_extrinsics(calib, bgr.shape[1], bgr.shape[0])
    return sparse_depth_image(velo[:, :3], velo2cam, cam), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def lidar_holdout_sample(sparse: np.ndarray, rgb: np.ndarray, method: str, seed: int = 0) -> Dict[str, np.ndarray]:
    """A fitting sample: the completion of the kept returns, scored at the hidden ones; the sigma features
    of the kept returns from uncertainty.lidar_features (the node's)."""
    from depthmarks_ros.core.fusion.completion import complete
    from depthmarks_ros.core.fusion.uncertainty import lidar_features
    inp, mask = hold_out(sparse, seed=seed)
    dense = complete(inp, method, rgb)
    f = lidar_features(inp, dense)
    return {'gt': np.where(mask, sparse, np.nan).astype(np.float32), 'lidar': dense, 'lidar_dist': f['dist'],
            'lidar_resid': f['resid'], 'lidar_gap': f['gap'], 'lidar_layer': f['layer']}


def kitti_stereo_stems(root: str) -> List[str]:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(root, 'disp_noc')) if n.endswith('.png'))


def kitti_stereo_sample(root: str, stem: str, matcher, focal_baseline: float = KITTI_FOCAL_BASELINE
                        ) -> Dict[str, np.ndarray]:
    """A fitting sample from one KITTI Stereo 2012 frame: our disparity and confidence against
    ``disp_noc`` (value / 256, 0 = none), both as depth Z = f B / d with the assumed ``focal_baseline``."""
    import cv2
    from depthmarks_ros.core.stereo.io import read_disparity_png
    left = cv2.imread(os.path.join(root, 'image_0', f'{stem}.png'), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(os.path.join(root, 'image_1', f'{stem}.png'), cv2.IMREAD_GRAYSCALE)
    if left is None or right is None:
        raise ValueError(f'cannot read the image pair of {stem} in {root}')
    gt_disp = read_disparity_png(os.path.join(root, 'disp_noc', f'{stem}.png'))
    res = matcher.compute(left, right)
    with np.errstate(divide='ignore', invalid='ignore'):
        gt = np.where(gt_disp > 0, focal_baseline / gt_disp, np.nan).astype(np.float32)
        est = np.where(res.disparity > 0, focal_baseline / res.disparity, np.nan).astype(np.float32)
    return {'gt': gt, 'stereo': est, 'stereo_conf': res.confidence, 'fb': float(focal_baseline),
            'disparity': res.disparity, 'gt_disparity': gt_disp}
