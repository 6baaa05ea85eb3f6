"""`depthmarks mono IMAGE -o DIR --model M [--sparse DEPTH.npy|.png]`: relative inverse depth
(inverse_depth.npy) and, given sparse metric depth (npy metres, or 16-bit PNG in KITTI's m*256),
metric depth (depth.npy, depth.png in mm) from the same core, options and defaults as the
mono_depth node (its spec, MonoDepthParams: --min-reference-points, --max-depth, ...)."""
from __future__ import annotations

import os

import numpy as np


def add_arguments(p) -> None:
    p.add_argument('image')
    p.add_argument('--output', '-o', required=True)
    from depthmarks_ros.cli.options import add_spec_options
    from depthmarks_ros.params.mono_depth import MonoDepthParams
    p.add_argument('--sparse', default='', help='sparse metric depth: .npy (m, NaN/0 none) or KITTI 16-bit png')
    add_spec_options(p, MonoDepthParams)   # --model (needed), --device, --input-size, ...


def run(args) -> int:
    import cv2
    from depthmarks_ros.cli.options import spec_from_args
    from depthmarks_ros.core.mono.alignment import fit_scale_shift
    from depthmarks_ros.core.mono.models import ModelNotFound, NotADepthModel, load_depth_model
    from depthmarks_ros.params.mono_depth import MonoDepthParams
    bgr = cv2.imread(args.image)
    if bgr is None:
        print(f'cannot read {args.image}')
        return 2
    try:
        p = spec_from_args(MonoDepthParams, args)
        model = load_depth_model(p.model, p.device, p.input_size, p.half, p.allow_download, p.midas_repo,
                                 p.checkpoint)
    except (ValueError, ModelNotFound, NotADepthModel) as exc:
        print(f'depthmarks mono: {exc}')
        return 2
    rel = model.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    os.makedirs(args.output, exist_ok=True)
    np.save(os.path.join(args.output, 'inverse_depth.npy'), rel)
    if args.sparse:
        if args.sparse.endswith('.npy'):
            sparse = np.load(args.sparse).astype(np.float32)
        else:
            from depthmarks_ros.core.fusion.kitti import read_depth_png
            sparse = read_depth_png(args.sparse)
        sparse[~(sparse > 0)] = np.nan
        fit = fit_scale_shift(rel, sparse, min_points=p.min_reference_points)
        if fit is None:
            print('too few sparse depth points for a metric fit: wrote inverse depth only')
            return 0
        depth = fit.apply(rel, p.max_depth)
        np.save(os.path.join(args.output, 'depth.npy'), depth)
        cv2.imwrite(os.path.join(args.output, 'depth.png'),
                    np.clip(np.nan_to_num(depth * 1000, nan=0), 0, 65535).astype(np.uint16))
        print(f'scale {fit.scale:.5g}, shift {fit.shift:.5g}, {fit.inliers}/{fit.n_reference} inliers')
    return 0
