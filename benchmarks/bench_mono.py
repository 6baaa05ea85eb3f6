#!/usr/bin/env python3
"""Monocular depth: per-frame latency on CPU at 256 and 384 input for Depth Anything V2 small- and
base-sized networks (random weights, built from configs: no weights are reachable here; timing does
not depend on them), and metric alignment accuracy on the simulated rig: its ground-truth inverse
depth distorted by a known affine map and noise is the "relative" input, the LiDAR projection is the
reference; scored against the full ground truth.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)


def build(size: str, folder: str) -> str:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    if size == 'small':
        bb = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                          patch_size=14, image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
        cfg = DepthAnythingConfig(backbone_config=bb, fusion_hidden_size=64, neck_hidden_sizes=[48, 96, 192, 384],
                                  reassemble_hidden_size=384, head_hidden_size=32)
    else:
        bb = Dinov2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                          patch_size=14, image_size=518, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
        cfg = DepthAnythingConfig(backbone_config=bb, fusion_hidden_size=128, neck_hidden_sizes=[96, 192, 384, 768],
                                  reassemble_hidden_size=768, head_hidden_size=32)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    return folder


def latency(n):
    import torch
    from depthmarks_ros.core.mono.models import load_depth_model
    rgb = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    print(f'torch threads: {torch.get_num_threads()}')
    for size in ('small', 'base'):
        with tempfile.TemporaryDirectory() as d:
            build(size, d)
            for inp in (256, 384):
                m = load_depth_model(d, input_size=inp)
                params = sum(p.numel() for p in m.net.parameters()) / 1e6
                m.predict(rgb)
                ts = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    m.predict(rgb)
                    ts.append(time.perf_counter() - t0)
                ms = np.median(ts) * 1e3
                print(f'Depth Anything V2 {size:5s} ({params:5.1f} M params) input {inp}: {ms:7.1f} ms ({1e3 / ms:5.2f} fps)')


def alignment():
    from depthmarks_ros.core.fusion.projection import sparse_depth_image
    from depthmarks_ros.core.mono.alignment import fit_scale_shift
    from depthmarks_ros.core.sim import SimConfig, SimRig
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    sweep = sim.render_lidar(0.0)
    sparse = sparse_depth_image(np.stack([sweep['x'], sweep['y'], sweep['z']], 1),
                                sim.rig.transform('lidar', 'left'), sim.stereo.left)
    rng = np.random.default_rng(0)
    inv_gt = 1.0 / f.depth_gt
    for s, t, noise in ((2.5, 0.3, 0.0), (0.4, -0.02, 0.01), (10.0, 1.0, 0.02)):
        rel = (inv_gt - t) / s                       # so that 1/Z = s * rel + t
        rel = rel * (1 + rng.normal(0, noise, rel.shape))
        fit = fit_scale_shift(rel.astype(np.float32), sparse)
        z = fit.apply(rel.astype(np.float32))
        ok = np.isfinite(z) & np.isfinite(f.depth_gt)
        rel_err = np.abs(z[ok] - f.depth_gt[ok]) / f.depth_gt[ok]
        print(f'known map s={s}, t={t}, noise {noise * 100:.0f}%: fitted s={fit.scale:.4f} (err {abs(fit.scale / s - 1) * 100:.2f}%), '
              f't={fit.shift:.4f}; depth AbsRel {np.mean(rel_err):.4f}, {fit.inliers}/{fit.n_reference} inliers')


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--repeat', type=int, default=5)
    args = ap.parse_args()
    print(f'load average: {os.getloadavg()[0]:.2f}')
    latency(args.repeat)
    alignment()


if __name__ == '__main__':
    main()
