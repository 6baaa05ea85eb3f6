"""`depthmarks fuse-kitti ROOT -o DIR`: KITTI image_2 + velodyne + calib -> dense depth + sigma.

ROOT holds image_2/, velodyne/ and calib/ (KITTI object/depth layout). For every frame id (or
--frames), writes DIR/<id>.png (KITTI depth PNG: uint16 = metres * 256, 0 = none), DIR/<id>_sigma.png
(same encoding, metres * 256) and DIR/<id>_sparse.png. Same core as the depth_fusion node.
"""
from __future__ import annotations

import os

from depthmarks_ros.core.fusion.completion import METHODS


def add_arguments(p) -> None:
    p.add_argument('root', help='folder with image_2/, velodyne/, calib/')
    p.add_argument('--output', '-o', required=True)
    p.add_argument('--frames', nargs='*', help='frame ids (default: all in image_2/)')
    p.add_argument('--completion', default='scanline', choices=METHODS,
                   help='completion (default scanline: the one the shipped KITTI sigma model is fitted for)')
    p.add_argument('--sigma-model', default='kitti',
                   help="fitted sigma model JSON (depthmarks fit-fusion); 'kitti' (default) = the shipped "
                        "model fitted on real KITTI data, 'sim' = the built-in simulated-rig defaults")


def run(args) -> int:
    import cv2
    from depthmarks_ros.core.camera import CalibrationError
    from depthmarks_ros.core.fusion import kitti
    from depthmarks_ros.core.fusion.learned import load_model
    from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_frame
    from depthmarks_ros.core.fusion.uncertainty import SigmaModel
    from depthmarks_ros.core.fusion.real_data import SHIPPED_KITTI_MODEL
    if args.sigma_model == 'sim':
        model = SigmaModel()
    else:
        model = load_model(SHIPPED_KITTI_MODEL if args.sigma_model == 'kitti' else args.sigma_model)
    settings = FusionSettings(args.completion, model)
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
