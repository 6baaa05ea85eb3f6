"""sim_rig: a simulated stereo + RGB + LiDAR rig with exact ground truth (see docs/sim_rig.md).

Cameras publish at ``rate``, the LiDAR at ``lidar_rate``; the sensors of one camera instant share
one stamp. Rendering happens in a worker thread so a slow frame never queues: the timer hands
the newest instant over and older pending ones are dropped (and counted).
"""
from __future__ import annotations

import sys
import time

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.ros.node_base import DepthmarksNode, run_node


class SimRigNode(DepthmarksNode):
    def __init__(self, **kwargs):
        super().__init__('sim_rig', **kwargs)
        d = self.declare
        d('rate', 10.0, 'Camera frame rate (Hz)', min_value=0.1, max_value=100.0, read_only=True)
        d('lidar_rate', 10.0, 'LiDAR sweep rate (Hz)', min_value=0.1, max_value=100.0, read_only=True)
        d('width', 640, 'Image width (px); the calibration is scaled', min_value=16, max_value=4096, read_only=True)
        d('height', 480, 'Image height (px)', min_value=16, max_value=4096, read_only=True)
        d('baseline', 0.0, 'Stereo baseline override (m); 0 = from the calibration', min_value=0.0,
          max_value=2.0, read_only=True)
        d('image_noise', 1.5, 'Std of additive image noise (grey levels)', min_value=0.0, max_value=50.0,
          read_only=True)
        d('lidar_rings', 32, 'LiDAR rings (beams)', min_value=1, max_value=256, read_only=True)
        d('lidar_horizontal_resolution', 1024, 'LiDAR points per ring per revolution', min_value=8,
          max_value=8192, read_only=True)
        d('lidar_range_noise', 0.02, 'LiDAR range noise std (m)', min_value=0.0, max_value=1.0, read_only=True)
        d('lidar_dropout', 0.02, 'Probability that a LiDAR return is lost', min_value=0.0, max_value=1.0,
          read_only=True)
        d('lidar_vertical_fov_min', -25.0, 'Elevation of the lowest ring (deg)', min_value=-90.0, max_value=90.0,
          read_only=True)
        d('lidar_vertical_fov_max', 15.0, 'Elevation of the highest ring (deg)', min_value=-90.0, max_value=90.0,
          read_only=True)
        d('lidar_max_range', 60.0, 'LiDAR maximum range (m)', min_value=0.5, max_value=500.0, read_only=True)
        d('seed', 0, 'Random seed (textures, noise)', min_value=0, max_value=2**31 - 1, read_only=True)
        d('scene', 'default', 'Scene to render', choices=('default', 'simple'), read_only=True)
        d('motion', False, 'Sway the rig sideways over time', read_only=True)
        d('publish_ground_truth', True, 'Publish sim/depth_gt and sim/disparity_gt')
        d('rig_file', '', 'Rig calibration YAML; empty = the package config/sim_rig/rig.yaml', read_only=True)
        p = self.p
        self.sim = SimRig(SimConfig(
            width=p.width, height=p.height, seed=p.seed, scene=p.scene, baseline=p.baseline,
            image_noise=p.image_noise, lidar_rings=p.lidar_rings,
            lidar_horizontal_resolution=p.lidar_horizontal_resolution,
            lidar_range_noise=p.lidar_range_noise, lidar_dropout=p.lidar_dropout,
            lidar_vertical_fov=(p.lidar_vertical_fov_min, p.lidar_vertical_fov_max),
            lidar_max_range=p.lidar_max_range, motion=p.motion, rig_file=p.rig_file))
        qos = self.output_qos()
        pub = self.create_publisher
        self.pub_left = self.create_image_publisher('stereo/left/image_raw', qos)
        self.pub_left_info = pub(CameraInfo, 'stereo/left/camera_info', qos)
        self.pub_right = self.create_image_publisher('stereo/right/image_raw', qos)
        self.pub_right_info = pub(CameraInfo, 'stereo/right/camera_info', qos)
        self.pub_rgb = self.create_image_publisher('camera/image_raw', qos)
        self.pub_rgb_info = pub(CameraInfo, 'camera/camera_info', qos)
        self.pub_lidar = pub(PointCloud2, 'lidar/points', qos)
        self.pub_depth = self.create_image_publisher('sim/depth_gt', qos, 'depth')
        self.pub_disp = pub(Image, 'sim/disparity_gt', qos)
        self.left_info = info_from_camera(self.sim.stereo.left)
        self.right_info = info_from_camera(self.sim.stereo.right)
        self.frames = self.sweeps = 0
        self._t0 = self.get_clock().now().nanoseconds
        self.camera_worker = self.make_worker(self._publish_cameras, 'cameras')
        self.lidar_worker = self.make_worker(self._publish_lidar, 'lidar')
        if p.lidar_rate == p.rate:
            # same rate: one clock, so the sweep of an instant carries the cameras' stamp
            self.create_timer(1.0 / p.rate, self._tick_both)
        else:
            self.create_timer(1.0 / p.rate, lambda: self.camera_worker.submit(self.get_clock().now()))
            self.create_timer(1.0 / p.lidar_rate, lambda: self.lidar_worker.submit(self.get_clock().now()))

    def _tick_both(self) -> None:
        now = self.get_clock().now()
        self.camera_worker.submit(now)
        self.lidar_worker.submit(now)

    def _sim_time(self, now) -> float:
        return (now.nanoseconds - self._t0) * 1e-9

    def _publish_cameras(self, now) -> None:
        start = time.monotonic()
        frame = self.sim.render(self._sim_time(now), now.nanoseconds)
        stamp = now.to_msg()
        for img_pub, info_pub, info, rgb, frame_id in (
                (self.pub_left, self.pub_left_info, self.left_info, frame.left_rgb, self.sim.stereo.left.frame_id),
                (self.pub_right, self.pub_right_info, self.right_info, frame.right_rgb, self.sim.stereo.right.frame_id),
                (self.pub_rgb, self.pub_rgb_info, self.left_info, frame.left_rgb, self.sim.stereo.left.frame_id)):
            msg = numpy_to_image(rgb, 'rgb8')
            msg.header.stamp, msg.header.frame_id = stamp, frame_id
            info.header = msg.header
            img_pub.publish(msg)
            info_pub.publish(info)
        if self.p.publish_ground_truth:
            for pub, arr in ((self.pub_depth, frame.depth_gt), (self.pub_disp, frame.disparity_gt)):
                msg = numpy_to_image(arr, '32FC1')
                msg.header.stamp, msg.header.frame_id = stamp, self.sim.stereo.left.frame_id
                pub.publish(msg)
        self.frames += 1
        self.stats.output(self.latency_since(msg.header), time.monotonic() - start)

    def _publish_lidar(self, now) -> None:
        sweep = self.sim.render_lidar(self._sim_time(now))
        msg = array_to_cloud(sweep)
        msg.header.stamp, msg.header.frame_id = now.to_msg(), self.sim.rig.frame_of('lidar')
        self.pub_lidar.publish(msg)
        self.sweeps += 1

    def diagnostic_values(self):
        return {'frames': self.frames, 'sweeps': self.sweeps,
                'baseline_m': round(self.sim.stereo.baseline, 4), 'scene': self.p.scene}


NODE_CLASS = SimRigNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args)


if __name__ == '__main__':
    sys.exit(main())
