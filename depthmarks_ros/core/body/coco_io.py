"""COCO keypoint files (ROS-free): read annotations, write keypoint results.

Annotations (``person_keypoints_*.json`` layout): per person ``keypoints`` [x, y, v] * 17 with
v = 0 unlabelled, 1 labelled but occluded, 2 visible; ``bbox`` [x, y, w, h]; ``area``.
Results (what COCO's evaluator reads): a list of
``{"image_id", "category_id": 1, "keypoints": [x, y, score] * 17, "score"}``.
"""
from __future__ import annotations

import json
from typing import Dict, List, Tuple

import numpy as np


def load_annotations(path: str) -> Dict[str, list]:
    """{file_name: [{'keypoints' (17, 2), 'labelled' (17,) bool, 'bbox' (4,) xywh, 'area', 'image_id'}]}."""
    with open(path) as fh:
        data = json.load(fh)
    names = {im['id']: im['file_name'] for im in data['images']}
    out: Dict[str, list] = {n: [] for n in names.values()}
    for a in data['annotations']:
        kp = np.asarray(a['keypoints'], np.float64).reshape(17, 3)
        if a.get('iscrowd', 0) or not (kp[:, 2] > 0).any():
            continue
        out[names[a['image_id']]].append({'keypoints': kp[:, :2], 'labelled': kp[:, 2] > 0,
                                          'bbox': np.asarray(a['bbox'], np.float64),
                                          'area': float(a.get('area', a['bbox'][2] * a['bbox'][3])),
                                          'image_id': a['image_id']})
    return out


def load_keypoint_set(path: str) -> Tuple[Dict[str, list], Dict[str, tuple]]:
    """Any COCO-style keypoint file (COCO, CrowdPose, AIC, MHP, PoseTrack18, ...) in COCO-17 terms.

    Joints are matched by name (lower case, '-' and ' ' as '_'): a set's joint with a COCO-17 name
    fills that index; COCO joints the set does not have are unlabelled (so OKS and PCK count only
    joints the set labels). Returns ({file_name: [person dicts as load_annotations, plus 'ignore':
    crowd or no labelled joint]}, {file_name: (width, height)}).
    """
    from depthmarks_ros.core.body.coco17 import COCO17_NAMES
    with open(path) as fh:
        data = json.load(fh)
    names = [n.lower().replace('-', '_').replace(' ', '_') for n in data['categories'][0]['keypoints']]
    to_coco = {i: COCO17_NAMES.index(n) for i, n in enumerate(names) if n in COCO17_NAMES}
    files = {im['id']: im['file_name'] for im in data['images']}
    sizes = {im['file_name']: (im.get('width'), im.get('height')) for im in data['images']}
    out: Dict[str, list] = {n: [] for n in files.values()}
    for a in data['annotations']:
        raw = np.asarray(a['keypoints'], np.float64).reshape(-1, 3)
        kp, lab = np.zeros((17, 2)), np.zeros(17, bool)
        for i, j in to_coco.items():
            kp[j], lab[j] = raw[i, :2], raw[i, 2] > 0
        x, y, w, h = a['bbox']
        out[files[a['image_id']]].append({'keypoints': kp, 'labelled': lab, 'bbox': np.asarray(a['bbox'], float),
                                          'area': float(a.get('area', w * h)), 'image_id': a['image_id'],
                                          'ignore': bool(a.get('iscrowd', 0)) or not lab.any()})
    return out, sizes


def result_entry(image_id, keypoints17: np.ndarray, scores17: np.ndarray, score: float) -> dict:
    kp = np.c_[keypoints17, scores17].astype(float)
    return {'image_id': image_id, 'category_id': 1, 'keypoints': [round(v, 2) for v in kp.ravel()],
            'score': round(float(score), 4)}


def wholebody_entry(image_id, keypoints133: np.ndarray, scores133: np.ndarray, score: float) -> dict:
    """COCO-WholeBody result: ``keypoints`` [x, y, score] * 133 (parts not found: 0, 0, 0)."""
    kp = np.c_[np.nan_to_num(keypoints133), np.where(np.isfinite(keypoints133[:, 0]), scores133, 0.0)]
    return {'image_id': image_id, 'category_id': 1, 'keypoints': [round(float(v), 2) for v in kp.ravel()],
            'score': round(float(score), 4)}


def write_results(path: str, entries: List[dict]) -> None:
    with open(path, 'w') as fh:
        json.dump(entries, fh)
