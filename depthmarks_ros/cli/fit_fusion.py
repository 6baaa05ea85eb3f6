"""`depthmarks fit-fusion -o model.json`: fit the fusion sigma models (learned weights) with the
Gaussian NLL: on the simulated rig against its exact ground truth (default), or on real data
(`--kitti` LiDAR hold-out, `--kitti-stereo` KITTI Stereo 2012 disparities), fit split only
(core/fusion/real_data.py). Same core as the node.

The shipped real-data model, depthmarks_ros/data/fusion_sigma_kitti.json, is
    depthmarks fit-fusion --kitti ../shared/data/lidar/kitti_object \
        --kitti-stereo ../shared/data/stereo/kitti2012 --completion scanline -o fusion_sigma_kitti.json
"""
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
    p.add_argument('--kitti', default='', help='KITTI object/depth folder (image_2/, velodyne/, calib/): fit the '
                   'LiDAR sigma on 20%% hold-out returns of its fit-split frames instead of the simulated rig')
    p.add_argument('--kitti-stereo', default='', help='KITTI Stereo 2012 folder (image_0/, image_1/, disp_noc/): '
                   'fit the stereo disparity sigma on its fit-split frames')
    p.add_argument('--hold-out-seeds', type=int, default=3, help='random hold-outs per KITTI LiDAR frame')
    from depthmarks_ros.core.fusion.learned import LIDAR_SCALE_STAGE, LIDAR_SCALES
    p.add_argument('--lidar-scales', default=LIDAR_SCALE_STAGE, choices=LIDAR_SCALES,
                   help='--kitti: the LiDAR sigma\'s calibration after the layer term\'s NLL fit: band (one scale, '
                        'learned.band_calibration_scale) or a quantile stage (learned.quantile_refit: the pinball '
                        'losses at 68.3 %% within 1 sigma and 95.4 %% within 2 refit S\'s scale and g; -layer also '
                        'w0, w1; -all also S\'s shape)')


def default_stereo_matcher():
    """The stereo matcher the sigma fits score: the stereo_depth spec's default backend (what the node
    and `depthmarks stereo` run) with StereoParams() defaults, called as StereoMatcher
    (backend.ResultMatcher)."""
    from depthmarks_ros.core.stereo import StereoParams
    from depthmarks_ros.core.stereo.backend import ResultMatcher
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    return ResultMatcher(StereoDepthParams().backend, StereoParams())


def collect_samples(frames: int, completion: str, width: int = 640, height: int = 480, seed0: int = 100):
    """Simulated frames -> fitting samples (LiDAR completion + stereo depth + ground truth). The stereo
    depth is the full-size OpenCV matcher's (backend opencv), not the default backend's: the built-in
    model has one sigma_scale for every source, and fitted on coarse_to_fine_census's heavier-tailed
    errors it narrows the LiDAR sigma (report seeds 0-2: LiDAR 0.49 / 0.79 within 1 / 2 sigma instead of
    0.61 / 0.90, stereo 0.89 / 0.96 instead of 0.75 / 0.86, fused the same 0.71 / 0.94;
    docs/depth_fusion.md). The fused terms are fitted on the default backend's output (fit_fused_terms)."""
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


# seeds whose fused output fits the fused terms (SigmaModel.stereo_fuse_factor, fused_scale);
# bench_fusion.py --sim reports on seeds 0..2
FUSED_FIT_SEED0 = 100


def node_chain():
    """(stereo chain, DepthFusionParams): what `depthmarks run` runs on the simulated rig, the stereo_depth
    and depth_fusion parameters as the pipeline's graph gives them to the nodes (their config files and
    the graph's overrides: stereo_depth's disparity_range 64 on the simulated rig, depth_fusion's
    use_stereo), and stereo_depth's per-frame chain with them."""
    from depthmarks_ros.core.stereo import StereoParams
    from depthmarks_ros.core.stereo.pipeline import StereoPipeline
    from depthmarks_ros.params.depth_fusion import DepthFusionParams
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    from depthmarks_ros.pipeline.graph import GraphConfig, merged_parameters, plan
    held = {n.name: merged_parameters(n) for n in plan(GraphConfig(source='sim', face=False, body=False)).nodes}
    sp = StereoDepthParams.from_mapping(held['stereo_depth'], strict=False)
    fp = DepthFusionParams.from_mapping(held['depth_fusion'], strict=False)
    return StereoPipeline(sp.backend, StereoParams.take(sp)), fp


