"""COCO keypoint files (ROS-free): read annotations, write keypoint results.

Annotations (``person_keypoints_*.json`` layout): per person ``keypoints`` [x, y, v] * 17 with
v = 0 unlabelled, 1 labelled but occluded, 2 visible; ``bbox`` [x, y, w, h]; ``area``.
Results (what COCO's evaluator reads): a list of
``{"image_id", "category_id": 1, "keypoints": [x, y, score] * 17, "score"}``.
"""
from __future__ import annotations

import json
from typing import Dict, List

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


def result_entry(image_id, keypoints17: np.ndarray, scores17: np.ndarray, score: float) -> dict:
    kp = np.c_[keypoints17, scores17].astype(float)
    return {'image_id': image_id, 'category_id': 1, 'keypoints': [round(v, 2) for v in kp.ravel()],
            'score': round(float(score), 4)}


def write_results(path: str, entries: List[dict]) -> None:
    with open(path, 'w') as fh:
        json.dump(entries, fh)
