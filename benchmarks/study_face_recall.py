#!/usr/bin/env python3
"""Which faces does each backend miss? Lists them per set and split (issue 18, recall).

A development study: run on the FIT split (the default) to look at the misses and design detector
views; the report split is scored by bench_face.py (split rule: int(sha1(stem).hexdigest(), 16) % 5 == 0
-> report split, the rest -> fit split). A face counts as found as in bench_face.py (a returned face
whose landmark centre lies within half the annotation's extent of the annotated centre).

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_face_recall.py \
        --data ../shared/data --split fit --methods hybrid
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.face.datasets import SPLIT_RULE, load_aflw2000_3d, load_pts_folder  # noqa: E402
from depthmarks_ros.core.face.model_fit import run_on_sample  # noqa: E402
from depthmarks_ros.core.face.pipeline import FaceLandmarker  # noqa: E402

METHODS = {
    'hybrid': dict(backend='hybrid'),
    'dlib_hog': dict(backend='dlib'),
    'dlib_cascade': dict(backend='dlib', dlib_detector='cascade'),
    'mediapipe': dict(backend='mediapipe'),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--split', default='fit', choices=('fit', 'report'))
    ap.add_argument('--methods', default='hybrid', help='comma-separated: ' + ', '.join(METHODS))
    ap.add_argument('--limit', type=int, default=0)
    ap.add_argument('--json', default='', help='write the misses here')
    args = ap.parse_args()
    print(f'split: {args.split} ({SPLIT_RULE}); load average {os.getloadavg()}')
    sets = {'300-W': load_pts_folder(os.path.join(args.data, 'faces', '300w_lfpw_test'), args.split),
            'AFLW2000-3D': load_aflw2000_3d(os.path.join(args.data, 'faces', 'aflw2000_3d'), args.split)}
    out = {}
    for m in args.methods.split(','):
        lm = FaceLandmarker(static=True, **METHODS[m])
        for set_name, samples in sets.items():
            samples = samples[:args.limit] if args.limit else samples
            t0 = time.time()
            missed = []
            for s in samples:
                r = run_on_sample(lm, s)
                if r['face'] is None:
                    yaw = None if s.pose_deg is None else round(float(s.pose_deg[0]), 1)
                    missed.append(dict(stem=s.stem, yaw=yaw, other_faces=r['n_faces'], path=s.image_path))
            n = len(samples)
            print(f'{m:14s} {set_name:12s} found {n - len(missed)}/{n}  ({time.time() - t0:.0f} s)')
            for x in missed:
                print(f"    missed {x['stem']} yaw {x['yaw']} (faces elsewhere: {x['other_faces']})")
            out.setdefault(m, {})[set_name] = dict(n=n, missed=missed)
        lm.close()
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    print(f'load average at the end: {os.getloadavg()}')


if __name__ == '__main__':
    main()
