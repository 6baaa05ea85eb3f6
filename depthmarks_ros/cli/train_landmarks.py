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
    src.add_argument('--aflw', help='AFLW2000-3D folder (.jpg + .mat): visibility = not self-occluded by the face '
                     '(core/face/visibility.py), the LUVLi visibility label')
    p.add_argument('--split', default='all', choices=('all', 'fit', 'report'),
                   help='--data/--aflw images of this split only (core/face/datasets.py SPLIT_RULE on the file stem); '
                        'with fit/report every selected image trains (evaluate with eval-landmarks on the other split)')
    p.add_argument('--limit', type=int, default=0, help='at most N images (0: all)')
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
        samples = real_samples(args)
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
        if args.split != 'all':         # the split is the held-out rule: the last image trains too
            P2, O2, V2 = D.landmark_patches(samples[-1:], args.copies, rng, cfg.patch, frac, flip_pairs=flip)
            P, O, V = np.concatenate([P, P2]), np.concatenate([O, O2]), np.concatenate([V, V2])
    model = train_patches(P, O, V, cfg)
    results = evaluate_patches(model, Pt, Ot, Vt, true_sigma)
    config = {**cfg.to_dict(), 'patch_side_fraction': float(values.get('patch_side_fraction', 0.2)),
              'task': 'synthetic' if args.synthetic else (args.data or args.coco or args.aflw),
              'split': args.split, 'images': 0 if args.synthetic else len(samples),
              'train_seconds': round(time.time() - t0, 1)}
    # with --split fit/report the last image trains too: its figures are a check, not held out
    # (held-out figures: eval-landmarks --split report)
    key = 'held_out' if args.synthetic or args.split == 'all' else 'train_image_check'
    config[key] = results
    LandmarkUncertaintyModel(model, config).save(args.output)
    print(f'trained in {config["train_seconds"]} s; {key.replace("_", " ")}: ' +
          ', '.join(f'{k} {v:.3f}' for k, v in results.items()))
    return 0


def real_samples(args):
    """LandmarkSamples of --data (.pts), --coco or --aflw (visibility from self-occlusion), filtered by
    --split (sha1 rule on the file stem) and --limit."""
    import os
    from depthmarks_ros.core.learning import data as D
    split, limit = getattr(args, 'split', 'all'), getattr(args, 'limit', 0)
    if getattr(args, 'aflw', None):
        from depthmarks_ros.core.face.datasets import load_aflw2000_3d
        from depthmarks_ros.core.face.visibility import self_occlusion
        faces = load_aflw2000_3d(args.aflw, split)[:limit or None]
        return [D.LandmarkSample(f.load_rgb(), f.landmarks68, ~self_occlusion(f.points3d), f.stem) for f in faces]
    if args.data:
        from depthmarks_ros.core.face.datasets import in_split
        stems = [os.path.splitext(os.path.basename(p))[0] for p in sorted(os.listdir(args.data)) if p.endswith('.pts')]
        keep = {s for s in stems if in_split(s, split)}
        return [s for s in D.load_pts_folder(args.data) if s.name in keep][:limit or None]
    return D.load_coco_keypoints(args.coco)[:limit or None]
