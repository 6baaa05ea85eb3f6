"""`depthmarks fit-fusion -o model.json`: fit the fusion sigma models (learned weights) on the
simulated rig with the Gaussian NLL, against its exact ground truth. Same core as the node."""
from __future__ import annotations

from depthmarks_ros.core.fusion.completion import METHODS


def add_arguments(p) -> None:
    p.add_argument('--output', '-o', required=True, help='JSON file to write')
    p.add_argument('--frames', type=int, default=4, help='simulated frames (seeds) to fit on')
    p.add_argument('--completion', default='classical', choices=METHODS,
                   help='completion the sigma model is fitted for (the node default: classical)')
    p.add_argument('--steps', type=int, default=300)
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)


def collect_samples(frames: int, completion: str, width: int = 640, height: int = 480, seed0: int = 100):
    """Simulated frames -> fitting samples (LiDAR completion + stereo depth + ground truth)."""
    import cv2
    import numpy as np
    from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
    from depthmarks_ros.core.fusion.projection import sparse_depth_image
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    matcher = StereoMatcher(StereoParams())
    samples = []
    for i in range(frames):
        sim = SimRig(SimConfig(width=width, height=height, seed=seed0 + i, motion=True))
        t = 0.7 * i
        f = sim.render(t)
        sweep = sim.render_lidar(t)
        pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
        sparse = sparse_depth_image(pts, sim.rig.transform('lidar', 'left'), sim.stereo.left)
        grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)]
        st = matcher.compute(*grey)
        samples.append({'gt': f.depth_gt, 'lidar': complete(sparse, completion, f.left_rgb),
                        'lidar_dist': distance_to_measurement(sparse),
                        'stereo': sim.stereo.disparity_to_depth(st.disparity), 'stereo_conf': st.confidence,
                        'fb': sim.stereo.focal * sim.stereo.baseline})
    matcher.close()
    return samples


def run(args) -> int:
    from depthmarks_ros.core.fusion.learned import fit_sigma_model, save_model
    samples = collect_samples(args.frames, args.completion, args.width, args.height)
    model = fit_sigma_model(samples, steps=args.steps)
    save_model(model, args.output)
    print(f'wrote {args.output}: {model.to_dict()}')
    return 0
