#!/usr/bin/env python3
"""Depth fusion: runtime and accuracy next to a nearest-neighbour interpolation baseline.

Runtime: projection (z-buffer) + completion at KITTI size (1242x375, the frame's ~120k points)
and at 640x480 (the simulated rig). Accuracy: hide a random 20% of the projected LiDAR pixels,
complete from the rest, score at the hidden pixels (RMSE, MAE in mm; iRMSE, iMAE in 1/km, KITTI's
units) on the KITTI frames in --data and on the simulated rig; sigma calibration there (fraction
of errors within 1 and 2 sigma; a Gaussian gives 0.683 / 0.954). On the simulated rig also: fused
(LiDAR + stereo) vs each source alone, against the full ground truth.
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from depthmarks_ros.core.fusion import kitti  # noqa: E402
from depthmarks_ros.core.fusion.completion import complete  # noqa: E402
from depthmarks_ros.core.fusion.metrics import depth_metrics, sigma_calibration  # noqa: E402
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_sparse  # noqa: E402
from depthmarks_ros.core.fusion.projection import sparse_depth_image  # noqa: E402
from depthmarks_ros.core.fusion.real_data import hold_out  # noqa: E402
from depthmarks_ros.core.sim import SimConfig, SimRig  # noqa: E402


def interleaved_ms(fns, n=30, warmup=2):
    """{name: (median wall ms, median CPU ms)}, the functions called in turn within each round so that
    a changing machine load hits every one alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(n):
        for k, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0)
    return {k: (float(np.median(wall[k]) * 1e3), float(np.median(cpu[k]) * 1e3)) for k in fns}


def nearest_neighbour(sparse):
    """Baseline: every pixel takes the depth of the nearest measured pixel."""
    from scipy.interpolate import griddata
    pts = np.argwhere(np.isfinite(sparse))
    h, w = sparse.shape
    grid = np.mgrid[0:h, 0:w].reshape(2, -1).T
    return griddata(pts, sparse[pts[:, 0], pts[:, 1]], grid, method='nearest').reshape(h, w).astype(np.float32)


