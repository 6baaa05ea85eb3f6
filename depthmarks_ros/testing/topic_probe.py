"""A probe process: subscribe some topics for a while and write what arrived as JSON.

For tests and benchmarks that must observe a node graph from another process (e.g. from
inside a network namespace, where the test process cannot reach)::

    python -m depthmarks_ros.testing.topic_probe --duration 6 --out probe.json \\
        --topic stereo/depth:sensor_msgs/msg/Image --topic fusion/depth:sensor_msgs/msg/Image \\
        --ground-truth sim/depth_gt

Per topic it records the receive count, the rate over the window after the first message,
the median/p95 latency (receive wall clock minus header stamp: the publishers must share this
clock, as processes on one machine do), the serialised bytes per second, and for depth
images (32FC1) the mean absolute error against the ground-truth depth image of the same stamp
(``--ground-truth``) on pixels valid in both.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import threading
import time
from typing import Dict, List

import numpy as np


def _msg_class(name: str):
    pkg, _msg, cls = name.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), cls)


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--topic', action='append', default=[], help='NAME:pkg/msg/Type (repeatable)')
    ap.add_argument('--ground-truth', default='', help='32FC1 depth topic to score depth images on')
    ap.add_argument('--duration', type=float, default=6.0, help='seconds after the first message')
    ap.add_argument('--wait', type=float, default=20.0, help='seconds to wait for a first message')
    ap.add_argument('--reliable', action='store_true', help='subscribe reliable (default best effort)')
    ap.add_argument('--out', required=True)
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from depthmarks_ros.convert.image import depth_image_to_metres

    rclpy.init()
    node = rclpy.create_node('depthmarks_topic_probe')
    qos = qos_profile_sensor_data
    if args.reliable:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    lock = threading.Lock()
    rec: Dict[str, Dict[str, List]] = {}
    gt: Dict[int, np.ndarray] = {}
    pending: List = []
    first = [None]

    def make_cb(topic):
        def cb(msg):
            now = time.time_ns()
            with lock:
                if first[0] is None:
                    first[0] = time.monotonic()
                r = rec[topic]
                r['t'].append(now)
                r['lat'].append((now - _stamp_ns(msg)) / 1e9)
                r['bytes'].append(len(serialize_message(msg)))
                if getattr(msg, 'encoding', None) == '32FC1' and args.ground_truth and topic != args.ground_truth:
                    pending.append((topic, _stamp_ns(msg), depth_image_to_metres(msg).copy()))
                    _score()
        return cb

    def _score():
        # score pending depth images whose ground truth has arrived; keep both sides bounded
        keep = []
        for topic, stamp, depth in pending:
            g = gt.get(stamp)
            if g is None:
                keep.append((topic, stamp, depth))
                continue
            ok = np.isfinite(g) & np.isfinite(depth) if g.shape == depth.shape else None
            if ok is not None and ok.any():
                rec[topic]['depth_err'].append(float(np.abs(depth[ok] - g[ok]).mean()))
        pending[:] = keep[-20:]
        while len(gt) > 20:
            gt.pop(min(gt))

    def gt_cb(msg):
        with lock:
            gt[_stamp_ns(msg)] = depth_image_to_metres(msg).copy()
            _score()

    for spec in args.topic:
        topic, typ = spec.rsplit(':', 1)
        rec[topic] = {'t': [], 'lat': [], 'bytes': [], 'depth_err': []}
        node.create_subscription(_msg_class(typ), topic, make_cb(topic), qos)
    if args.ground_truth:
        node.create_subscription(_msg_class('sensor_msgs/msg/Image'), args.ground_truth, gt_cb,
                                 qos_profile_sensor_data)
    start = time.monotonic()
    while True:
        rclpy.spin_once(node, timeout_sec=0.05)
        if first[0] is None and time.monotonic() - start > args.wait:
            break
        if first[0] is not None and time.monotonic() - first[0] > args.duration:
            break
    out = {}
    with lock:
        for topic, r in rec.items():
            t = np.array(r['t'], dtype=np.int64)
            n = len(t)
            span = (t[-1] - t[0]) / 1e9 if n > 1 else 0.0
            entry = {'count': n, 'rate_hz': (n - 1) / span if span > 0 else 0.0,
                     'latency_median_ms': float(np.median(r['lat']) * 1e3) if n else None,
                     'latency_p95_ms': float(np.percentile(r['lat'], 95) * 1e3) if n else None,
                     'bytes_per_s': float(sum(r['bytes']) / span) if span > 0 else 0.0,
                     'mean_bytes': float(np.mean(r['bytes'])) if n else 0.0}
            errs = r['depth_err']
            if errs:
                entry['depth_mae_m'] = float(np.median(errs))
                entry['depth_scored_frames'] = len(errs)
            out[topic] = entry
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
