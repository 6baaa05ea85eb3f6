"""Benchmark: one slow node vs N instances sharing its input (stamp modulo N) behind stamp_merge.

A Depth Anything model of the ViT-S size (random weights, built here: no download) makes
mono_depth take well over 100 ms per frame on one CPU thread. With N = 1 one mono_depth
instance processes what it can of a 10 Hz camera; with N = 2 two instances (one thread each)
take alternate frames and stamp_merge republishes their output on one topic in stamp order.
Prints the per-frame model time measured here, the output rate for each N, the ratio, and how
many frames came out of stamp order (must be 0), with the machine load.

    .venv/bin/python benchmarks/bench_scaleout.py [--duration 20] [--input-size 256]

Target (issue 23): N = 2 instances of a > 100 ms node give >= 1.7x the throughput of one.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))

from depthmarks_ros.testing.ros_harness import NodeProcess, configure_ros_env, run_dir  # noqa: E402
from depthmarks_ros.pipeline.graph import NODES  # noqa: E402

CONFIG = os.path.join(os.path.dirname(__file__), '..', 'config')


def build_model(folder: str) -> None:
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    bb = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                      image_size=518, patch_size=14, out_features=['stage3', 'stage6', 'stage9', 'stage12'],
                      reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, fusion_hidden_size=64, neck_hidden_sizes=[48, 96, 192, 384])
    DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)


def model_ms(folder: str, input_size: int) -> float:
    import numpy as np
    import torch
    from depthmarks_ros.core.mono.models import load_depth_model
    torch.set_num_threads(1)
    m = load_depth_model(folder, 'cpu', input_size, False, False, '', '')
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    m.predict(img)
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        m.predict(img)
        t.append(time.perf_counter() - t0)
    return float(np.median(t) * 1e3)


def run(n: int, folder: str, input_size: int, duration: float) -> dict:
    import json
    import subprocess
    env = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    procs = [NodeProcess('sim_rig', params_file=os.path.join(CONFIG, NODES['sim_rig'].params_file),
                         params={'publish_ground_truth': False})]
    base = {'model': folder, 'input_size': input_size, 'reference_topic': ''}
    if n == 1:
        procs.append(NodeProcess('mono_depth', params=base, env=env))
    else:
        for k in range(n):
            procs.append(NodeProcess('mono_depth', params=dict(base, shard_count=n, shard_index=k), env=env,
                                     remaps={'mono/inverse_depth': f'mono/inverse_depth/shard_{k}',
                                             'mono/depth': f'mono/depth/shard_{k}',
                                             '__node': f'mono_depth_{k}'}))
        procs.append(NodeProcess('stamp_merge', params={'topics': ['mono/inverse_depth'], 'instances': n,
                                                        'max_wait': 1.0}))
    out = os.path.join(tempfile.mkdtemp(prefix='scaleout_', dir=run_dir()), 'probe.json')
    measured = False
    try:
        for p in procs:
            p.start()
        time.sleep(3.0)     # models load before measuring
        cmd = [sys.executable, '-m', 'depthmarks_ros.testing.topic_probe', '--duration', str(duration),
               '--wait', '60', '--out', out, '--reliable', '--topic', 'mono/inverse_depth:sensor_msgs/msg/Image',
               '--order']
        subprocess.run(cmd, check=True, timeout=duration + 120)
        measured = True
    finally:
        for p in procs:
            p.stop()
        if not measured:      # the nodes' output goes with run_dir() at exit: show it now
            for p in procs:
                print(f'# {" ".join(p.cmd)}: exit {p.returncode}, last output:\n{p.output[-2000:]}', file=sys.stderr)
    with open(out) as f:
        return json.load(f)['mono/inverse_depth']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=20.0)
    ap.add_argument('--input-size', type=int, default=256)
    ap.add_argument('--instances', default='1,2')
    args = ap.parse_args(argv)
    configure_ros_env()
    folder = tempfile.mkdtemp(prefix='vits_', dir=run_dir())   # removed at exit
    build_model(folder)
    ms = model_ms(folder, args.input_size)
    rows = []
    for n in [int(x) for x in args.instances.split(',')]:
        load0 = os.getloadavg()[0]
        r = run(n, folder, args.input_size, args.duration)
        rows.append((n, r, load0, os.getloadavg()[0]))
    print(f'# bench_scaleout: mono_depth, Depth Anything ViT-S size (random weights), input {args.input_size} px, '
          f'1 thread per instance: {ms:.0f} ms per frame alone; sim_rig 640x480 at 10 Hz; {args.duration:.0f} s each')
    print(f'{"instances":>9s} {"output Hz":>9s} {"x one":>6s} {"out of order":>12s} {"median latency ms":>17s} {"load":>12s}')
    one = rows[0][1]['rate_hz'] if rows else 0.0
    for n, r, l0, l1 in rows:
        print(f'{n:>9d} {r["rate_hz"]:>9.2f} {r["rate_hz"] / one if one else float("nan"):>6.2f} '
              f'{r.get("out_of_order", 0):>12d} {r["latency_median_ms"]:>17.0f} {l0:>5.2f}->{l1:<5.2f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