def held_out(name, sparse, rgb, truth_fn, rows, seed=0):
    inp, mask = hold_out(sparse, 0.2, seed=seed)         # the completion benchmark's 20 % (real-data.md)
    truth = truth_fn(mask)
    results = {'nearest neighbour': (nearest_neighbour(inp), None)}
    for method in ('classical', 'guided', 'scanline'):
        r = fuse_sparse(inp, rgb, FusionSettings(method))
        results[f'ours {method}'] = (r.depth, r.sigma)
    for label, (pred, sigma) in results.items():
        m = depth_metrics(pred, truth, mask)
        cal = sigma_calibration(pred, sigma, truth, mask) if sigma is not None else {'within_1sigma': float('nan'),
                                                                                      'within_2sigma': float('nan')}
        rows.append((name, label, m, cal))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--sim', action='store_true', help='only the full-pipeline check on the simulated rig')
    ap.add_argument('--real-sigma', action='store_true', help='only the real-data sigma section (report split)')
    ap.add_argument('--visibility', action='store_true', help='only the camera-visibility filter section')
    ap.add_argument('--kitti-model', default='', help='score this sigma model file instead of the shipped one')
    ap.add_argument('--sim-frames', type=int, default=3, help='simulated frames (seeds 0..N-1) of that check')
    ap.add_argument('--sim-model', default='', help="sigma model of that check (as sigma_model_file; '' = built-in)")
    args = ap.parse_args()
    from depthmarks_ros.ros.process import keep_large_buffers
    keep_large_buffers()    # malloc as in a node process (run_node): no page faults per large temporary array
    if args.real_sigma:
        real_sigma_section(args.data, args.kitti_model or None)
        visibility_section(args.data, args.kitti_model or None)
        stereo_sigma_cost(args.kitti_model or None)
        return
    if args.visibility:
        visibility_section(args.data, args.kitti_model or None)
        return
    if args.sim:
        print(f'load average: {os.getloadavg()[0]:.2f}')
        sim_pipeline_check(args.sim_frames, args.sim_model)
        return
    print(f'load average: {os.getloadavg()[0]:.2f}')
    kroot = os.path.join(args.data, 'lidar', 'kitti_object')
    frames = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(kroot, 'image_2'))) \
        if os.path.isdir(kroot) else []
    if not frames:
        print(f'(KITTI frames not found in {kroot}: KITTI rows skipped)')
    kitti_inputs = []
    for fid in frames:
        bgr = cv2.imread(os.path.join(kroot, 'image_2', f'{fid}.png'))
        calib = kitti.read_calib(os.path.join(kroot, 'calib', f'{fid}.txt'))
        velo = kitti.read_velodyne(os.path.join(kroot, 'velodyne', f'{fid}.bin'))
        cam, velo2cam = kitti.camera_and_extrinsics(calib, bgr.shape[1], bgr.shape[0])
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        kitti_inputs.append((fid, velo[:, :3], velo2cam, cam, rgb))
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    sweep = sim.render_lidar(0.0)
    sim_pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
    sim_lidar2cam = sim.rig.transform('lidar', 'left')
    inputs = [(f'KITTI {fid} ({len(p)} pts, {c.width}x{c.height})', p, l2c, c, rgb)
              for fid, p, l2c, c, rgb in kitti_inputs]
    inputs.append((f'sim rig ({len(sim_pts)} pts, 640x480)', sim_pts, sim_lidar2cam, sim.stereo.left, f.left_rgb))
    print('\n== runtime, ms per frame: median wall (and CPU) time, the methods called in turn in one loop ==')
    print(f'{"input":34s} {"projection":>10s} {"IP-Basic":>15s} {"guided":>15s} {"scanline":>15s} '
          f'{"scanline/IP-Basic":>18s}')
    for label, pts, lidar2cam, cam, rgb in inputs:
        sp = sparse_depth_image(pts, lidar2cam, cam)
        t = interleaved_ms({'projection': lambda: sparse_depth_image(pts, lidar2cam, cam),
                            'classical': lambda: complete(sp, 'classical'),
                            'guided': lambda: complete(sp, 'guided', rgb),
                            'scanline': lambda: complete(sp, 'scanline')})
        cell = {k: f'{w:6.1f} ({c:5.1f})' for k, (w, c) in t.items()}
        print(f'{label:34s} {t["projection"][0]:10.1f} {cell["classical"]:>15s} {cell["guided"]:>15s} '
              f'{cell["scanline"]:>15s} {t["scanline"][0] / t["classical"][0]:17.2f}x')
    print('(IP-Basic = classical; it reports 11 ms on one desktop core at KITTI size. Target: scanline '
          f'<= 20 ms per KITTI frame. Load average now: {os.getloadavg()[0]:.2f})')
    if kitti_inputs:
        from depthmarks_ros.core.fusion.learned import resolve_sigma_model
        from depthmarks_ros.core.fusion.pipeline import fuse_frame
        print('\n== one fusion step as the node runs it (projection + completion + sigma), KITTI frames, '
              'ms wall (CPU), in turn in one loop ==')
        from dataclasses import replace as _replace
        from depthmarks_ros.cli.fuse_kitti import kitti_preset
        from depthmarks_ros.params.depth_fusion import DepthFusionParams
        node_default = FusionSettings.from_params(DepthFusionParams(), resolve_sigma_model(DepthFusionParams().sigma_model_file))
        # the node's path with the KITTI preset file (config/kitti/depth_fusion.yaml): its parameters, its model
        preset_params = DepthFusionParams(**kitti_preset())
        preset = FusionSettings.from_params(preset_params, resolve_sigma_model(preset_params.sigma_model_file))
        kitti_model = preset.model
        no_gap = _replace(preset, model=_replace(kitti_model, lidar_gap_pow=0.0, lidar_base_pow=1.0, lidar_layer=0.0))
        no_layer = _replace(preset, model=_replace(kitti_model, lidar_layer=0.0))
        for fid, pts, lidar2cam, cam, rgb in kitti_inputs:
            t = interleaved_ms({'default': lambda: fuse_frame(pts, lidar2cam, cam, rgb, node_default),
                                'no_gap': lambda: fuse_frame(pts, lidar2cam, cam, rgb, no_gap),
                                'no_layer': lambda: fuse_frame(pts, lidar2cam, cam, rgb, no_layer),
                                'preset': lambda: fuse_frame(pts, lidar2cam, cam, rgb, preset)}, n=20)
            print(f'KITTI {fid}: node defaults (IP-Basic, sim sigma) {t["default"][0]:.1f} ({t["default"][1]:.1f}); '
                  f'KITTI preset (scanline, KITTI sigma: residual term, row gap, layer term) {t["preset"][0]:.1f} '
                  f'({t["preset"][1]:.1f}); ratio {t["preset"][0] / t["default"][0]:.2f}x; the preset without the '
                  f'layer term {t["no_layer"][0]:.1f} ({t["no_layer"][1]:.1f}), without row gap and layer term '
                  f'{t["no_gap"][0]:.1f} ({t["no_gap"][1]:.1f})')
        print('completion + sigma (no projection: fuse_sparse on the projected returns), KITTI preset, next to '
              'IP-Basic\'s completion alone, in turn (target <= 20 ms):')
        for fid, pts, lidar2cam, cam, rgb in kitti_inputs:
            sp = sparse_depth_image(pts, lidar2cam, cam)
            t = interleaved_ms({'ipbasic': lambda: complete(sp, 'classical'),
                                'preset': lambda: fuse_sparse(sp, rgb, preset),
                                'no_layer': lambda: fuse_sparse(sp, rgb, no_layer)}, n=20)
            print(f'KITTI {fid}: completion + sigma {t["preset"][0]:.1f} ({t["preset"][1]:.1f}) ms, without the layer '
                  f'term {t["no_layer"][0]:.1f} ({t["no_layer"][1]:.1f}); IP-Basic completion alone '
                  f'{t["ipbasic"][0]:.1f} ({t["ipbasic"][1]:.1f}); ratio {t["preset"][0] / t["ipbasic"][0]:.2f}x wall, '
                  f'{t["preset"][1] / t["ipbasic"][1]:.2f}x CPU; '
                  f'load {os.getloadavg()[0]:.2f}')

    rows = []
    for fid, pts, lidar2cam, cam, rgb in kitti_inputs:
        sp = sparse_depth_image(pts, lidar2cam, cam)
        held_out(f'KITTI {fid}', sp, rgb, lambda mask, sp=sp: np.where(mask, sp, np.nan), rows)
    sp_sim = sparse_depth_image(sim_pts, sim_lidar2cam, sim.stereo.left)
    held_out('sim rig', sp_sim, f.left_rgb, lambda mask: f.depth_gt, rows)
    print('\n== held-out 20% of LiDAR pixels ==')
    print('(KITTI: truth = the hidden returns; sim rig: the exact camera depth there. 000002 is the KITTI report '
          'frame by the sha1 rule; the scanline constants were chosen on 000001 only. Sigma columns: the '
          'built-in (sim-fitted) model; the KITTI-fitted one is scored below)')
    print(f'{"data":12s} {"method":20s} {"RMSE mm":>9s} {"MAE mm":>8s} {"med mm":>7s} {">1m %":>6s} {"iRMSE":>7s} '
          f'{"iMAE":>6s} {"<=1s":>5s} {"<=2s":>5s}')
    for name, label, m, cal in rows:
        print(f'{name:12s} {label:20s} {m["rmse"]:9.0f} {m["mae"]:8.0f} {m["median"]:7.0f} {m["over_1m"]:6.2f} '
              f'{m["irmse"]:7.2f} {m["imae"]:6.2f} {cal["within_1sigma"]:5.2f} {cal["within_2sigma"]:5.2f}')

    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)]
    st = StereoMatcher(StereoParams()).compute(*grey)
    sd = sim.stereo.disparity_to_depth(st.disparity)
    r = fuse_sparse(sp_sim, f.left_rgb, FusionSettings('guided'),
                    stereo=StereoInput(sd, sim.stereo.focal, sim.stereo.baseline, st.confidence))
    both = np.isfinite(sd) & np.isfinite(r.lidar_depth)
    print('\n== sim rig, full ground truth, pixels where both LiDAR completion and stereo have depth ==')
    for label, pred, sig in (('LiDAR completed (guided)', r.lidar_depth, r.lidar_sigma),
                             ('stereo (SGBM_3WAY)', sd, None), ('fused LiDAR + stereo', r.depth, r.sigma)):
        m = depth_metrics(pred, f.depth_gt, both)
        cal = sigma_calibration(pred, sig, f.depth_gt, both) if sig is not None else {'within_1sigma': float('nan')}
        print(f'{label:28s} RMSE {m["rmse"]:7.0f} mm  MAE {m["mae"]:6.0f} mm  within 1 sigma {cal["within_1sigma"]:.2f}')
    m = depth_metrics(r.depth, f.depth_gt)
    print(f'fused, every ground-truth pixel: RMSE {m["rmse"]:.0f} mm, coverage {m["coverage"]:.3f}')
    sim_pipeline_check(args.sim_frames, args.sim_model)
    if kitti_inputs or os.path.isdir(os.path.join(args.data, 'stereo', 'kitti2012')):
        real_sigma_section(args.data, args.kitti_model or None)
        visibility_section(args.data, args.kitti_model or None)
    print(f'load average at the end: {os.getloadavg()[0]:.2f}')


