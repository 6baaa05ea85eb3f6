#!/usr/bin/env python3
"""Where the stereo node's frame goes outside the matcher: per-step wall and CPU ms per frame (medians).

Runs the README's main job (`depthmarks run`, single process: sim, stereo, fusion, face, body,
recording on) in this process, with each step of stereo_depth's frame timed on its worker thread
(wall ``time.perf_counter`` and CPU ``time.thread_time``: the CPU figures move little with the
machine's load, the wall ones a lot): decoding the pair, the cameras, the chain and its matcher,
depth, the image messages, the DisparityImage, camera_info, rclpy's publish, the recorder's
hand-over. Prints the medians over the frames (the first 5 left out), the median of each frame's
own rest (frame - matcher, wall and CPU) and the node's /diagnostics. It profiles the package of
the current directory, so the anchor is profiled from an unpacked older commit:

    .venv/bin/python benchmarks/profile_stereo_node.py [--duration 20]
    mkdir /tmp/anchor && git archive 6f36297 | tar -x -C /tmp/anchor && \\
        (cd /tmp/anchor && $OLDPWD/.venv/bin/python $OLDPWD/benchmarks/profile_stereo_node.py)

Not a speed benchmark (bench_stereo_overhead.py runs ours next to the anchor): a profile.
"""
import argparse
import collections
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.getcwd())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--duration', type=float, default=20.0)
    ap.add_argument('--nodes', default='sim,stereo,fusion,face,body')
    args = ap.parse_args()
    from depthmarks_ros.testing.ros_harness import configure_ros_env
    configure_ros_env()   # a DDS domain of its own, loopback only
    import numpy as np
    import rclpy.publisher
    from depthmarks_ros.core import camera as camera_mod
    from depthmarks_ros.core.stereo import pipeline as pipeline_mod
    from depthmarks_ros.core.stereo.coarse_to_fine_census import CoarseToFineCensusBackend
    from depthmarks_ros.nodes import stereo_depth as sd
    from depthmarks_ros.pipeline import recorder_node, runner as runner_mod
    from depthmarks_ros.ros import image_publisher, local_tap

    frames, local = [], threading.local()

    def timed(owner, name, label, static=False):
        fn = getattr(owner, name)

        def wrapper(*a, **k):
            cur = getattr(local, 'frame', None)
            if cur is None:
                return fn(*a, **k)
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                e = cur[label]
                e[0] += time.perf_counter() - t0
                e[1] += time.thread_time() - c0
        setattr(owner, name, staticmethod(wrapper) if static else wrapper)

    process = sd.StereoDepthNode._process

    def profiled(self, msgs):
        local.frame = collections.defaultdict(lambda: [0.0, 0.0])
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            process(self, msgs)
        finally:
            local.frame['frame'] = [time.perf_counter() - t0, time.thread_time() - c0]
            frames.append(local.frame)
            local.frame = None
    sd.StereoDepthNode._process = profiled
    for owner, name, label, static in [
            (sd, 'image_to_mono8', 'rgb8 -> grey (image_to_mono8)', False),
            (sd, 'image_to_rgb8', 'rgb8 for the points (image_to_rgb8)', False),
            (sd.StereoDepthNode, '_cameras', 'cameras (_cameras)', False),
            (pipeline_mod.StereoPipeline, 'process', 'chain (StereoPipeline.process)', False),
            (CoarseToFineCensusBackend, 'compute', 'matcher (backend.compute)', False),
            (camera_mod.StereoCamera, 'disparity_to_depth', 'depth (disparity_to_depth)', False),
            (sd.StereoDepthNode, '_publish', 'outputs (_publish)', False),
            (sd, 'numpy_to_image', 'image messages (numpy_to_image)', False),
            (sd.StereoDepthNode, '_disparity_msg', 'DisparityImage (_disparity_msg)', True),
            (sd, 'info_from_camera', 'camera_info (info_from_camera)', False),
            (rclpy.publisher.Publisher, 'publish', 'rclpy publish', False),
            (rclpy.publisher.Publisher, 'get_subscription_count', 'subscription counts', False),
            (image_publisher.ImagePublisher, 'publish', 'ImagePublisher.publish', False),
            (local_tap.TappedPublisher, 'publish', 'TappedPublisher.publish', False),
            (recorder_node.RecorderNode, '_on_local', "recorder's hand-over (_on_local)", False)]:
        if hasattr(owner, name):
            timed(owner, name, label, static)

    load = lambda: ' '.join(f'{x:.2f}' for x in os.getloadavg())  # noqa: E731
    print(f'code: {os.getcwd()}  load before: {load()}', flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = runner_mod.RunConfig(duration=args.duration, output=tmp, progress=False,
                                   nodes=[n for n in args.nodes.split(',') if n], record=True)
        metrics = runner_mod.PipelineRunner(cfg).run()
    print(f'load after: {load()}')
    fr = frames[5:]
    if not fr:
        raise SystemExit('no stereo frames')
    med = lambda key, i: float(np.median([f[key][i] if key in f else 0.0 for f in fr])) * 1e3  # noqa: E731
    keys = sorted({k for f in fr for k in f}, key=lambda k: -med(k, 1))
    print(f'\n{len(fr)} frames; medians, ms per frame: wall / CPU of the worker thread (nested steps count in their callers)')
    for k in keys:
        print(f'  {k:40s} {med(k, 0):8.3f} / {med(k, 1):7.3f}')
    m = 'matcher (backend.compute)'
    rest = [(f['frame'][0] - f[m][0], f['frame'][1] - f[m][1]) for f in fr if m in f]
    if rest:
        print(f'  {"rest = frame - matcher, each frame":40s} {np.median([r[0] for r in rest]) * 1e3:8.3f} / '
              f'{np.median([r[1] for r in rest]) * 1e3:7.3f}')
    print('\nnode /diagnostics:', metrics['node_counters'].get('stereo_depth'))


if __name__ == '__main__':
    main()
