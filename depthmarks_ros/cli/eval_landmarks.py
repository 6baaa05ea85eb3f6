"""`depthmarks eval-landmarks --model DIR (--synthetic | --data FOLDER | --aflw FOLDER) [--split report]`: NME (with --data), NLL,
calibration (share within 1/2/3 sigma vs the 2D Gaussian 0.393/0.865/0.989), sigma-error correlation."""
from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument('--model', required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--synthetic', action='store_true')
    src.add_argument('--data', help='folder of images with .pts files')
    src.add_argument('--aflw', help='AFLW2000-3D folder (visibility = not self-occluded, core/face/visibility.py)')
    p.add_argument('--split', default='all', choices=('all', 'fit', 'report'),
                   help='images of this split only (core/face/datasets.py SPLIT_RULE on the file stem)')
    p.add_argument('--limit', type=int, default=0, help='at most N images (0: all)')
    p.add_argument('--seed', type=int, default=123)


def run(args) -> int:
    import numpy as np
    from depthmarks_ros.core.learning import data as D
    from depthmarks_ros.core.learning.evaluate import evaluate_patches
    from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
    m = LandmarkUncertaintyModel.load(args.model)
    patch = m.config['patch']
    if args.synthetic:
        P, O, sig, V, _ = D.synthetic_patches(2000, patch, args.seed)
        res = evaluate_patches(m.net, P, O, V, sig)
    else:
        from depthmarks_ros.cli.train_landmarks import real_samples
        args.coco = None
        samples = real_samples(args)
        P, O, V = D.landmark_patches(samples, 8, np.random.default_rng(args.seed), patch, m.side_fraction)
        res = evaluate_patches(m.net, P, O, V)
        nmes = []
        from depthmarks_ros.core.face.metrics import nme_interocular
        for s in samples:
            if len(s.points) == 68:
                refined, _, _ = m.predict_full(s.image, s.points)
                nmes.append(nme_interocular(refined, s.points))
        if nmes:
            res['nme_refined_from_annotation'] = float(np.mean(nmes))
    res['images'] = 0 if args.synthetic else len(samples)
    res['split'] = args.split
    print(json.dumps(res, indent=2))
    return 0