BANDS = ((0, 10), (10, 20), (20, 40), (40, 1000))


def sim_pipeline_check(frames=3, model_spec=''):
    """The full pipeline's fusion on the simulated rig, as its nodes compute it: stereo_depth's chain
    and depth_fusion with the parameters the pipeline's graph gives them (fit_fusion.node_chain: their
    config files, stereo disparity_range 64, use_stereo; what `depthmarks run` starts), scored against
    the rig's exact depth (sim/depth_gt). Seeds 0..frames-1 (the built-in sim sigma model was fitted on
    seeds 100-103)."""
    from dataclasses import replace
    from depthmarks_ros.cli.fit_fusion import node_chain, sim_pipeline_inputs
    from depthmarks_ros.core.fusion.pipeline import fuse_frame
    from depthmarks_ros.core.fusion.learned import resolve_sigma_model
    from depthmarks_ros.core.fusion.uncertainty import local_range, stereo_sigma
    chain, fp = node_chain()
    model = resolve_sigma_model(model_spec)
    acc, tables = {}, {}
    for seed in range(frames):
        f, pts, T, cam, stereo, st = sim_pipeline_inputs(seed, chain)
        baseline = stereo.baseline
        plain = replace(model, stereo_fuse_factor=1.0, fused_edge=0.0, fused_scale=1.0)
        variants = [('', plain, False), (' (spread)', plain, True)]
        if (model.stereo_fuse_factor, model.fused_edge, model.fused_scale) != (1.0, 0.0, 1.0):
            variants.append((f' (spread, stereo x{model.stereo_fuse_factor:.2f}, edge {model.fused_edge:.3f}, '
                             f'scale {model.fused_scale:.3f})', model, True))
        for suffix, m, spread in variants:
            r = fuse_frame(pts, T, cam, f.left_rgb, FusionSettings.from_params(fp, m, spread=spread),
                           stereo=stereo)
            both = np.isfinite(st.depth) & np.isfinite(r.lidar_depth)
            ssig = stereo_sigma(st.depth, st.confidence, cam.fx, baseline, plain)   # the stereo source's own
            parts = [('LiDAR completed', r.lidar_depth, r.lidar_sigma, both), ('stereo', st.depth, ssig, both),
                     ('fused', r.depth, r.sigma, both), ('fused, every pixel', r.depth, r.sigma, None)]
            for name, pred, sig, mask in parts:
                if not name.startswith('fused') and suffix:
                    continue
                key = name + (suffix if name.startswith('fused') else '')
                ok = np.isfinite(pred) & np.isfinite(sig) & np.isfinite(f.depth_gt) & (mask if mask is not None else True)
                acc.setdefault(key, []).append(((pred - f.depth_gt)[ok], sig[ok]))
                if name == 'fused, every pixel' and spread:
                    tables.setdefault(suffix, []).append((pred.ravel(), sig.ravel(), f.depth_gt.ravel(),
                                                          (local_range(f.depth_gt, 9) > 1.0).ravel()))
    print(f'\n== full pipeline on the simulated rig (seeds 0..{frames - 1}, exact truth sim/depth_gt): the graph\'s '
          f'parameters (stereo disparity_range {chain.params.disparity_range}), completion {fp.completion}, use_stereo; '
          '"both" = pixels where LiDAR completion and stereo both have depth ==')
    print(f'{"output":40s} {"pixels":>8s} {"RMSE mm":>8s} {"MAE mm":>7s} {"med mm":>7s} {"<=1s":>5s} {"<=2s":>5s} {"med NLL":>7s}')
    for key, parts in acc.items():
        e = np.concatenate([p[0] for p in parts]).astype(np.float64)
        s = np.concatenate([p[1] for p in parts]).astype(np.float64)
        r = np.abs(e) / s
        nll = np.median(0.5 * np.log(2 * np.pi) + np.log(s) + 0.5 * r ** 2)
        where = 'every pixel' if 'every' in key else 'both'
        print(f'{key:40s} {where:>8s} {np.sqrt(np.mean(e ** 2)) * 1e3:8.0f} {np.mean(np.abs(e)) * 1e3:7.0f} '
              f'{np.median(np.abs(e)) * 1e3:7.0f} {np.mean(r <= 1):5.2f} {np.mean(r <= 2):5.2f} {nll:7.2f}')
    print('(targets: fused RMSE on "both" <= the better single source; fused 63-73 % within 1 sigma, 92-97 % within 2)')
    for suffix, rows in tables.items():
        coverage_table(f'fused{suffix}, every pixel, per band and at edges (9x9 truth range > 1 m)',
                       *[np.concatenate(x) for x in zip(*rows)])


