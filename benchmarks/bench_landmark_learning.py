#!/usr/bin/env python3
"""Landmark learning: training time of the bundled small configuration on the synthetic task (target
< 3 min on 2 cores) with its held-out calibration, and on the 300-W samples in --data: a sigma head
trained on augmented copies of one image, evaluated on the other image's dlib landmarks (Spearman of
predicted sigma with the actual error; target > 0.3), next to the test-time-augmentation sigma.
"""
import argparse
import glob
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)


def main():
    from scipy.stats import spearmanr
    from depthmarks_ros.core.face.ibug68 import FLIP_68
    from depthmarks_ros.core.face.metrics import calibration_2d
    from depthmarks_ros.core.face.pipeline import FaceLandmarker
    from depthmarks_ros.core.learning import data as D
    from depthmarks_ros.core.learning.evaluate import evaluate_patches
    from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
    from depthmarks_ros.core.learning.train import TrainConfig, train_patches
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    args = ap.parse_args()
    print(f'load average: {os.getloadavg()[0]:.2f}')
    cfg = TrainConfig()
    t0 = time.time()
    P, O, _s, V, _ = D.synthetic_patches(cfg.samples, cfg.patch, cfg.seed)
    model = train_patches(P, O, V, cfg)
    t_train = time.time() - t0
    Pt, Ot, sig, Vt, _ = D.synthetic_patches(2000, cfg.patch, 1)
    r = evaluate_patches(model, Pt, Ot, Vt, sig)
    print(f'synthetic task, bundled small configuration ({cfg.steps} steps, {cfg.samples} patches): '
          f'{t_train:.1f} s to generate + train (target < 180 s)')
    print(f'  held-out: within 1/2/3 sigma {r["within_1"]:.3f}/{r["within_2"]:.3f}/{r["within_3"]:.3f} '
          f'(Gaussian 0.393/0.865/0.989), Spearman(sigma, true sigma) {r["spearman_sigma_true_sigma"]:.3f}, '
          f'visibility occluded {r["visibility_occluded_mean"]:.3f} / visible {r["visibility_visible_mean"]:.3f}')
    folder = os.path.join(args.data, 'faces', '300w_lfpw')
    samples = D.load_pts_folder(folder) if os.path.isdir(folder) else []
    if len(samples) < 2:
        print('(300-W samples not found: face part skipped)')
        return
    dlib = FaceLandmarker('dlib', static=True)
    for train_i, test_i in ((0, 1), (1, 0)):
        rng = np.random.default_rng(0)
        Pf, Of, Vf = D.landmark_patches([samples[train_i]], 150, rng, cfg.patch, 0.2, flip_pairs=FLIP_68)
        net = train_patches(Pf, Of, Vf, TrainConfig(steps=600))
        m = LandmarkUncertaintyModel(net, {'patch': cfg.patch, 'width': cfg.width, 'patch_side_fraction': 0.2})
        s = samples[test_i]
        dlib.tracker = type(dlib.tracker)()
        faces = dlib.process(s.image)
        if not faces:
            print(f'no dlib face in {s.name}')
            continue
        f = min(faces, key=lambda fc: np.linalg.norm(fc.landmarks68.mean(0) - s.points.mean(0)))
        err = f.landmarks68 - s.points
        cov, _vis = m.predict(s.image, f.landmarks68)
        sig_learned = np.sqrt(np.trace(cov, axis1=1, axis2=2) / 2)
        sig_tta = np.sqrt(np.trace(f.cov68, axis1=1, axis2=2) / 2)
        e = np.linalg.norm(err, axis=1)
        cl, ct = calibration_2d(err, cov), calibration_2d(err, f.cov68)
        print(f'300-W: trained on {samples[train_i].name}, tested on {s.name} (dlib landmarks): Spearman(sigma, error) '
              f'learned {spearmanr(sig_learned, e).correlation:.2f} vs TTA {spearmanr(sig_tta, e).correlation:.2f}; '
              f'within 1/2 sigma learned {cl["within_1"]:.2f}/{cl["within_2"]:.2f}, TTA {ct["within_1"]:.2f}/{ct["within_2"]:.2f}')


if __name__ == '__main__':
    main()
