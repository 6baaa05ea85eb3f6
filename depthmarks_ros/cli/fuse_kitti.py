"""`depthmarks fuse-kitti ROOT -o DIR`: KITTI image_2 + velodyne + calib -> dense depth + sigma.

ROOT holds image_2/, velodyne/ and calib/ (KITTI object/depth layout). For every frame id (or
--frames), writes DIR/<id>.png (KITTI depth PNG: uint16 = metres * 256, 0 = none), DIR/<id>_sigma.png
(same encoding, metres * 256) and DIR/<id>_sparse.png. Same core as the depth_fusion node.

Its defaults are the KITTI preset, config/kitti/depth_fusion.yaml (read here): the node started with
that parameter file computes what this command computes (docs/depth_fusion.md).
"""
from __future__ import annotations

import os

from depthmarks_ros.core.fusion.completion import METHODS
from depthmarks_ros.params.depth_fusion import DepthFusionParams


KITTI_PRESET = ('kitti', 'depth_fusion.yaml')   # under the package's config/


def kitti_preset() -> dict:
    """The depth_fusion parameters of the KITTI preset file (config/kitti/depth_fusion.yaml)."""
    import yaml
    from depthmarks_ros.core.calibration import package_config_dir
    with open(os.path.join(package_config_dir(), *KITTI_PRESET)) as f:
        return yaml.safe_load(f)['/**']['ros__parameters']


def add_arguments(p) -> None:
    preset = kitti_preset()
    p.add_argument('root', help='folder with image_2/, velodyne/, calib/')
    p.add_argument('--output', '-o', required=True)
    p.add_argument('--frames', nargs='*', help='frame ids (default: all in image_2/)')
    p.add_argument('--completion', default=preset['completion'], choices=METHODS,
                   help='completion (default: the KITTI preset\'s, config/kitti/depth_fusion.yaml)')
    spec = DepthFusionParams()
    for name, kind in (('max_depth', float), ('visibility_rows', int), ('visibility_cols', int)):
        p.add_argument('--' + name.replace('_', '-'), type=kind, default=preset.get(name, getattr(spec, name)),
                       help=f"as the node's {name} (default: the KITTI preset's, else the node's)")
    p.add_argument('--sigma-model', default=preset['sigma_model_file'],
                   help="as the node's sigma_model_file: a fitted model JSON (depthmarks fit-fusion), 'kitti' = "
                        "the shipped model fitted on real KITTI data, '' or 'sim' = the built-in simulated-rig "
                        "defaults (default: the KITTI preset's)")


def run(args) -> int:
    import cv2
    from depthmarks_ros.core.camera import CalibrationError
    from depthmarks_ros.core.fusion import kitti
    from depthmarks_ros.core.fusion.learned import resolve_sigma_model
    from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_frame
    fp = DepthFusionParams(completion=args.completion, max_depth=args.max_depth,
                           visibility_rows=args.visibility_rows, visibility_cols=args.visibility_cols)
    problem = fp.problem()
    if problem:
        print(f'fuse-kitti: {problem}')
        return 2
    settings = FusionSettings.from_params(fp, resolve_sigma_model(args.sigma_model))
    ids = args.frames or sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(args.root, 'image_2')))
    os.makedirs(args.output, exist_ok=True)
    failures = 0
    for fid in ids:
        try:
            bgr = cv2.imread(os.path.join(args.root, 'image_2', f'{fid}.png'))
            if bgr is None:
                raise ValueError('cannot read image_2/%s.png' % fid)
            calib = kitti.read_calib(os.path.join(args.root, 'calib', f'{fid}.txt'))
            velo = kitti.read_velodyne(os.path.join(args.root, 'velodyne', f'{fid}.bin'))
        except (ValueError, OSError, CalibrationError) as exc:
            print(f'{fid}: skipped: {exc}')
            failures += 1
            continue
        h, w = bgr.shape[:2]
        cam, velo2cam = kitti.camera_and_extrinsics(calib, w, h)
        res = fuse_frame(velo[:, :3], velo2cam, cam, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), settings)
        kitti.write_depth_png(os.path.join(args.output, f'{fid}.png'), res.depth)
        kitti.write_depth_png(os.path.join(args.output, f'{fid}_sigma.png'), res.sigma)
        kitti.write_depth_png(os.path.join(args.output, f'{fid}_sparse.png'), res.sparse)
        print(f'{fid}: {int((res.sparse > 0).sum())} LiDAR pixels -> {int((res.depth > 0).sum())} depth pixels')
    return 1 if failures and failures == len(ids) else 0