def coverage_table(label, pred, sigma, truth, edge):
    """1/2-sigma shares and Gaussian NLL of the errors, overall, per depth band and at depth edges."""
    ok = np.isfinite(pred) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(truth)
    e, s, z, ed = (pred - truth)[ok], sigma[ok], truth[ok], edge[ok]
    r = np.abs(e) / s
    nll = 0.5 * np.log(2 * np.pi) + np.log(s) + 0.5 * r ** 2
    parts = [('all', np.ones(r.size, bool))] + [(f'{lo}-{hi} m' if hi < 1000 else f'>{lo} m', (z >= lo) & (z < hi))
                                                 for lo, hi in BANDS]
    parts += [('at edges', ed), ('off edges', ~ed)]
    cells = []
    for name, m in parts:
        if m.sum() < 20:
            cells.append(f'{name} (n {m.sum()}) -')
            continue
        cells.append(f'{name} (n {m.sum()}) {np.mean(r[m] <= 1):.2f}/{np.mean(r[m] <= 2):.2f} nll {np.median(nll[m]):.2f}')
    print(f'{label}: ' + '; '.join(cells))


def real_sigma_section(data_root, path=None):
    """The KITTI sigma model (shipped, or ``path``) on the report split (sha1 rule): LiDAR hold-out
    and Stereo 2012."""
    from depthmarks_ros.core.fusion import real_data as R
    from depthmarks_ros.core.fusion.learned import load_model
    from depthmarks_ros.core.fusion.uncertainty import layer_gap, lidar_sigma_of_input, local_range, stereo_sigma
    path = path or os.path.join(ROOT, 'depthmarks_ros', 'data', 'fusion_sigma_kitti.json')
    model = load_model(path)
    print(f'\n== calibrated sigma on real data, report split only ({R.SPLIT_RULE}); model {os.path.relpath(path, ROOT)} ==')
    print('cells: within 1 sigma / within 2 sigma (Gaussian 0.68 / 0.95), median Gaussian NLL; edges: 9x9 truth range > 1 m')
    kroot = os.path.join(data_root, 'lidar', 'kitti_object')
    if os.path.isdir(kroot):
        for stem in R.split_stems(R.kitti_object_stems(kroot), 'report'):
            sparse, rgb = R.kitti_object_frame(kroot, stem)
            pooled, rel_gap = [], []
            for seed in range(3):       # seed 0: the figure in the docs; 0-2 pooled: how much one hold-out sways
                inp, mask = R.hold_out(sparse, seed=seed)
                dense = complete(inp, 'scanline')
                sig = lidar_sigma_of_input(inp, dense, model)
                pooled.append((dense.ravel(), sig.ravel(), np.where(mask, sparse, np.nan).ravel(),
                               (local_range(sparse, 9) > 1.0).ravel()))
                rel_gap.append((layer_gap(inp, dense) / dense).ravel())
                if seed == 0:
                    coverage_table(f'KITTI {stem} LiDAR hold-out (seed 0), scanline', *pooled[0])
            cat = [np.concatenate(x) for x in zip(*pooled)]
            coverage_table(f'KITTI {stem} LiDAR hold-outs seeds 0-2 pooled, scanline', *cat)
            # the errors of metres (the other layer): how many the sigma covers, overall, at the 9x9 truth
            # edges, and where the 5x9 layer gap G is 30-100 % of the depth
            pred, sig, truth, edge = cat
            err, rg = np.abs(pred - truth), np.concatenate(rel_gap)
            ok = np.isfinite(err) & np.isfinite(sig)
            with np.errstate(invalid='ignore'):
                big, r = ok & (err > 1.0), err / sig
                cells = [f'{label} {np.mean(r[big & sel] <= 2):.2f} (n {int((big & sel).sum())})' for label, sel in
                         (('all', big), ('at edges', edge), ('G / z in [0.3, 1)', (rg >= 0.3) & (rg < 1.0)))]
            print(f'KITTI {stem} seeds 0-2 pooled: errors > 1 m within 2 sigma: ' + '; '.join(cells)
                  + f'; every return: {np.mean(r[ok] <= 1):.3f} / {np.mean(r[ok] <= 2):.3f} within 1 / 2 sigma')
    sroot = os.path.join(data_root, 'stereo', 'kitti2012')
    if os.path.isdir(sroot):
        from depthmarks_ros.cli.fit_fusion import default_stereo_matcher
        matcher = default_stereo_matcher()     # the backend the node runs by default
        preds, sigs, truths, edges = [], [], [], []
        stems = R.split_stems(R.kitti_stereo_stems(sroot), 'report')
        for stem in stems:
            smp = R.kitti_stereo_sample(sroot, stem, matcher)
            fb = smp['fb']
            preds.append(smp['stereo'].ravel())
            sigs.append(stereo_sigma(smp['stereo'], smp['stereo_conf'], fb, 1.0, model).ravel())
            truths.append(smp['gt'].ravel())
            edges.append((local_range(smp['stereo'], 9) > 1.0).ravel())
        matcher.close()
        cat = [np.concatenate(x) for x in (preds, sigs, truths, edges)]
        coverage_table(f'KITTI Stereo 2012 {",".join(stems)}, backend {matcher.name} (f B = {R.KITTI_FOCAL_BASELINE:.1f} px m assumed)', *cat)


