"""`depthmarks sim`: render simulated-rig frames and their ground truth to files.

Per frame i: left_i.png, right_i.png (RGB), depth_i.npy (float32 metres, NaN = nothing),
depth_i.png (16-bit, millimetres, 0 = nothing), disparity_i.npy (float32 px),
lidar_i.bin (KITTI velodyne layout: float32 x, y, z, intensity) and lidar_i.npy (with ring),
plus calibration/ (the rig YAMLs used). Same generator, options and defaults as the sim_rig
node (its spec, SimRigParams).
"""
from __future__ import annotations

import os

import numpy as np


def add_arguments(p) -> None:
    p.add_argument('--output', '-o', required=True, help='folder to write into')
    p.add_argument('--frames', type=int, default=1)
    from depthmarks_ros.cli.options import add_spec_options
    from depthmarks_ros.params.sim_rig import SimRigParams
    add_spec_options(p, SimRigParams)   # what the rig renders, as the sim_rig node (--rate: simulated time)


def run(args) -> int:
    import cv2
    from depthmarks_ros.cli.options import spec_from_args
    from depthmarks_ros.core.calibration import Rig, save_rig
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.params.sim_rig import SimRigParams
    if args.frames < 1:
        print('depthmarks sim: --frames must be >= 1')
        return 2
    try:
        p = spec_from_args(SimRigParams, args)
        sim = SimRig(SimConfig.take(p))
    except ValueError as exc:
        print(f'depthmarks sim: {exc}')
        return 2
    os.makedirs(os.path.join(args.output, 'calibration'), exist_ok=True)
    rig = Rig(sim.rig.name, sim.rig.base_frame, dict(sim.rig.sensors))
    save_rig(rig, os.path.join(args.output, 'calibration', 'rig.yaml'), {'left': 'left.yaml', 'right': 'right.yaml'})
    for i in range(args.frames):
        t = i / p.rate
        f = sim.render(t)
        sweep = sim.render_lidar(t)
        out = lambda name: os.path.join(args.output, f'{name}_{i:06d}')  # noqa: E731
        cv2.imwrite(out('left') + '.png', cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(out('right') + '.png', cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2BGR))
        np.save(out('depth') + '.npy', f.depth_gt)
        np.save(out('disparity') + '.npy', f.disparity_gt)
        mm = np.nan_to_num(f.depth_gt * 1000.0, nan=0.0)
        cv2.imwrite(out('depth') + '.png', np.clip(mm, 0, 65535).astype(np.uint16))
        np.save(out('lidar') + '.npy', sweep)
        kitti = np.stack([sweep['x'], sweep['y'], sweep['z'], sweep['intensity']], 1).astype(np.float32)
        kitti.tofile(out('lidar') + '.bin')
    print(f'wrote {args.frames} frame(s) to {args.output}')
    return 0
