"""`depthmarks train-stereo`: train the compact disparity refinement network and export it (ONNX + YAML).

Trains on simulated-rig frames and, with --data, the fit split of the KITTI Stereo 2012 frames
(split rule in core/stereo/datasets.py; the report split and all Middlebury frames are never
used). Seeded and bounded (--iterations, --max-minutes); the YAML beside the model records the
command, seed, configuration and the frames trained on. The shipped model
(depthmarks_ros/data/stereo_refine.onnx) was made with:

    nice -n 10 depthmarks train-stereo --data ../shared/data -o depthmarks_ros/data/stereo_refine.onnx
"""
from __future__ import annotations

import sys


def add_arguments(p) -> None:
    from depthmarks_ros.core.stereo.train_refine import TrainConfig
    d = TrainConfig()
    p.add_argument('--data', help='development data folder (with stereo/kitti2012); without it: simulated frames only')
    p.add_argument('--output', '-o', required=True, help='model file to write (.onnx; the .yaml goes beside it)')
    p.add_argument('--seed', type=int, default=d.seed)
    p.add_argument('--iterations', type=int, default=d.iterations)
    p.add_argument('--max-minutes', type=float, default=d.max_minutes, help='stop training after this long')
    p.add_argument('--batch', type=int, default=d.batch)
    p.add_argument('--crop', type=int, nargs=2, default=list(d.crop), metavar=('ROWS', 'COLS'),
                   help='training crop (multiples of 8)')
    p.add_argument('--lr', type=float, default=d.lr)
    p.add_argument('--width', type=int, default=d.width, help='channels of the first layer')
    p.add_argument('--sim-frames', type=int, default=d.sim_frames)
    p.add_argument('--real-weight', type=float, default=d.real_weight, help='share of crops from real frames')
    p.add_argument('--l1-weight', type=float, default=d.l1_weight, help='weight of the L1 term next to the NLL')
    p.add_argument('--threads', type=int, default=d.threads)
    from depthmarks_ros.core.stereo.refine_net import FEATURES
    p.add_argument('--features', default=d.features, choices=sorted(FEATURES),
                   help='feature set and network (v2, shipped: choice among hole fills + residual on a left-padded '
                        'matcher; v3: v2 starting from the row rule, not shipped; v1: residual)')
    p.add_argument('--mix-weight', type=float, default=d.mix_weight,
                   help='v2: weight of the candidate-mixture NLL')


def run(args) -> int:
    import os
    from depthmarks_ros.core.stereo.train_refine import TrainConfig, run_training
    if any(c <= 0 or c % 8 for c in args.crop):
        print(f'depthmarks train-stereo: --crop {args.crop[0]} {args.crop[1]}: both must be positive multiples of 8')
        return 2
    if args.data and not os.path.isdir(os.path.join(args.data, 'stereo', 'kitti2012')):
        print(f'depthmarks train-stereo: {args.data}/stereo/kitti2012 not found')
        return 2
    cfg = TrainConfig(seed=args.seed, iterations=args.iterations, max_minutes=args.max_minutes, batch=args.batch,
                      crop=tuple(args.crop), lr=args.lr, width=args.width, sim_frames=args.sim_frames,
                      real_weight=args.real_weight, l1_weight=args.l1_weight, threads=args.threads,
                      features=args.features, mix_weight=args.mix_weight)
    command = 'depthmarks train-stereo ' + ' '.join(
        a if not os.path.isabs(a) else os.path.relpath(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else \
        'depthmarks train-stereo'
    run_training(args.data, args.output, cfg, command, lambda m: print(m, flush=True))
    return 0