VIS_KITTI = (7, 3)          # the visibility window (rows, cols) scored on KITTI: ~ one HDL-64E scan-line gap
VIS_SIM = ((5, 3), (7, 3))   # and on the simulated rig


def visibility_section(data_root, path=None, seeds=(0, 1, 2)):
    """The camera-visibility filter (FusionSettings.visibility_rows, core.fusion.projection.camera_visible).
    KITTI frames (000001 fit, 000002 report by the sha1 rule), hold-out seeds pooled, two truths: the
    issue's protocol ("as-is": every hidden return) and the visible hold-out (the hidden returns that
    camera_visible keeps on the whole projection, window VIS_KITTI): RMSE, median, > 1 m and the KITTI
    sigma's shares for IP-Basic and scanline with the input as-is and filtered. Then the simulated rig,
    whose truth is the camera's exact depth (no circularity: the filter does not define the truth there)."""
    from depthmarks_ros.core.fusion import real_data as R
    from depthmarks_ros.core.fusion.learned import load_model
    from depthmarks_ros.core.fusion.projection import camera_visible
    from depthmarks_ros.core.sim import SimConfig, SimRig
    model = load_model(path or os.path.join(ROOT, 'depthmarks_ros', 'data', 'fusion_sigma_kitti.json'))
    print(f'\n== camera-visibility filter (rows x cols {VIS_KITTI[0]} x {VIS_KITTI[1]} on KITTI; load '
          f'{os.getloadavg()[0]:.1f}); hold-out seeds {seeds[0]}-{seeds[-1]} pooled; sigma: the KITTI model; '
          f'{R.SPLIT_RULE} ==')
    print(f'{"frame":18s} {"truth":18s} {"method":26s} {"n":>6s} {"RMSE mm":>8s} {"med mm":>7s} {">1m %":>6s} '
          f'{"<=1s":>6s} {"<=2s":>6s}')
    kroot = os.path.join(data_root, 'lidar', 'kitti_object')
    for stem in (R.kitti_object_stems(kroot) if os.path.isdir(kroot) else []):
        sparse, rgb = R.kitti_object_frame(kroot, stem)
        visible = camera_visible(sparse, *VIS_KITTI)
        part = 'report' if R.in_report_split(stem) else 'fit'
        acc = {}
        for seed in seeds:
            inp, mask = R.hold_out(sparse, seed=seed)
            for method in ('classical', 'scanline'):
                for rows in (0, VIS_KITTI[0]):
                    r = fuse_sparse(inp, rgb, FusionSettings(method, model, visibility_rows=rows,
                                                             visibility_cols=VIS_KITTI[1]))
                    for truth, m in (('as-is (issue)', mask), ('visible hold-out', mask & visible)):
                        ok = m & np.isfinite(r.depth) & np.isfinite(r.sigma)
                        acc.setdefault((truth, method, rows), []).append(((r.depth - sparse)[ok], r.sigma[ok]))
        t = interleaved_ms({'filter': lambda: camera_visible(sparse, *VIS_KITTI),
                            'IP-Basic': lambda: complete(sparse, 'classical')}, n=20)
        print(f'KITTI {stem}: camera_visible {t["filter"][0]:.2f} ms wall ({t["filter"][1]:.2f} CPU) next to '
              f'IP-Basic {t["IP-Basic"][0]:.1f} ({t["IP-Basic"][1]:.1f}), called in turn; load {os.getloadavg()[0]:.1f}')
        n_drop = int(np.isfinite(sparse).sum() - visible.sum())
        print(f'KITTI {stem} ({part}): camera_visible drops {n_drop} of {int(np.isfinite(sparse).sum())} returns '
              f'({n_drop / max(np.isfinite(sparse).sum(), 1) * 100:.1f} %)')
        for (truth, method, rows), parts in sorted(acc.items()):
            e = np.abs(np.concatenate([p[0] for p in parts]).astype(np.float64))
            sg = np.concatenate([p[1] for p in parts]).astype(np.float64)
            label = ('IP-Basic' if method == 'classical' else method) + (
                f' + visibility {rows}x{VIS_KITTI[1]}' if rows else '')
            cov = (f'{np.mean(e <= sg):6.3f} {np.mean(e <= 2 * sg):6.3f}' if method == 'scanline'
                   else f'{"-":>6s} {"-":>6s}')      # the KITTI sigma was fitted for scanline
            print(f'{"":18s} {truth:18s} {label:26s} {e.size:6d} {np.sqrt(np.mean(e ** 2)) * 1e3:8.0f} '
                  f'{np.median(e) * 1e3:7.1f} {np.mean(e > 1) * 100:6.2f} {cov}')
    print('simulated rig 640x480, truth = the camera\'s exact depth at the hidden returns\' pixels (seeds 0-2, '
          'hold-out seed 0); see-through = returns > 0.3 m deeper than the camera\'s depth')
    for seed in range(3):
        sim = SimRig(SimConfig(seed=seed))
        f = sim.render(0.0)
        sw = sim.render_lidar(0.0)
        sp = sparse_depth_image(np.stack([sw['x'], sw['y'], sw['z']], 1), sim.rig.transform('lidar', 'left'),
                                sim.stereo.left)
        inp, mask = hold_out(sp, 0.2, seed=0)
        st = np.isfinite(inp) & (inp - f.depth_gt > 0.3)
        cells = []
        for rows, cols in ((0, 3),) + VIS_SIM:
            kept = camera_visible(inp, rows, cols) if rows else np.isfinite(inp)
            txt = f'{rows}x{cols}: see-through kept {int((kept & st).sum())}/{int(st.sum())}, others dropped ' \
                  f'{int((np.isfinite(inp) & ~st & ~kept).sum())}' if rows else f'no filter ({int(st.sum())} see-through)'
            for method in ('classical', 'scanline'):
                d = fuse_sparse(inp, f.left_rgb, FusionSettings(method, visibility_rows=rows, visibility_cols=cols)).depth
                mm = depth_metrics(d, f.depth_gt, mask)
                txt += f'; {"IP-Basic" if method == "classical" else method} {mm["rmse"]:.0f} mm (med {mm["median"]:.0f})'
            cells.append(txt)
        print(f'  seed {seed}: ' + ' | '.join(cells))


