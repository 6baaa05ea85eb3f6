#!/usr/bin/env python3
"""Body pose: latency at 640x480, 2D accuracy on the COCO val2017 samples, 3D error of lifted
keypoints on the simulated rig's person billboard.

COCO protocol (single-person, as BlazePose is): each annotated person (>= 5 labelled keypoints) is
cropped with its box enlarged by 25%, the 17 COCO keypoints predicted in the crop are mapped back;
reported: PCK@0.2 (a keypoint is correct within 0.2 x max(box width, height)) over labelled
keypoints, and the mean OKS (COCO's per-keypoint sigmas, area = box area).
3D: the sim rig's left image, stereo depth from the stereo core (no ground truth used), keypoints on
the person billboard lifted with it; error = |z - ground-truth depth| at each keypoint pixel.
Reference figures side by side: latency of the raw MediaPipe Pose call (what a plain wrapper
costs), and for 3D the model's own world landmarks placed at the torso (what hri_body_detect-style
wrappers publish: 3D from the model's guess), scored on the same keypoints.
"""
import argparse
import json
import os
import sys
import time

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.body.metrics import oks, pck  # noqa: E402
from depthmarks_ros.core.body.pipeline import BodyPoseEstimator, coco17_in_box  # noqa: E402


def latency(n):
    from depthmarks_ros.core.sim import SimConfig, SimRig
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    K = sim.stereo.left.intrinsics()
    import mediapipe as mp
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as raw:
        raw.process(f.left_rgb)
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            raw.process(f.left_rgb)
            ts.append(time.perf_counter() - t0)
    ms = np.median(ts) * 1e3
    print(f'reference: raw mp.solutions.pose (complexity 1, tracking), 2D only: {ms:.1f} ms ({1e3 / ms:.1f} fps)')
    for static in (False, True):
        est = BodyPoseEstimator(static=static)
        est.process(f.left_rgb, K, f.depth_gt)
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            est.process(f.left_rgb, K, f.depth_gt)
            ts.append(time.perf_counter() - t0)
        ms = np.median(ts) * 1e3
        print(f'BlazePose (complexity 1, {"static" if static else "tracking"}) + 3D lifting: {ms:.1f} ms '
              f'({1e3 / ms:.1f} fps)')
        est.close()


def coco(data_dir):
    folder = os.path.join(data_dir, 'body', 'coco_val2017')
    ann_file = os.path.join(folder, 'test_coco.json')
    if not os.path.isfile(ann_file):
        print('(COCO samples not found: skipped)')
        return
    ann = json.load(open(ann_file))
    files = {im['id']: im['file_name'] for im in ann['images']}
    est = BodyPoseEstimator(static=True)
    pcks, okss, missed = [], [], 0
    for a in ann['annotations']:
        kp = np.array(a['keypoints'], float).reshape(17, 3)
        lab = kp[:, 2] > 0
        if lab.sum() < 5:
            continue
        img = cv2.cvtColor(cv2.imread(os.path.join(folder, files[a['image_id']])), cv2.COLOR_BGR2RGB)
        x, y, w, h = a['bbox']
        found = coco17_in_box(est.backend, img, a['bbox'])   # box enlarged 25%
        if found is None:
            missed += 1
            pred = np.full((17, 2), np.nan)
        else:
            pred = found[0]
        pcks.append(pck(pred, kp[:, :2], lab, max(w, h)))
        okss.append(oks(pred, kp[:, :2], lab, w * h))
    print(f'COCO val2017 samples: {len(pcks)} people, PCK@0.2 {np.nanmean(pcks):.3f}, mean OKS '
          f'{np.nanmean(okss):.3f}, no detection in {missed}')
    est.close()


