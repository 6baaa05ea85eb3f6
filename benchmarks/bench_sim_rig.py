#!/usr/bin/env python3
"""Simulated rig: cost of one frame (640x480 stereo + RGB + one LiDAR sweep) on this CPU.

Prints the render time of a static rig (ray casting cached, noise re-drawn per frame), of a
moving rig (everything re-cast every frame), and of the LiDAR sweep, against the 100 ms budget of
a 10 Hz pipeline.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))

from depthmarks_ros.core.sim import SimConfig, SimRig  # noqa: E402


def median_ms(fn, n):
    fn(0)
    times = []
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--frames', type=int, default=10)
    ap.add_argument('--rings', type=int, default=32)
    ap.add_argument('--data', default='/work/shared/data',
                    help='accepted for uniformity with the other benchmarks; the rig needs no data set')
    args = ap.parse_args()
    print(f'load: {os.getloadavg()[0]:.2f}')
    print(f'{"case":48s} {"ms/frame":>9s}  budget 100 ms (10 Hz)')
    for w, h in ((640, 480), (1280, 720)):
        static = SimRig(SimConfig(width=w, height=h, lidar_rings=args.rings))
        moving = SimRig(SimConfig(width=w, height=h, lidar_rings=args.rings, motion=True))
        cam_s = median_ms(lambda i: static.render(i * 0.1), args.frames)
        cam_m = median_ms(lambda i: moving.render(i * 0.1), max(3, args.frames // 2))
        lidar = median_ms(lambda i: static.render_lidar(i * 0.1), args.frames)
        n_pts = len(static.render_lidar(0.0))
        print(f'{w}x{h} stereo+RGB, static rig (cached rays)      {cam_s:9.1f}')
        print(f'{w}x{h} stereo+RGB, moving rig (full ray cast)    {cam_m:9.1f}')
        print(f'LiDAR sweep {args.rings} rings x 1024 ({n_pts} returns)          {lidar:9.1f}')
        print(f'{w}x{h} full frame, static / moving              {cam_s + lidar:9.1f} / {cam_m + lidar:.1f}')


if __name__ == '__main__':
    main()
