"""Benchmark: the pipeline on one host vs split across two hosts (network namespaces).

Prints, in one run, rate and latency of each output with everything on one host and with the
sensor side (sim_rig) on host a and the processing side on host b over the shipped network
profile, the added latency per hop, and the bytes per second of every topic that crosses the
link (raw vs compressed where the compressed transport is available). Needs root (network
namespaces; no traffic leaves them).

    .venv/bin/python benchmarks/bench_multihost.py [--duration 20] [--nodes stereo,fusion,face,body]

Targets (issue 23): split, compressed: every output >= 9 Hz at 10 Hz input; added median
latency <= 15 ms per hop at 640x480; compressed camera traffic <= 20 % of raw bytes at equal
accuracy (stereo bad-2 and fused RMSE within 2 %).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))

from depthmarks_ros.testing.ros_harness import configure_ros_env  # noqa: E402

NODE_OUTPUTS = {
    'stereo_depth': [('stereo/depth', 'sensor_msgs/msg/Image'), ('stereo/disparity', 'stereo_msgs/msg/DisparityImage')],
    'depth_fusion': [('fusion/depth', 'sensor_msgs/msg/Image'), ('fusion/depth_sigma', 'sensor_msgs/msg/Image')],
    'face_landmarks': [('face/landmarks', 'sensor_msgs/msg/PointCloud2')],
    'body_pose': [('body/keypoints', 'sensor_msgs/msg/PointCloud2')],
}
SENSOR_TOPICS = [('stereo/left/image_raw', 'sensor_msgs/msg/Image'), ('stereo/right/image_raw', 'sensor_msgs/msg/Image'),
                 ('camera/image_raw', 'sensor_msgs/msg/Image'), ('lidar/points', 'sensor_msgs/msg/PointCloud2')]
ALIASES = {'stereo': 'stereo_depth', 'fusion': 'depth_fusion', 'face': 'face_landmarks', 'body': 'body_pose'}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=20.0, help='seconds measured per scenario')
    ap.add_argument('--nodes', default='stereo,fusion,face,body')
    args = ap.parse_args(argv)
    configure_ros_env()
    from depthmarks_ros.testing.netns import netns_unavailable
    from depthmarks_ros.testing.split_run import run_split
    why = netns_unavailable()
    if why:
        print(f'bench_multihost: skipped: {why}')
        return 0
    nodes = [ALIASES.get(n, n) for n in args.nodes.split(',') if n]
    processing = [(n, {'use_stereo': True} if n == 'depth_fusion' and 'stereo_depth' in nodes else {}) for n in nodes]
    outputs = [t for n in nodes for t in NODE_OUTPUTS[n]]
    scenarios = {
        'one host': {'a': [('sim_rig', {})] + processing},
        'two hosts': {'a': [('sim_rig', {})], 'b': processing},
    }
    results = {}
    for name, placement in scenarios.items():
        probe_host = 'a' if 'b' not in placement else 'b'
        load0 = os.getloadavg()[0]
        res = run_split(placement, outputs + SENSOR_TOPICS, probe_host=probe_host, duration=args.duration)
        res['_load'] = (load0, os.getloadavg()[0])
        results[name] = res
    print(f'# bench_multihost: sim_rig 640x480 at 10 Hz; nodes {",".join(nodes)}; {args.duration:.0f} s per scenario; '
          f'2 namespaces joined by veth, config/fastdds_network.xml, subnet discovery')
    for name, res in results.items():
        print(f'# {name}: load average {res["_load"][0]:.2f} -> {res["_load"][1]:.2f}; '
              f'bytes sent over the link a->b {res["_veth_tx"]["a"] / args.duration / 1e6:.1f} MB/s')
    print(f'{"output":24s} {"one host Hz":>11s} {"median ms":>9s} {"p95 ms":>7s} | {"two hosts Hz":>12s} '
          f'{"median ms":>9s} {"p95 ms":>7s} | {"added ms":>8s}')
    for topic, _ in outputs:
        a, b = results['one host'].get(topic, {}), results['two hosts'].get(topic, {})

        def f(r, k, fmt='{:.1f}'):
            v = r.get(k)
            return fmt.format(v) if v is not None else '-'
        added = (b['latency_median_ms'] - a['latency_median_ms']
                 if a.get('latency_median_ms') is not None and b.get('latency_median_ms') is not None else None)
        print(f'{topic:24s} {f(a, "rate_hz"):>11s} {f(a, "latency_median_ms"):>9s} {f(a, "latency_p95_ms"):>7s} | '
              f'{f(b, "rate_hz"):>12s} {f(b, "latency_median_ms"):>9s} {f(b, "latency_p95_ms"):>7s} | '
              f'{(f"{added:+.1f}" if added is not None else "-"):>8s}')
    print(f'{"accuracy":24s} {"one host":>20s} | {"two hosts":>20s}')
    for topic, key in (('stereo/disparity', 'bad2'), ('stereo/depth', 'rmse'), ('fusion/depth', 'rmse')):
        if topic in dict(outputs):
            a, b = results['one host'].get(topic, {}), results['two hosts'].get(topic, {})
            print(f'{topic + " " + key:24s} {a.get(key, float("nan")):>20.4f} | {b.get(key, float("nan")):>20.4f}')
    print(f'{"topic crossing a->b":24s} {"MB/s":>8s} {"bytes/msg":>10s}')
    for topic, _ in SENSOR_TOPICS:
        r = results['two hosts'].get(topic, {})
        print(f'{topic:24s} {r.get("bytes_per_s", 0) / 1e6:>8.2f} {r.get("mean_bytes", 0):>10.0f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
