"""Landmark data (ROS-free): the formats we read, augmentation, and the synthetic task.

Formats:
* 300-W / iBUG ``.pts`` next to each image (``image.png`` + ``image.pts``): :func:`load_pts_folder`.
* COCO keypoint JSON (``annotations`` with ``keypoints`` [x, y, v] * K, ``images`` with file names):
  :func:`load_coco_keypoints`; v = 0 unlabelled, 1 labelled but occluded, 2 visible.
* Biwi Kinect Head Pose (documented, no sample reachable here): ``<seq>/frame_XXXXX_rgb.png`` with
  ``frame_XXXXX_pose.txt`` holding a 3x3 rotation (3 rows) then the head centre (mm):
  :func:`read_biwi_pose`.
Augmentation (:func:`augment`): random affine (rotation, scale, shift), horizontal flip with the
landmark index swap, occlusion rectangles that mark covered landmarks invisible.
Synthetic heteroscedastic task (:func:`synthetic_patches`): a patch shows a blob whose blur is the
visible property; its label is the blob centre plus Gaussian noise whose sigma grows with the blur,
so the best possible sigma is known exactly; some patches are occluded (visibility 0).
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class LandmarkSample:
    image: np.ndarray         # (H, W, 3) uint8 RGB
    points: np.ndarray        # (K, 2) px
    visible: np.ndarray       # (K,) bool
    name: str = ''


def load_pts_folder(folder: str) -> List[LandmarkSample]:
    import cv2
    from depthmarks_ros.core.pts_io import read_pts
    out = []
    for pts_path in sorted(glob.glob(os.path.join(folder, '*.pts'))):
        stem = pts_path[:-4]
        img_path = next((stem + e for e in ('.png', '.jpg', '.jpeg') if os.path.isfile(stem + e)), None)
        if img_path is None:
            continue
        img = cv2.imread(img_path)
        pts = read_pts(pts_path)
        out.append(LandmarkSample(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), pts, np.ones(len(pts), bool),
                                  os.path.basename(stem)))
    return out


def load_coco_keypoints(json_path: str, image_dir: Optional[str] = None) -> List[LandmarkSample]:
    import cv2
    with open(json_path) as f:
        data = json.load(f)
    image_dir = image_dir or os.path.dirname(json_path)
    files = {im['id']: im['file_name'] for im in data['images']}
    out = []
    for ann in data['annotations']:
        kp = np.array(ann['keypoints'], np.float64).reshape(-1, 3)
        img = cv2.imread(os.path.join(image_dir, files[ann['image_id']]))
        if img is None:
            continue
        out.append(LandmarkSample(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), kp[:, :2], kp[:, 2] == 2,
                                  f'{ann["image_id"]}_{ann.get("id", len(out))}'))
    return out


def read_biwi_pose(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """(R 3x3, head centre (3,) in mm) from a Biwi ``frame_XXXXX_pose.txt``."""
    vals = np.loadtxt(path)
    return vals[:3, :3], vals[3, :3]


def augment(sample: LandmarkSample, rng: np.random.Generator, flip_pairs: Optional[np.ndarray] = None,
            max_rot: float = 15.0, scale_range=(0.9, 1.1), max_shift: float = 0.05,
            occlusion_prob: float = 0.3) -> LandmarkSample:
    import cv2
    img = sample.image
    h, w = img.shape[:2]
    pts = sample.points.copy()
    vis = sample.visible.copy()
    if flip_pairs is not None and rng.random() < 0.5:
        img = img[:, ::-1]
        pts = np.column_stack([w - 1 - pts[:, 0], pts[:, 1]])[flip_pairs]
        vis = vis[flip_pairs]
    c = pts.mean(0)
    A = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), rng.uniform(-max_rot, max_rot), rng.uniform(*scale_range))
    A[:, 2] += rng.uniform(-max_shift, max_shift, 2) * [w, h]
    img = cv2.warpAffine(np.ascontiguousarray(img), A, (w, h), borderMode=cv2.BORDER_REFLECT)
    pts = pts @ A[:, :2].T + A[:, 2]
    if rng.random() < occlusion_prob:
        span = np.ptp(pts, axis=0)
        ow, oh = (rng.uniform(0.2, 0.4, 2) * span).astype(int) + 1
        ox, oy = (pts.min(0) + rng.uniform(0, 1, 2) * (span - [ow, oh])).astype(int)
        img = img.copy()
        img[max(oy, 0):oy + oh, max(ox, 0):ox + ow] = rng.integers(0, 255, 3)
        covered = (pts[:, 0] >= ox) & (pts[:, 0] < ox + ow) & (pts[:, 1] >= oy) & (pts[:, 1] < oy + oh)
        vis = vis & ~covered
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    return LandmarkSample(img, pts, vis & inside, sample.name)


def synthetic_patches(n: int, size: int = 32, seed: int = 0, occluded_fraction: float = 0.15):
    """The synthetic heteroscedastic task.

    Returns (patches (n, 1, size, size) float32 in [0, 1], offsets (n, 2) label - centre in px,
    true_sigma (n,), visible (n,) bool, blob_centre (n, 2)). The blob (Gaussian, width 1.5 + 3 b)
    sits near the centre; b in [0, 1] is the blur; label noise sigma = 0.5 + 3.5 b px.
    """
    import cv2
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    patches = np.empty((n, 1, size, size), np.float32)
    b = rng.uniform(0, 1, n)
    centre = size / 2 + rng.uniform(-3, 3, (n, 2))
    sigma = 0.5 + 3.5 * b
    labels = centre + rng.standard_normal((n, 2)) * sigma[:, None]
    visible = rng.random(n) >= occluded_fraction
    for i in range(n):
        width = 1.5 + 3.0 * b[i]
        blob = np.exp(-((xx - centre[i, 0]) ** 2 + (yy - centre[i, 1]) ** 2) / (2 * width ** 2))
        img = 0.2 + 0.6 * blob + rng.normal(0, 0.03, (size, size))
        if not visible[i]:
            x0, y0 = (centre[i] - size * 0.3).astype(int)
            cv2.rectangle(img, (x0, y0), (x0 + int(size * 0.6), y0 + int(size * 0.6)), float(rng.uniform(0.3, 0.9)), -1)
        patches[i, 0] = np.clip(img, 0, 1)
    return patches, (labels - size / 2).astype(np.float32), sigma.astype(np.float32), visible, centre


def landmark_patches(samples: List[LandmarkSample], copies: int, rng: np.random.Generator, patch: int = 32,
                     side_fraction: float = 0.2, noise_fraction: float = 0.03,
                     flip_pairs: Optional[np.ndarray] = None):
    """Training patches from annotated images: each augmented copy perturbs every landmark by
    Gaussian noise (a random share, up to ``noise_fraction``, of the landmark set's size) as a stand-in
    for a backend's guess; the patch is centred on the guess and the label is the offset back to the
    annotation (patch px). Returns (patches, offsets, visible)."""
    import cv2
    from depthmarks_ros.core.learning.inference import extract_patches, landmark_set_size
    P, O, V = [], [], []
    for s in samples:
        for _ in range(copies):
            a = augment(s, rng, flip_pairs)
            size = landmark_set_size(a.points)
            side = side_fraction * size
            noise = rng.uniform(0.1, 1.0, len(a.points))[:, None] * noise_fraction * size
            guess = a.points + rng.standard_normal(a.points.shape) * noise
            grey = cv2.cvtColor(a.image, cv2.COLOR_RGB2GRAY)
            P.append(extract_patches(grey, guess, side, patch))
            O.append(((a.points - guess) / (side / patch)).astype(np.float32))
            V.append(a.visible)
    return np.concatenate(P), np.concatenate(O), np.concatenate(V)
