#!/usr/bin/env python3
"""One DDS hop of the pipeline's images, in one process vs between processes, and what it costs.

A stereo_depth-like publisher sends three 640x480 float32 images (reliable, keep last 2: the nodes'
output QoS) at 10 Hz from a worker thread; a depth_fusion-like subscriber takes two of them
(best effort, keep last 1, converted to arrays) and a recorder-like one all three (reliable, keep
last 20, serialized: `depthmarks run`'s recorder). Variants, interleaved, each ``--reps`` times:

  in-process    all three nodes in one process, one executor (the single-process main job)
  processes     one process each, the shipped config/fastdds_localhost.xml (the multi-process layout)
  no-mallopt    processes, with glibc malloc's own thresholds (DEPTHMARKS_MALLOPT=0, before ros/process.py)
  shm-only      processes, the shipped profile without its UDP transport and 16 MB SHM messages
                (no 64 KB fragments)
  async         processes, RMW_FASTRTPS_PUBLICATION_MODE=ASYNCHRONOUS
  profile-only  processes, ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT: the participant has only the
                profile's transports (under LOCALHOST rmw_fastrtps appends its own 512 KB SHM and UDP
                transports to them, so each sample is also copied into a second SHM segment)
  udp-only      processes, the shipped profile without its SHM transport (what a sample costs when it
                goes over UDP on loopback: 64 KB datagrams)

Printed per variant (median over the repetitions): the publish call per image (ms), delivery latency
(stamp -> callback) median / p95 at each subscriber, CPU seconds and minor page faults per 100
frames of the publishing and subscribing processes, UDP datagrams sent per frame on the machine
(/proc/net/snmp, all processes of the network namespace: which transport the images took; a few per
frame are other traffic, a 1.2 MB image over UDP is ~19 datagrams per reader) and bytes through the
loopback interface per frame (run it in a network namespace of its own, `unshare -n`, as root, for
figures without other processes' traffic), and the machine load.

    .venv/bin/python benchmarks/bench_dds_hop.py [--frames 100] [--reps 3] [--variants in-process,processes,no-mallopt]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
VARIANTS = ('in-process', 'processes', 'no-mallopt', 'shm-only', 'async', 'profile-only', 'udp-only')
TOPICS = ('hop/disparity', 'hop/depth', 'hop/confidence')


def _role(role: str, frames: int, out: str) -> None:
    """One side of the hop (or all of them, role 'all'): writes its figures as JSON to ``out``."""
    import resource
    import numpy as np
    from depthmarks_ros.ros.process import keep_large_buffers
    keep_large_buffers()
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
    from depthmarks_ros.pipeline.recorder import cdr_stamp_ns
    from depthmarks_ros.ros.executors import make_executor
    rclpy.init()
    reliable = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=2)
    recorder_qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=20)
    best_effort = QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST, depth=1)
    executor, _ = make_executor()
    latency = {'fusion': [], 'recorder': []}
    nodes = []
    if role in ('fusion', 'all'):
        node = Node('hop_fusion')

        def on_image(msg):
            image_to_numpy(msg)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latency['fusion'].append((time.time_ns() - stamp) * 1e-6)
        for topic in TOPICS[1:]:
            node.create_subscription(Image, topic, on_image, best_effort)
        nodes.append(node)
    if role in ('recorder', 'all'):
        node = Node('hop_recorder')
        for topic in TOPICS:
            node.create_subscription(Image, topic, lambda data: latency['recorder'].append(
                (time.time_ns() - cdr_stamp_ns(data)) * 1e-6), recorder_qos, raw=True)
        nodes.append(node)
    publish_s, sent = [], threading.Event()
    if role in ('pub', 'all'):
        node = Node('hop_publisher')
        pubs = [node.create_publisher(Image, t, reliable) for t in TOPICS]
        nodes.append(node)
        image = np.random.default_rng(0).random((480, 640), dtype=np.float32)

        def publish_loop():   # a worker thread, as the nodes publish from theirs
            wanted = (1, 2, 2)
            while not all(p.get_subscription_count() >= n for p, n in zip(pubs, wanted)):
                time.sleep(0.05)
            time.sleep(1.0)
            t_next = time.monotonic()
            for _ in range(frames):
                now = time.time_ns()
                for p in pubs:
                    msg = numpy_to_image(image, '32FC1')
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
                    t0 = time.perf_counter()
                    p.publish(msg)
                    publish_s.append(time.perf_counter() - t0)
                t_next += 0.1
                time.sleep(max(0.0, t_next - time.monotonic()))
            time.sleep(0.5)
            sent.set()
        threading.Thread(target=publish_loop, daemon=True).start()
    for node in nodes:
        executor.add_node(node)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    expected = {'fusion': 2 * frames, 'recorder': 3 * frames}
    end = time.monotonic() + frames * 0.1 + 40
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if role in ('pub', 'all') and sent.is_set():
            break
        if role in expected and len(latency[role]) >= expected[role]:
            break
    usage = resource.getrusage(resource.RUSAGE_SELF)
    res = {'cpu_s': usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime,
           'faults': usage.ru_minflt - usage0.ru_minflt}
    if publish_s:
        res['publish_ms'] = float(np.median(publish_s) * 1e3)
    for k, v in latency.items():
        if v:
            lat = np.array(v[6:] or v)
            res[k] = {'median': float(np.median(lat)), 'p95': float(np.percentile(lat, 95)), 'n': len(v)}
    with open(out, 'w') as f:
        json.dump(res, f)
    executor.shutdown()
    rclpy.try_shutdown()


def _shm_only_profile(folder: str) -> str:
    """The shipped loopback profile without its UDP transport and with 16 MB SHM messages."""
    from depthmarks_ros.pipeline.publication import loopback_profile
    with open(loopback_profile()) as f:
        xml = f.read()
    xml = xml.replace('<segment_size>16777216</segment_size>',
                      '<segment_size>33554432</segment_size>\n        <maxMessageSize>16777216</maxMessageSize>')
    udp = '          <transport_id>depthmarks_udp_loopback</transport_id>\n'   # the one in <userTransports>
    if udp not in xml:
        raise SystemExit(f'{loopback_profile()} changed: update bench_dds_hop._shm_only_profile')
    xml = xml.replace(udp, '')
    path = os.path.join(folder, 'fastdds_shm_only.xml')
    with open(path, 'w') as f:
        f.write(xml)
    return path


def _udp_only_profile(folder: str) -> str:
    """The shipped loopback profile without its shared-memory transport."""
    from depthmarks_ros.pipeline.publication import loopback_profile
    with open(loopback_profile()) as f:
        xml = f.read()
    shm = '          <transport_id>depthmarks_shm</transport_id>\n'   # the one in <userTransports>
    if shm not in xml:
        raise SystemExit(f'{loopback_profile()} changed: update bench_dds_hop._udp_only_profile')
    path = os.path.join(folder, 'fastdds_udp_only.xml')
    with open(path, 'w') as f:
        f.write(xml.replace(shm, ''))
    return path


def _loopback_tx() -> tuple:
    """(UDP datagrams sent, bytes sent on ``lo``) so far in this network namespace (/proc/net/snmp,
    /proc/net/dev); (-1, -1) where unreadable."""
    try:
        with open('/proc/net/snmp') as f:
            rows = [line.split() for line in f if line.startswith('Udp:')]
        with open('/proc/net/dev') as f:
            lo = [line.split(':', 1)[1].split() for line in f if line.strip().startswith('lo:')][0]
        return int(rows[1][rows[0].index('OutDatagrams')]), int(lo[8])
    except (OSError, IndexError, ValueError):
        return -1, -1


def _run_variant(variant: str, frames: int, folder: str) -> dict:
    from depthmarks_ros.pipeline.publication import PROFILES_ENV
    env = dict(os.environ)
    if variant == 'no-mallopt':
        env['DEPTHMARKS_MALLOPT'] = '0'
    elif variant == 'shm-only':
        env[PROFILES_ENV] = _shm_only_profile(folder)
    elif variant == 'async':
        env['RMW_FASTRTPS_PUBLICATION_MODE'] = 'ASYNCHRONOUS'
    elif variant == 'profile-only':
        env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'SYSTEM_DEFAULT'
    elif variant == 'udp-only':
        env[PROFILES_ENV] = _udp_only_profile(folder)
    udp0, lo0 = _loopback_tx()
    roles = ['all'] if variant == 'in-process' else ['fusion', 'recorder', 'pub']
    outs = {r: os.path.join(folder, f'{variant}_{r}.json') for r in roles}
    cmd = [sys.executable, os.path.abspath(__file__), '--frames', str(frames)]
    procs = {r: subprocess.Popen(cmd + ['--role', r, '--out', outs[r]], env=env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for r in roles}
    for r, p in procs.items():
        if p.wait(frames * 0.1 + 120) != 0:
            raise SystemExit(f'{variant}: the {r} process failed')
    udp1, lo1 = _loopback_tx()
    udp = udp1 - udp0 if udp0 >= 0 else float('nan')
    lo_mb = (lo1 - lo0) / 1e6 if lo0 >= 0 else float('nan')
    res = {r: json.load(open(outs[r])) for r in roles}
    if variant == 'in-process':
        return {'publish_ms': res['all']['publish_ms'], 'fusion': res['all']['fusion'],
                'recorder': res['all']['recorder'], 'cpu_s': res['all']['cpu_s'], 'faults': res['all']['faults'],
                'udp': udp, 'lo_mb': lo_mb}
    return {'publish_ms': res['pub']['publish_ms'], 'fusion': res['fusion'].get('fusion'),
            'recorder': res['recorder'].get('recorder'), 'cpu_s': sum(r['cpu_s'] for r in res.values()),
            'faults': sum(r['faults'] for r in res.values()), 'udp': udp, 'lo_mb': lo_mb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--frames', type=int, default=100, help='frames (of three images) per run')
    ap.add_argument('--reps', type=int, default=3, help='runs of each variant, interleaved')
    ap.add_argument('--variants', default=','.join(VARIANTS))
    ap.add_argument('--role', help=argparse.SUPPRESS)
    ap.add_argument('--out', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        _role(args.role, args.frames, args.out)
        return 0
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    configure_ros_env()
    import numpy as np
    variants = [v for v in args.variants.split(',') if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f'unknown variants {sorted(unknown)}: choose from {list(VARIANTS)}')
    runs = {v: [] for v in variants}
    loads = []
    print(f'cores: {os.cpu_count()}  load before: {" ".join(f"{x:.2f}" for x in os.getloadavg())}  '
          f'({args.frames} frames of 3 x 640x480 float32 at 10 Hz per run, {args.reps} runs per variant)')
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.reps):
            for v in variants:
                loads.append(os.getloadavg()[0])
                runs[v].append(_run_variant(v, args.frames, folder))
    print(f'load average during the runs: {min(loads):.2f} .. {max(loads):.2f}')
    print(f'{"variant":12s} {"publish ms":>10s} {"fusion-like med/p95 ms":>23s} {"recorder-like med/p95 ms":>25s} '
          f'{"CPU s/100 frames":>17s} {"faults/frame":>13s} {"UDP dgrams/frame":>17s} {"lo MB/frame":>12s}')

    def med(v, *path):
        vals = []
        for r in runs[v]:
            x = r
            for p in path:
                x = (x or {}).get(p)
            if x is not None:
                vals.append(x)
        return float(np.median(vals)) if vals else float('nan')
    for v in variants:
        print(f'{v:12s} {med(v, "publish_ms"):10.2f} {med(v, "fusion", "median"):11.2f} / {med(v, "fusion", "p95"):<9.2f}'
              f' {med(v, "recorder", "median"):12.2f} / {med(v, "recorder", "p95"):<10.2f}'
              f' {med(v, "cpu_s") * 100 / args.frames:17.2f} {med(v, "faults") / args.frames:13.0f}'
              f' {med(v, "udp") / args.frames:17.1f} {med(v, "lo_mb") / args.frames:12.3f}')
    lost = {v: [r['fusion']['n'] if r.get('fusion') else 0 for r in runs[v]] for v in variants}
    print('fusion-like samples received per run (best effort, of ' + str(2 * args.frames) + '): '
          + '; '.join(f'{v} {x}' for v, x in lost.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
