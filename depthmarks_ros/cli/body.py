"""`depthmarks body IMAGE... -o results.json`: COCO keypoint results (17 keypoints per person).

Whole images by default (MediaPipe Pose finds one person per image); with ``--annotations
person_keypoints.json`` the person boxes there are used top-down (one crop per box, the standard
protocol for single-person models) and image ids come from the file. Same core as body_pose.
"""
from __future__ import annotations

import os

import numpy as np


def add_arguments(p) -> None:
    p.add_argument('images', nargs='+')
    p.add_argument('--output', '-o', required=True, help='COCO keypoint-results JSON')
    p.add_argument('--backend', default='mediapipe')
    p.add_argument('--annotations', default='', help='COCO keypoint annotations: crop per person box')


def run(args) -> int:
    import cv2
    from depthmarks_ros.core.body.backends import BackendError, create_backend
    from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17
    from depthmarks_ros.core.body.coco_io import load_annotations, result_entry, write_results
    from depthmarks_ros.core.body.pipeline import coco17_in_box
    try:
        backend = create_backend(args.backend, static=True)
    except BackendError as exc:
        print(f'body: {exc}')
        return 2
    ann = load_annotations(args.annotations) if args.annotations else {}
    entries = []
    for path in args.images:
        bgr = cv2.imread(path)
        if bgr is None:
            print(f'{path}: cannot read, skipped')
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        name = os.path.basename(path)
        stem = os.path.splitext(name)[0]
        people = ann.get(name)
        if people is not None:
            found = [coco17_in_box(backend, rgb, p['bbox']) for p in people]
            for p, r in zip(people, found):
                if r is not None:
                    entries.append(result_entry(p['image_id'], *r))
            n = sum(r is not None for r in found)
        else:
            image_id = int(stem) if stem.isdigit() else stem
            res = backend.process(rgb)
            for r in res:
                i = BLAZEPOSE_TO_COCO17
                entries.append(result_entry(image_id, r.keypoints[i], r.visibility[i], r.score))
            n = len(res)
        print(f'{path}: {n} person(s)')
    write_results(args.output, entries)
    backend.close()
    return 0
