"""`depthmarks train-landmarks -o DIR (--synthetic | --data FOLDER)`: train the patch uncertainty model
(mean offset + full 2x2 covariance + visibility, LUVLi loss) and save DIR/weights.pt + config.json
with the held-out evaluation. --data: images with 300-W .pts files (or --coco JSON)."""
from __future__ import annotations

import time


def add_arguments(p) -> None:
    p.add_argument('--output', '-o', required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--synthetic', action='store_true', help='the synthetic heteroscedastic task')
    src.add_argument('--data', help='folder of images with .pts landmark files')
    src.add_argument('--coco', help='COCO keypoint JSON (images next to it)')
    p.add_argument('--config', default='', help='YAML training configuration (default: config/landmark_model_small.yaml)')
    p.add_argument('--steps', type=int, default=0, help='override the configured steps')
    p.add_argument('--copies', type=int, default=40, help='augmented copies per annotated image')


def _config(args):
    import os
    import yaml
    from depthmarks_ros.core.calibration import package_config_dir
    from depthmarks_ros.core.learning.train import TrainConfig
    path = args.config or os.path.join(package_config_dir(), 'landmark_model_small.yaml')
    values = yaml.safe_load(open(path)) if os.path.isfile(path) else {}
    cfg = TrainConfig(**{k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__})
    if args.steps:
        cfg.steps = args.steps
    return cfg, values


def run(args) -> int:
    import numpy as np
    from depthmarks_ros.core.learning import data as D
    from depthmarks_ros.core.learning.evaluate import evaluate_patches
    from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
    from depthmarks_ros.core.learning.train import train_patches
    cfg, values = _config(args)
    t0 = time.time()
    true_sigma = None
    if args.synthetic:
        P, O, _sig, V, _c = D.synthetic_patches(cfg.samples, cfg.patch, cfg.seed)
        Pt, Ot, true_sigma, Vt, _ = D.synthetic_patches(2000, cfg.patch, cfg.seed + 1)
    else:
        samples = D.load_pts_folder(args.data) if args.data else D.load_coco_keypoints(args.coco)
        if len(samples) < 2:
            print('need at least two annotated images (one is held out for evaluation)')
            return 2
        rng = np.random.default_rng(cfg.seed)
        flip = None
        if samples[0].points.shape[0] == 68:
            from depthmarks_ros.core.face.ibug68 import FLIP_68
            flip = FLIP_68
        frac = float(values.get('patch_side_fraction', 0.2))
        P, O, V = D.landmark_patches(samples[:-1], args.copies, rng, cfg.patch, frac, flip_pairs=flip)
        Pt, Ot, Vt = D.landmark_patches(samples[-1:], 8, rng, cfg.patch, frac, flip_pairs=flip)
    model = train_patches(P, O, V, cfg)
    results = evaluate_patches(model, Pt, Ot, Vt, true_sigma)
    config = {**cfg.to_dict(), 'patch_side_fraction': float(values.get('patch_side_fraction', 0.2)),
              'task': 'synthetic' if args.synthetic else (args.data or args.coco),
              'train_seconds': round(time.time() - t0, 1), 'held_out': results}
    LandmarkUncertaintyModel(model, config).save(args.output)
    print(f'trained in {config["train_seconds"]} s; held-out: ' +
          ', '.join(f'{k} {v:.3f}' for k, v in results.items()))
    return 0