def sim_3d():
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)]
    st = StereoMatcher(StereoParams()).compute(*grey)
    depth = sim.stereo.disparity_to_depth(st.disparity)
    est = BodyPoseEstimator(static=True)
    people = est.process(f.left_rgb, sim.stereo.left.intrinsics(), depth)
    if not people:
        print('sim rig: no person found')
        return
    p = people[0]
    from depthmarks_ros.core.body.lifting3d import lift_keypoints
    K = sim.stereo.left.intrinsics()
    model_xyz = lift_keypoints(p.keypoints, p.visibility, K, None, est.backend.process(f.left_rgb)[0].world)[0]
    ours, ref = [], []
    for (u, v), z, zm, src, vis in zip(p.keypoints, p.xyz[:, 2], model_xyz[:, 2], p.source, p.visibility):
        iu, iv = int(round(u)), int(round(v))
        if src == 1 and vis > 0.5 and 0 <= iu < 640 and 0 <= iv < 480 and f.person_mask[iv, iu]:
            ours.append(abs(z - f.depth_gt[iv, iu]))
            ref.append(abs(zm - f.depth_gt[iv, iu]))
    for name, e in (('ours: lifted with stereo depth', np.array(ours)),
                    ('reference: model world landmarks, no depth', np.array(ref))):
        print(f'sim rig person at {np.median(f.depth_gt[f.person_mask]):.2f} m, {len(e)} visible keypoints, '
              f'{name}: depth error mean {e.mean() * 1000:.1f} mm, median {np.median(e) * 1000:.1f} mm, '
              f'max {e.max() * 1000:.1f} mm (target < 50 mm)')
    est.close()


def node_throughput(seconds=4.0, rate=40.0):
    """body_pose in-process over real DDS (own executor thread, as run_node), depth from the sim's
    ground truth; 640x480 image + camera_info + depth published at ``rate`` Hz, outputs counted."""
    import threading
    from depthmarks_ros.testing.ros_harness import RosProbe, configure_ros_env
    configure_ros_env()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from depthmarks_ros.convert.camera_info import info_from_camera
    from depthmarks_ros.convert.image import numpy_to_image
    from depthmarks_ros.convert.stamps import stamp_ns
    from depthmarks_ros.core.sim import SimConfig, SimRig
    from depthmarks_ros.nodes.body_pose import BodyPoseNode
    sim = SimRig(SimConfig())
    f = sim.render(0.0)
    rclpy.init()
    probe = RosProbe('bench_body')
    node = BodyPoseNode(parameter_overrides=[Parameter('depth_topic', value='depth')])
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(Image, 'depth')]
    out = probe.subscribe(PointCloud2, 'body/keypoints', node.output_qos())
    for p in pubs:
        probe.wait_for_subscribers(p)
    info = info_from_camera(sim.stereo.left)

    def send():
        stamp = probe.node.get_clock().now().to_msg()
        msgs = [numpy_to_image(f.left_rgb, 'rgb8'), info, numpy_to_image(f.depth_gt, '32FC1')]
        for m, p in zip(msgs, pubs):
            m.header.stamp = stamp
            p.publish(m)

    for _ in range(5):  # warm-up
        send()
        probe.spin_for(0.1)
    n0, lat, t0 = len(out), [], time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        send()
        n_before = len(out)
        probe.spin_for(1.0 / rate)
        if len(out) > n_before:
            lat.append((probe.node.get_clock().now().nanoseconds - stamp_ns(out[-1].header)) * 1e-6)
    fps = (len(out) - n0) / (time.perf_counter() - t0)
    print(f'body_pose node over DDS, inputs at {rate:.0f} Hz: {fps:.1f} keypoint clouds/s (target >= 30), '
          f'latency stamp -> received median {np.median(lat):.1f} ms')
    ex.shutdown()
    node.shutdown()
    node.destroy_node()
    probe.close()
    rclpy.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', default='/work/shared/data')
    ap.add_argument('--repeat', type=int, default=30)
    args = ap.parse_args()
    print(f'load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')
    latency(args.repeat)
    coco(args.data)
    sim_3d()
    node_throughput()


if __name__ == '__main__':
    main()