def stereo_sigma_cost(path=None, n=30):
    """ms per 640x480 frame (the simulated rig's SGBM stereo depth) of the stereo sigma with the KITTI
    model's feature terms and of each feature, next to the sigma_d0 / confidence form (anchor), called
    in turn (interleaved_ms)."""
    import cv2 as _cv2
    from depthmarks_ros.core.fusion.learned import load_model
    from depthmarks_ros.core.fusion.uncertainty import SigmaModel, stereo_features, stereo_sigma
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    model = load_model(path or os.path.join(ROOT, 'depthmarks_ros', 'data', 'fusion_sigma_kitti.json'))
    plain = SigmaModel(**{**model.to_dict(), 'stereo_conf_pow': 1.0, 'stereo_hole': 0.0, 'stereo_range': 0.0,
                          'stereo_holeshare': 0.0, 'stereo_disp_pow': 0.0})
    sim = SimRig(SimConfig(seed=0))
    f = sim.render(0.0)
    m = StereoMatcher(StereoParams())
    st = m.compute(*[_cv2.cvtColor(x, _cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)])
    m.close()
    depth = sim.stereo.disparity_to_depth(st.disparity)
    fx, b = sim.stereo.focal, sim.stereo.baseline
    fb = np.float32(fx * b)
    z = depth.astype(np.float32)
    valid = np.isfinite(z)
    fns = {'sigma_d0 / conf (anchor)': lambda: stereo_sigma(depth, st.confidence, fx, b, plain),
           'with the feature terms': lambda: stereo_sigma(depth, st.confidence, fx, b, model),
           'all four features': lambda: stereo_features(depth, fb),
           'hole (distance transform)': lambda: cv2.distanceTransform(valid.astype(np.uint8), cv2.DIST_L2, 3),
           'range (5x5 dilate + erode)': lambda: (cv2.dilate(z, np.ones((5, 5), np.uint8)),
                                                  cv2.erode(z, np.ones((5, 5), np.uint8))),
           'holeshare (15x15 box)': lambda: cv2.boxFilter(valid.astype(np.float32), -1, (15, 15))}
    load0 = os.getloadavg()[0]
    t = interleaved_ms(fns, n)
    print(f'\n== stereo sigma cost at {depth.shape[1]}x{depth.shape[0]} (median wall ms / CPU ms, called in turn; '
          f'load {load0:.1f} -> {os.getloadavg()[0]:.1f}) ==')
    base = t['sigma_d0 / conf (anchor)'][0]
    for k, (w, c) in t.items():
        print(f'{k:30s} {w:6.2f} {c:6.2f}  ({w / base:.2f}x the anchor)')


if __name__ == '__main__':
    main()
