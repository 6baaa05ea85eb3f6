"""A probe process: subscribe some topics for a while and write what arrived as JSON.

For tests and benchmarks that must observe a node graph from another process (e.g. from
inside a network namespace, where the test process cannot reach)::

    python -m depthmarks_ros.testing.topic_probe --duration 6 --out probe.json \\
        --topic stereo/depth:sensor_msgs/msg/Image --topic fusion/depth:sensor_msgs/msg/Image \\
        --ground-truth sim/depth_gt

Per topic it records the receive count, the rate over the window after the first message,
the median/p95 latency (receive wall clock minus header stamp: the publishers must share this
clock, as processes on one machine do), the serialised bytes per second, and for depth
images (32FC1) and DisparityImage the error against the ground truth of the same stamp
(``--ground-truth`` depth, ``--disparity-truth`` disparity; pixels valid in both): per-frame
MAE, RMSE and the share of errors above 2 (px for disparity), medians over frames.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Dict, List

import numpy as np


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--topic', action='append', default=[], help='NAME:pkg/msg/Type (repeatable)')
    ap.add_argument('--ground-truth', default='', help='32FC1 depth topic to score depth images on')
    ap.add_argument('--disparity-truth', default='', help='32FC1 disparity topic to score DisparityImage on')
    ap.add_argument('--duration', type=float, default=6.0, help='seconds after the first message')
    ap.add_argument('--wait', type=float, default=20.0, help='seconds to wait for a first message')
    ap.add_argument('--reliable', action='store_true', help='subscribe reliable (default best effort)')
    ap.add_argument('--order', action='store_true', help='count messages whose stamp is not after the previous one')
    ap.add_argument('--out', required=True)
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from depthmarks_ros.convert.image import depth_image_to_metres
    from depthmarks_ros.pipeline.registry import message_class

    rclpy.init()
    node = rclpy.create_node('depthmarks_topic_probe')
    qos = qos_profile_sensor_data
    if args.reliable:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    lock = threading.Lock()
    rec: Dict[str, Dict[str, List]] = {}
    truth: Dict[str, Dict[int, np.ndarray]] = {'depth': {}, 'disparity': {}}
    truth_topics = {'depth': args.ground_truth, 'disparity': args.disparity_truth}
    truth_names = {t for t in truth_topics.values() if t}
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
                r['stamps'].append(_stamp_ns(msg))
                r['lat'].append((now - _stamp_ns(msg)) / 1e9)
                r['bytes'].append(len(serialize_message(msg)))
                if topic in truth_names:
                    return
                img = msg.image if hasattr(msg, 'image') else msg
                kind = 'disparity' if img is not msg else 'depth'
                if getattr(img, 'encoding', None) == '32FC1' and truth_topics[kind]:
                    pending.append((topic, kind, _stamp_ns(msg), depth_image_to_metres(img).copy()))
                    _score()
        return cb

    def _score():
        # score pending images whose ground truth has arrived; keep both sides bounded
        keep = []
        for topic, kind, stamp, value in pending:
            g = truth[kind].get(stamp)
            if g is None:
                keep.append((topic, kind, stamp, value))
                continue
            ok = np.isfinite(g) & np.isfinite(value) & (g > 0) if g.shape == value.shape else None
            if ok is not None and ok.any():
                err = value[ok] - g[ok]
                rec[topic]['err'].append((float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean())),
                                          float((np.abs(err) > 2.0).mean())))
        pending[:] = keep[-20:]
        for k in truth:
            while len(truth[k]) > 20:
                truth[k].pop(min(truth[k]))

    def make_truth_cb(kind):
        def cb(msg):
            with lock:
                truth[kind][_stamp_ns(msg)] = depth_image_to_metres(msg).copy()
                _score()
        return cb

    for spec in args.topic:
        topic, typ = spec.rsplit(':', 1)
        rec[topic] = {'t': [], 'stamps': [], 'lat': [], 'bytes': [], 'err': []}
        node.create_subscription(message_class(typ), topic, make_cb(topic), qos)
    for kind in ('depth', 'disparity'):
        if truth_topics[kind]:
            node.create_subscription(message_class('sensor_msgs/msg/Image'), truth_topics[kind],
                                     make_truth_cb(kind), qos_profile_sensor_data)
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
            if args.order:
                st = np.array(r['stamps'], dtype=np.int64)
                entry['out_of_order'] = int((np.diff(st) <= 0).sum()) if n > 1 else 0
            errs = np.array(r['err']).reshape(-1, 3)
            if len(errs):     # medians over frames of the per-frame MAE / RMSE / bad-2 share
                entry['mae'] = float(np.median(errs[:, 0]))
                entry['rmse'] = float(np.median(errs[:, 1]))
                entry['bad2'] = float(np.median(errs[:, 2]))
                entry['scored_frames'] = len(errs)
            out[topic] = entry
    with open(args.out, 'w') as f:
        json.dump(out, f, indent=1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
