"""sim_rig: a simulated stereo + RGB + LiDAR rig with exact ground truth (see docs/sim_rig.md).

Cameras publish at ``rate``, the LiDAR at ``lidar_rate``; the sensors of one camera instant share
one stamp. Rendering happens in a worker thread so a slow frame never queues: the timer hands
the newest instant over and older pending ones are dropped (and counted).
"""
from __future__ import annotations

import copy
import sys
import time

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.params.sim_rig import SimRigParams
from depthmarks_ros.ros.node_base import DepthmarksNode, EXIT_DEADLINE_S, run_node


class SimRigNode(DepthmarksNode):
    PARAMS = SimRigParams
    p: SimRigParams

    def __init__(self, **kwargs):
        super().__init__('sim_rig', **kwargs)
        p = self.p
        self.sim = SimRig(SimConfig.take(p))
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
            info = copy.copy(info)           # one message object per publish (a local tap keeps it)
            info.header = msg.header
            img_pub.publish(msg)
            info_pub.publish(info)
        if self.p.publish_ground_truth:
            # the ground truth after the sensors' images; the disparity only while wanted (in the main
            # job only `depthmarks run`'s recorder takes it: the instants it keeps; the depth is scored
            # against every output frame); both arrays are this frame's own: no copy
            for pub, arr in ((self.pub_depth, frame.depth_gt), (self.pub_disp, frame.disparity_gt)):
                if pub is self.pub_disp and not self.wanted_at(pub, now.nanoseconds):
                    continue
                msg = numpy_to_image(arr, '32FC1', copy=False)
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
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