def sim_pipeline_inputs(seed: int, chain):
    """The simulated rig's frame (seed, t = 0) through the stereo chain: (frame, LiDAR points (N, 3),
    lidar -> camera, camera, StereoInput, stereo frame)."""
    import numpy as np
    from depthmarks_ros.core.fusion.pipeline import StereoInput
    from depthmarks_ros.core.sim import SimConfig, SimRig
    sim = SimRig(SimConfig(seed=seed))
    f, sweep = sim.render(0.0), sim.render_lidar(0.0)
    pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
    cam = sim.stereo.left
    st = chain.process(f.left_rgb, f.right_rgb, (sim.stereo.left, sim.stereo.right))
    stereo = StereoInput(st.depth, cam.fx, sim.stereo.baseline, st.confidence)
    return f, pts, sim.rig.transform('lidar', 'left'), cam, stereo, st


def fused_samples(inputs, model, fp):
    """Fused-output samples ('gt', 'fused', 'fused_sigma') of ``model`` on ``inputs`` (sim_pipeline_inputs
    tuples) with the fusion parameters ``fp``."""
    from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_frame
    settings = FusionSettings.from_params(fp, model)
    out = []
    for f, pts, T, cam, stereo, _ in inputs:
        r = fuse_frame(pts, T, cam, f.left_rgb, settings, stereo=stereo)
        out.append({'gt': f.depth_gt, 'fused': r.depth, 'fused_sigma': r.sigma})
    return out


def fit_fused_terms(model, frames: int = 4, seed0: int = FUSED_FIT_SEED0):
    """``model`` with its fused terms fitted on the fused output of the node chain (node_chain) on seeds
    seed0.. : the stereo sigma's fusion factor (least fused RMSE), then the fused sigma's scale
    (learned.margin_scale: the shares farthest inside the target bands); no fused-edge term (with the
    factor it moves neither share, docs/depth_fusion.md)."""
    from dataclasses import replace
    from depthmarks_ros.core.fusion.learned import fit_fused_scale, fit_stereo_fuse_factor
    chain, fp = node_chain()
    inputs = [sim_pipeline_inputs(seed, chain) for seed in range(seed0, seed0 + frames)]
    m = replace(model, stereo_fuse_factor=1.0, fused_edge=0.0, fused_scale=1.0)
    m = replace(m, stereo_fuse_factor=fit_stereo_fuse_factor(
        lambda k: fused_samples(inputs, replace(m, stereo_fuse_factor=k), fp)))
    return replace(m, fused_scale=fit_fused_scale(fused_samples(inputs, m, fp)))


def fit_sim_model(frames: int = 4, completion: str = 'classical', steps: int = 300, width: int = 640,
                  height: int = 480):
    """The built-in model's fit: the per-source sigmas (fit_sigma_model on collect_samples), then the
    fused terms on the node chain's fused output of the same number of seeds (fit_fused_terms)."""
    from depthmarks_ros.core.fusion.learned import fit_sigma_model
    return fit_fused_terms(fit_sigma_model(collect_samples(frames, completion, width, height), steps=steps), frames)


