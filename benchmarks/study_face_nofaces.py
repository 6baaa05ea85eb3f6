#!/usr/bin/env python3
"""False faces on images without one, and the fit-split faces the same checks could cost (issue 18).

The hybrid's faces that no mesh follows come from the detector alone (FaceDetector views + keypoint
path); on images without a face a fist, a hand, a cloth or noise came out so. A face the mesh cannot
follow is kept only where two views found it; the cascade's first hit was kept whatever its count.
This study runs the whole default hybrid on the images without a face (KITTI object and 2012, Middlebury, hand images (two OneHand10K images hold a
real face: it must stay found), a blank and a noise image), printing each face found, then on the FIT
split only (split rule below; the report split is bench_face.py's) on the images where the cascade's
first hit (a MediaPipe view) reaches the mesh step (the only images where its view count can change
the answer), counting the annotated faces found.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_face_nofaces.py --data /work/shared/data
"""
import argparse
import glob
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.face.datasets import SPLIT_RULE, load_aflw2000_3d, load_pts_folder  # noqa: E402
from depthmarks_ros.core.face.model_fit import run_on_sample  # noqa: E402
from depthmarks_ros.core.face.pipeline import FaceLandmarker  # noqa: E402
from depthmarks_ros.testing.scenes import FACE_K  # noqa: E402

NEGATIVES = ('lidar/kitti_object/image_2/*.png', 'stereo/kitti2012/image_0/*.png', 'stereo/Cloth3/view*.png',
             'stereo/Cones2003/im*.png', 'hands/*/*.jpg')
REAL_FACES = ('onehand10k/33.jpg', 'onehand10k/9.jpg')      # hand images that hold a face (looked at)


def read_rgb(path):
    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--no-fit', action='store_true', help='the images without a face only')
    args = ap.parse_args()
    print(f'split: fit ({SPLIT_RULE}); load average {os.getloadavg()}')
    t0 = time.time()
    lm = FaceLandmarker('hybrid', static=True)
    mesh = lm.backend.mesh
    seen = []
    mesh_dets = mesh._mesh_dets

    def record(rgb, dets, out):         # a cascade hit: a MediaPipe detection that detect_all did not return
        last = mesh._detector.last_faces
        seen.extend(d for d in dets if d.source.startswith('mp_') and not any(d is f for f in last))
        mesh_dets(rgb, dets, out)
    mesh._mesh_dets = record
    print('\n-- images without a face (any face is false, but in', ', '.join(REAL_FACES), ') --')
    rng = np.random.default_rng(0)
    neg = [(os.path.relpath(p, args.data), read_rgb(p)) for pat in NEGATIVES
           for p in sorted(glob.glob(os.path.join(args.data, pat)))]
    neg += [('synthetic blank 480x640', np.full((480, 640, 3), 128, np.uint8)),
            ('synthetic noise 480x640', rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))]
    false = real = 0
    for name, rgb in neg:
        lm.tracker = type(lm.tracker)()
        faces = lm.process(rgb, FACE_K)
        if any(name.endswith(r) for r in REAL_FACES):
            real += len(faces) > 0
        else:
            false += len(faces)
        if faces:
            print(f'  {name}: {len(faces)} face(s), layouts {[f.layout for f in faces]}')
    print(f'images without a face: {len(neg) - len(REAL_FACES)}, false faces {false}; real faces in hand '
          f'images found {real}/{len(REAL_FACES)}  ({time.time() - t0:.0f} s)')
    if args.no_fit:
        return
    sets = {'300-W': load_pts_folder(os.path.join(args.data, 'faces', '300w_lfpw_test'), 'fit'),
            'AFLW2000-3D': load_aflw2000_3d(os.path.join(args.data, 'faces', 'aflw2000_3d'), 'fit')}
    for set_name, samples in sets.items():
        t0 = time.time()
        touched, missed = [], []
        for s in samples:
            rgb = s.load_rgb()
            seen.clear()
            mesh.process(rgb)               # the mesh step alone first (cheap): did a cascade hit reach it?
            if not seen:
                continue                    # no: the view count of the cascade's hits cannot change the answer
            touched.append(s.stem)
            if run_on_sample(lm, s, rgb)['face'] is None:
                missed.append(s.stem)
        print(f'{set_name}: {len(samples)} fit images, {len(touched)} where a cascade hit reaches the mesh step; of those '
              f'found {len(touched) - len(missed)}/{len(touched)}; missed {missed}  ({time.time() - t0:.0f} s)')
    print(f'load average at the end: {os.getloadavg()}')


if __name__ == '__main__':
    main()
