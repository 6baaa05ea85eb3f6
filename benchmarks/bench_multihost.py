"""Benchmark: the pipeline on one host vs split across two hosts (network namespaces).

Prints, in one run, rate and latency of each output with everything on one host, and with the
sensors (sim_rig) and the consumer on host a and the processing nodes on host b over the shipped
network profile, once with raw images and once with the processing nodes subscribing
image_transport's compressed topics; the added latency per hop, accuracy against the rig's
truth, and the bytes per second of the camera topics raw vs compressed. Needs root (network
namespaces; no traffic leaves them).

    .venv/bin/python benchmarks/bench_multihost.py [--duration 20] [--nodes stereo,fusion,face,body] [--jpeg-quality 95]

Targets (issue 23): split, compressed: every output >= 9 Hz at 10 Hz input; added median
latency <= 15 ms per hop at 640x480; compressed camera traffic <= 20 % of raw bytes at equal
accuracy (stereo bad-2 and fused RMSE within 2 %).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))

from depthmarks_ros.pipeline import graph as g  # noqa: E402
from depthmarks_ros.pipeline.publication import NETWORK_PROFILE  # noqa: E402
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


def camera_twins():
    """(sensor topic, its compressed twin as the graph names it) for each SENSOR_TOPICS image with one."""
    return [(t, g.twin_of(t)) for t, typ in SENSOR_TOPICS if typ.endswith('/Image') and g.twin_of(t)]


def _row(r, keys):
    out = []
    for k in keys:
        v = r.get(k)
        out.append('-' if v is None else f'{v:.1f}')
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--duration', type=float, default=20.0, help='seconds measured per scenario')
    ap.add_argument('--nodes', default='stereo,fusion,face,body')
    ap.add_argument('--jpeg-quality', type=int, default=95, choices=range(1, 101), metavar='1..100',
                    help="sim_rig's compressed_jpeg_quality (its <topic>/compressed twins; node default 95)")
    args = ap.parse_args(argv)
    configure_ros_env()
    from depthmarks_ros.testing.netns import netns_unavailable
    from depthmarks_ros.testing.split_run import run_split
    why = netns_unavailable()
    if why:
        print(f'bench_multihost: skipped: {why}')
        return 0
    nodes = [ALIASES.get(n, n) for n in args.nodes.split(',') if n]

    def processing(transport):
        out = []
        for n in nodes:
            params = {'image_transport': transport}
            if n == 'depth_fusion' and 'stereo_depth' in nodes:
                params['use_stereo'] = True
            out.append((n, params))
        return out
    outputs = [t for n in nodes for t in NODE_OUTPUTS[n]]
    twins = dict(camera_twins())
    compressed = [(twin, 'sensor_msgs/msg/CompressedImage') for twin in twins.values()]
    # the robot (host a) runs the sensors and consumes the results (probe); host b processes:
    # each output crosses the link twice (sensor data a -> b, result b -> a)
    rig = ('sim_rig', {'compressed_jpeg_quality': args.jpeg_quality})
    scenarios = {
        'one host': ({'a': [rig] + processing('raw')}, 0),
        'two hosts raw': ({'a': [rig], 'b': processing('raw')}, 2),
        'two hosts compressed': ({'a': [rig], 'b': processing('compressed')}, 2),
    }
    results = {}
    for name, (placement, _hops) in scenarios.items():
        load0 = os.getloadavg()[0]
        extra = compressed if 'compressed' in name else []    # (subscribing them makes the rig encode)
        res = run_split(placement, outputs + SENSOR_TOPICS + extra, probe_host='a', duration=args.duration)
        res['_load'] = (load0, os.getloadavg()[0])
        results[name] = res
    print(f'# bench_multihost: sim_rig 640x480 at 10 Hz on host a (with the consumer; JPEG quality '
          f'{args.jpeg_quality}); nodes {",".join(nodes)} on '
          f'host b; {args.duration:.0f} s per scenario; 2 namespaces joined by veth, config/{NETWORK_PROFILE}, '
          'subnet discovery; "one host": everything on a')
    for name, res in results.items():
        print(f'# {name}: load average {res["_load"][0]:.2f} -> {res["_load"][1]:.2f}; over the link: '
              f'a->b {res["_veth_tx"]["a"] / args.duration / 1e6:.2f} MB/s, '
              f'b->a {res["_veth_tx"]["b"] / args.duration / 1e6:.2f} MB/s')
    names = list(scenarios)
    print(f'{"output":20s} ' + ' | '.join(f'{n + " Hz / med / p95 ms":>36s}' for n in names)
          + ' | added per hop ms (raw, compressed)')
    base = results['one host']
    for topic, _ in outputs:
        cells = []
        for n in names:
            hz, med, p95 = _row(results[n].get(topic, {}), ('rate_hz', 'latency_median_ms', 'latency_p95_ms'))
            cells.append(f'{hz + " / " + med + " / " + p95:>36s}')
        added = []
        for n in names[1:]:
            a, b = base.get(topic, {}).get('latency_median_ms'), results[n].get(topic, {}).get('latency_median_ms')
            added.append(f'{(b - a) / scenarios[n][1]:+.1f}' if a is not None and b is not None else '-')
        print(f'{topic:20s} ' + ' | '.join(cells) + ' | ' + ', '.join(added))
    print(f'{"accuracy (vs rig truth)":28s} ' + ' | '.join(f'{n:>20s}' for n in names))
    for topic, key in (('stereo/disparity', 'bad2'), ('stereo/depth', 'rmse'), ('fusion/depth', 'rmse')):
        if topic in dict(outputs):
            vals = [results[n].get(topic, {}).get(key) for n in names]
            print(f'{topic + " " + key:28s} ' + ' | '.join(f'{v if v is not None else float("nan"):>20.4f}' for v in vals))
    print(f'{"camera topic":24s} {"raw MB/s":>9s} {"compressed MB/s":>16s} {"compressed/raw":>15s}')
    res = results['two hosts compressed']
    tot_raw = tot_c = 0.0
    for topic, typ in SENSOR_TOPICS:
        raw = res.get(topic, {}).get('bytes_per_s', 0.0)
        comp = res.get(twins[topic], {}).get('bytes_per_s') if topic in twins else None
        if comp is not None:
            tot_raw, tot_c = tot_raw + raw, tot_c + comp
        print(f'{topic:24s} {raw / 1e6:>9.2f} {(comp or 0) / 1e6 if comp is not None else float("nan"):>16.2f} '
              f'{comp / raw if comp and raw else float("nan"):>15.3f}')
    if tot_raw:
        print(f'{"all camera images":24s} {tot_raw / 1e6:>9.2f} {tot_c / 1e6:>16.2f} {tot_c / tot_raw:>15.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