def collect_real_samples(kitti_root: str = '', stereo_root: str = '', completion: str = 'scanline',
                         seeds: int = 3, lidar_scales: str = ''):
    """Fit-split samples from real data: (samples, provenance dict)."""
    from depthmarks_ros.core.fusion import real_data as R
    from depthmarks_ros.core.fusion import learned as L
    from depthmarks_ros.core.fusion.learned import BAND_ONE_SIGMA_MAX, BAND_TWO_SIGMA
    samples, prov = [], {'split_rule': R.SPLIT_RULE}
    stage = lidar_scales or L.LIDAR_SCALE_STAGE
    if kitti_root:
        stems = R.split_stems(R.kitti_object_stems(kitti_root), 'fit')
        for stem in stems:
            sparse, rgb = R.kitti_object_frame(kitti_root, stem)
            samples += [R.lidar_holdout_sample(sparse, rgb, completion, seed) for seed in range(seeds)]
        prov['lidar'] = {'data': 'KITTI object frames', 'fit_frames': stems, 'completion': completion,
                         'terms': 's0 and k (interpolation residual); a, b, c left out (learned.REAL_LIDAR_FIXED); '
                                  'then that sigma^p * (1 + row gap)^q, Laplace NLL (learned.fit_lidar_gap), then the layer '
                                  'term sqrt(S^2 + P (g G)^2), G the 5x9 layer gap, P = sigmoid(w0 + w1 log(1 + 10 G / z)) '
                                  f'with w1 in [{L.LAYER_SLOPE_MIN:g}, {L.LAYER_SLOPE_MAX:g}] (P non-decreasing in G) and '
                                  f'|w0| <= {L.LAYER_BIAS_MAX:g}, Laplace NLL (learned.fit_lidar_layer)',
                         'calibration': ('learned.band_calibration_scale (as the stereo sigma)'
                                         if stage == 'band' else
                                         f'--lidar-scales {stage}: learned.quantile_refit of '
                                         f'{", ".join(L.QUANTILE_REFIT[stage])} by the pinball losses at '
                                         f'{L.QUANTILE_SHARES[0]:.1%} within 1 sigma and {L.QUANTILE_SHARES[1]:.1%} '
                                         'within 2'),
                         'protocol': f'{int(R.HOLD_OUT_SHARE * 100)}% of the projected returns hidden '
                                     f'(seeds 0..{seeds - 1}), completed from the rest, errors at the hidden ones'}
    if stereo_root:
        stems = R.split_stems(R.kitti_stereo_stems(stereo_root), 'fit')
        matcher = default_stereo_matcher()
        for stem in stems:
            smp = R.kitti_stereo_sample(stereo_root, stem, matcher)
            samples.append({k: smp[k] for k in ('gt', 'stereo', 'stereo_conf', 'fb')})
        matcher.close()
        prov['stereo'] = {'data': 'KITTI Stereo 2012 disp_noc', 'fit_frames': stems,
                          'matcher': f'backend {matcher.name}, StereoParams() defaults',
                          'terms': 'log-linear: sigma_d0 / conf^p * exp(w_h hole + w_r range + w_s holeshare) '
                                   '* disparity^q (uncertainty.stereo_features), Laplace NLL',
                          'calibration': f'the 68.3 % scale raised towards {BAND_TWO_SIGMA:.1%} of the '
                                         f'fitting errors within 2 sigma, at most {BAND_ONE_SIGMA_MAX:.0%} within '
                                         '1 (learned.band_calibration_scale)',
                          'focal_baseline_assumed': R.KITTI_FOCAL_BASELINE}
    return samples, prov


def run(args) -> int:
    from depthmarks_ros.core.fusion.learned import REAL_LIDAR_FIXED, fit_per_source, save_model
    if args.kitti or args.kitti_stereo:
        samples, prov = collect_real_samples(args.kitti, args.kitti_stereo, args.completion, args.hold_out_seeds,
                                             args.lidar_scales)
        model = fit_per_source(samples, steps=args.steps, fixed=REAL_LIDAR_FIXED, stereo_features=True,
                               band=True, lidar_scales=args.lidar_scales)
        prov['command'] = ('depthmarks fit-fusion' + (f' --kitti {args.kitti}' if args.kitti else '')
                           + (f' --kitti-stereo {args.kitti_stereo}' if args.kitti_stereo else '')
                           + f' --completion {args.completion} --steps {args.steps}'
                           + f' --hold-out-seeds {args.hold_out_seeds} --lidar-scales {args.lidar_scales}')
        save_model(model, args.output, prov)
    else:
        model = fit_sim_model(args.frames, args.completion, args.steps, args.width, args.height)
        save_model(model, args.output, {'data': 'simulated rig', 'sources': f'seeds 100..{99 + args.frames} '
                                        '(collect_samples)', 'fused terms': f'seeds {FUSED_FIT_SEED0}..'
                                        f'{FUSED_FIT_SEED0 + args.frames - 1} through the full pipeline\'s chain '
                                        '(fit_fused_terms: stereo_fuse_factor by least fused RMSE, fused_scale '
                                        'by learned.margin_scale)',
                                        'command': f'depthmarks fit-fusion --frames {args.frames} --completion '
                                                   f'{args.completion} --steps {args.steps}'})
    print(f'wrote {args.output}: {model.to_dict()}')
    return 0
