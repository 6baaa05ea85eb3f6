"""`depthmarks stereo LEFT RIGHT -o DIR`: disparity and depth files from a rectified pair.

Writes disparity.pfm (float32 px, NaN invalid), disparity.png (16-bit, value = disparity * 256,
0 invalid), depth.npy (float32 metres, NaN invalid), depth.png (16-bit millimetres, 0 invalid)
and confidence.npy. Geometry from a rig file (--calib, sensors left/right) or --focal and
--baseline. Same per-frame chain (core/stereo/pipeline.py) as the stereo_depth node, and the
same matcher options and defaults (its spec, StereoDepthParams: --backend and every StereoParams
field): ``--P1``/``--P2`` are not derived from ``--window``; with another window pass them (the
common choice is 8 w^2 and 32 w^2, which the defaults are for w = 5).
"""
from __future__ import annotations

import os

import numpy as np


def add_arguments(p) -> None:
    p.add_argument('left')
    p.add_argument('right')
    p.add_argument('--output', '-o', required=True)
    p.add_argument('--calib', help='rig YAML with sensors left and right (rectifies raw images; scaled to the '
                   'image size when only the resolution differs)')
    p.add_argument('--focal', type=float, help='focal length in px (without --calib)')
    p.add_argument('--baseline', type=float, help='baseline in metres (without --calib)')
    from depthmarks_ros.cli.options import add_spec_options
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    # the node's options and defaults; --backend learned: a network (--model; docs/learned_stereo.md)
    add_spec_options(p, StereoDepthParams, aliases={'stereo_algorithm': ['--algorithm'],
                                                    'correlation_window_size': ['--window'], 'wls_filter': ['--wls'],
                                                    'model_path': ['--model']})


def run(args) -> int:
    import cv2
    from depthmarks_ros.cli.options import spec_from_args
    from depthmarks_ros.core.stereo import StereoParams
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    try:
        spec = spec_from_args(StereoDepthParams, args)
    except ValueError as exc:
        print(f'depthmarks stereo: {exc}')
        return 2
    from depthmarks_ros.core.stereo.io import write_disparity_png, write_pfm
    from depthmarks_ros.core.stereo.pipeline import StereoPipeline, cameras_from_focal_baseline
    left = cv2.imread(args.left, cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(args.right, cv2.IMREAD_GRAYSCALE)
    for path, img in ((args.left, left), (args.right, right)):
        if img is None:
            print(f'depthmarks stereo: cannot read {path}')
            return 2
    h, w = left.shape
    cameras = None
    if args.calib:
        from depthmarks_ros.core.calibration import load_rig
        from depthmarks_ros.core.stereo.calib import fit_to_size
        try:
            rig = load_rig(args.calib)
            cameras = fit_to_size(rig.camera('left'), rig.camera('right'), w, h)
        except (OSError, ValueError) as exc:  # CalibrationError is a ValueError
            print(f'depthmarks stereo: {args.calib}: {exc}')
            return 2
    elif args.focal and args.baseline:
        cameras = cameras_from_focal_baseline(w, h, args.focal, args.baseline)
    try:
        options = ({'model_path': spec.model_path, 'device': spec.device, 'half': spec.half}
                   if spec.backend == 'learned' else {})
        if spec.model_path and spec.backend != 'learned':
            raise ValueError('--model needs --backend learned')
        chain = StereoPipeline(spec.backend, StereoParams.take(spec), **options)
    except (OSError, ValueError) as exc:
        print(f'depthmarks stereo: backend {spec.backend}: {exc}')
        return 2
    try:
        frame = chain.process(left, right, cameras)
    except ValueError as exc:
        print(f'depthmarks stereo: {exc}')
        return 2
    finally:
        chain.close()
    os.makedirs(args.output, exist_ok=True)
    write_pfm(os.path.join(args.output, 'disparity.pfm'), frame.disparity)
    write_disparity_png(os.path.join(args.output, 'disparity.png'), frame.disparity)
    np.save(os.path.join(args.output, 'confidence.npy'), frame.confidence)
    sigma = getattr(chain.backend, 'last_sigma', None)
    if sigma is not None:  # a learned model with a sigma output: disparity sigma in px
        np.save(os.path.join(args.output, 'sigma.npy'), sigma)
    if frame.depth is not None:
        np.save(os.path.join(args.output, 'depth.npy'), frame.depth)
        mm = np.clip(np.nan_to_num(frame.depth * 1000.0, nan=0.0), 0, 65535).astype(np.uint16)
        cv2.imwrite(os.path.join(args.output, 'depth.png'), mm)
    print(f'wrote {args.output}')
    return 0
