#!/usr/bin/env python3
"""Where the CPU goes in the main job: a CPU-time profile per thread (not a speed benchmark).

Runs the README's main job (`depthmarks run`, single process: sim, stereo, fusion, face, body,
recording on) in this process with cProfile on every node worker thread and on the main thread
(the executor: message delivery and the recorder's callbacks), timed by ``time.thread_time``: the
figures are CPU seconds of that thread, which the machine's load changes little (waiting for the
GIL or a core is not counted), unlike wall latencies. Prints, per thread, CPU ms per processed
frame, split into the node's stages (conversion in, compute, messages out and publish, ...), the
top functions, and every thread of the process grouped by OS thread name from /proc (native pools
included: OpenCV's pool is started from a thread named ``opencv-pool``, so its CPU is its own).

cProfile slows Python-heavy code (message building) more than native code: use the shares and
the before/after differences, and bench_pipeline.py for rates and latencies.

    .venv/bin/python benchmarks/profile_pipeline.py --duration 20 [-p NODE:NAME=VALUE ...] [--top 12]
"""
import argparse
import collections
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

# stages: (label, substrings of a function's file:name, matched in order against cumulative times)
STAGES = [
    ('decode input (Image -> array)', ('convert/image.py:image_to', 'convert/image.py:image_array',
                                       'convert/image.py:depth_image_to_metres', 'convert/cloud.py:xyz_from_cloud',
                                       'camera_info.py:camera_from_info')),
    ('message out (array -> msg)', ('convert/image.py:numpy_to_image', 'convert/cloud.py:points_cloud',
                                    'convert/cloud.py:array_to_cloud', 'camera_info.py:info_from_camera',
                                    '_disparity_msg', '_markers', 'landmarks_array', 'keypoints_array',
                                    'hands_array')),
    ('publish (serialise)', ('rclpy/publisher.py:publish',)),
    ('stereo matcher', ('matching.py:compute', 'backend.py:compute')),
    ('points (depth -> xyz)', ('depth_to_points',)),
    ('recorder callback', ('recorder_node.py:_on_message',)),
]


def _key(func) -> str:
    filename, _line, name = func
    return f'{filename.split("site-packages/")[-1].split("depthmarks_ros/", 1)[-1]}:{name}'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--duration', type=float, default=20.0)
    ap.add_argument('--param', '-p', action='append', default=[], metavar='NODE:NAME=VALUE')
    ap.add_argument('--nodes', default='sim,stereo,fusion,face,body')
    ap.add_argument('--no-record', action='store_true')
    ap.add_argument('--top', type=int, default=10)
    args = ap.parse_args()
    # a DDS domain of its own, loopback only (other runs on the machine would feed this one)
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    configure_ros_env()

    from depthmarks_ros.cli.run_pipeline import parse_param_overrides
    from depthmarks_ros.pipeline import runner as runner_mod
    from depthmarks_ros.ros import worker as worker_mod

    profiles = {}          # thread name -> Profile
    lock = threading.Lock()
    orig_run = worker_mod.LatestWorker._run

    def profiled_run(self):
        prof = cProfile.Profile(time.thread_time)
        with lock:
            profiles[self.thread_name] = (prof, self)
        prof.enable()
        try:
            orig_run(self)
        finally:
            prof.disable()
    worker_mod.LatestWorker._run = profiled_run

    main_prof = cProfile.Profile(time.thread_time)
    orig_spin = runner_mod.PipelineRunner._spin

    def profiled_spin(self, *a, **kw):
        main_prof.enable()
        try:
            return orig_spin(self, *a, **kw)
        finally:
            main_prof.disable()
    runner_mod.PipelineRunner._spin = profiled_spin

    start_opencv_pool()
    print(f'load before: {" ".join(f"{x:.2f}" for x in os.getloadavg())}  cores: {os.cpu_count()}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = runner_mod.RunConfig(duration=args.duration, output=tmp, progress=False,
                                   nodes=[n for n in args.nodes.split(',') if n],
                                   record=not args.no_record, overrides=parse_param_overrides(args.param))
        r = runner_mod.PipelineRunner(cfg)
        metrics = r.run()
    print(f'load after: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    wall = args.duration
    print(f'\nCPU share per thread group over the steady part of the run (/proc; 1.0 = one core):')
    for k, v in metrics.get('cpu_threads', {}).items():
        print(f'  {k:48s} {v:6.3f}')
    rows = [('main thread (executor, recorder)', main_prof, None)] + \
        [(name, prof, w) for name, (prof, w) in sorted(profiles.items())]
    print(f'\nProfiled CPU per thread (cProfile, thread_time; ms per processed item; run {wall:.0f} s):')
    for name, prof, w in rows:
        st = pstats.Stats(prof)
        total = st.total_tt
        n = w.processed if w is not None else None
        per = (lambda s: s * 1e3 / n) if n else (lambda s: s * 1e3 / wall)
        unit = f'ms/item over {n} items' if n else 'ms per s'
        print(f'\n== {name}: {per(total):.1f} {unit} (CPU {total:.1f} s)')
        for label, pats in STAGES:
            s = _outermost(st, pats)   # nested matches counted once
            if s > 0.005 * total:
                print(f'    {label:34s} {per(s):7.1f}')
        top = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:args.top]
        for func, (cc, nc, tt, ct, _callers) in top:
            print(f'      self {per(tt):7.2f}  cum {per(ct):7.2f}  {_key(func)[:90]}')


def _outermost(st, pats) -> float:
    """Cumulative time of the functions matching ``pats`` minus what they spend in each other."""
    match = {f for f in st.stats if any(p in _key(f) for p in pats)}
    total = 0.0
    for f in match:
        cc, nc, tt, ct, callers = st.stats[f]
        inner = sum(v[3] for c, v in callers.items() if c in match)   # time called from another match
        total += ct - inner
    return total


def start_opencv_pool():
    """Start OpenCV's thread pool from a thread named 'opencv-pool' (its threads inherit the name)."""
    import cv2
    import numpy as np
    from depthmarks_ros.ros.worker import set_os_thread_name

    def warm():
        set_os_thread_name('opencv-pool')
        img = np.zeros((480, 640), np.uint8)
        cv2.StereoSGBM_create(0, 64, 5, mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY).compute(img, img)  # runs in parallel
    t = threading.Thread(target=warm)
    t.start()
    t.join()


if __name__ == '__main__':
    main()
