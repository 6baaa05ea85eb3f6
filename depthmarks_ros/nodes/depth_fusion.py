"""depth_fusion: LiDAR + camera (+ stereo, + mono) into dense REP-118 depth with per-pixel sigma.

Each camera image (with its camera_info) is synchronised with a LiDAR sweep (and, when enabled,
stereo depth + confidence and mono depth) whose stamps lie within ``time_tolerance`` of each
other (approximate-time policy, bounded queues).
Publishes fusion/sparse_depth, fusion/depth, fusion/depth_sigma, fusion/camera_info and, only
while subscribed, fusion/points. See docs/depth_fusion.md.
"""
from __future__ import annotations

import sys
import time
from typing import Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import camera_from_info, info_from_camera
from depthmarks_ros.convert.cloud import POINTS_LAYOUTS, points_cloud, xyz_from_cloud
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_to_numpy, image_to_rgb8, numpy_to_image
from depthmarks_ros.core.calibration import load_rig, resolve_url, default_rig_path
from depthmarks_ros.core.camera import CalibrationError
from depthmarks_ros.core.fusion.completion import METHODS as COMPLETION_METHODS
from depthmarks_ros.core.fusion.learned import load_model
from depthmarks_ros.core.fusion.pipeline import fuse_frame
from depthmarks_ros.core.fusion.uncertainty import SigmaModel
from depthmarks_ros.core.transforms import make_transform, quaternion_to_matrix
from depthmarks_ros.ros.node_base import DepthmarksNode, run_node
from depthmarks_ros.ros.synced_inputs import SyncedInputs


class DepthFusionNode(DepthmarksNode):
    def __init__(self, **kwargs):
        super().__init__('depth_fusion', **kwargs)
        d = self.declare
        d('rig_file', '', 'Rig calibration YAML (file://, package:// or path); empty = the simulated rig',
          read_only=True)
        d('camera_sensor', 'rgb', 'Camera sensor name in the rig file', read_only=True)
        d('lidar_sensor', 'lidar', 'LiDAR sensor name in the rig file', read_only=True)
        d('lidar_to_camera', [0.0], 'Override T_camera_lidar: [x, y, z, qx, qy, qz, qw] (one 0 = use the rig)',
          read_only=True)
        d('lidar_frame', '', 'Expected frame_id of the cloud with lidar_to_camera ("" = the rig frame)',
          read_only=True)
        d('completion', 'classical', 'Depth completion: classical (IP-Basic), guided (RGB guided filter), scanline (edge-aware)',
          choices=COMPLETION_METHODS)
        d('max_depth', 100.0, 'Largest depth considered (m)', min_value=1.0, max_value=1000.0)
        d('time_tolerance', 0.06, 'Largest |sweep stamp - image stamp| accepted (s)', min_value=0.0,
          max_value=10.0)
        d('use_stereo', False, 'Fuse stereo/depth (+ stereo/confidence)', read_only=True)
        d('use_mono', False, 'Fuse mono/depth', read_only=True)
        d('stereo_baseline', 0.0, 'Baseline of the stereo source for its sigma (m); 0 = from the rig file',
          min_value=0.0, max_value=10.0, read_only=True)
        d('sigma_model_file', '', 'Fitted sigma model JSON (depthmarks fit-fusion); empty = defaults',
          read_only=True)
        d('queue_size', 5, 'Synchronisation queue per input', min_value=1, max_value=100, read_only=True)
        d('sync_warning_after', 3.0, 'Warn when inputs arrive but no set synchronises for this long (s)',
          min_value=0.5, max_value=600.0)
        d('points_layout', 'organized', 'fusion/points: organized (height x width, NaN where invalid, as '
          'depth_image_proc) or dense (valid points only, height 1)', choices=POINTS_LAYOUTS)
        self.model = SigmaModel()
        if self.p.sigma_model_file:
            self.model = load_model(resolve_url(self.p.sigma_model_file))
        self.T_cam_lidar, self.lidar_frame, self.baseline = self._extrinsics()
        qos = self.output_qos()
        self.pub_sparse = self.create_publisher(Image, 'fusion/sparse_depth', qos)
        self.pub_depth = self.create_publisher(Image, 'fusion/depth', qos)
        self.pub_sigma = self.create_publisher(Image, 'fusion/depth_sigma', qos)
        self.pub_info = self.create_publisher(CameraInfo, 'fusion/camera_info', qos)
        self.pub_points = self.create_publisher(PointCloud2, 'fusion/points', qos)
        topics = [(Image, 'camera/image_raw'), (CameraInfo, 'camera/camera_info'), (PointCloud2, 'lidar/points')]
        if self.p.use_stereo:
            topics += [(Image, 'stereo/depth'), (Image, 'stereo/confidence')]
        if self.p.use_mono:
            topics += [(Image, 'mono/depth')]
        self.worker = self.make_worker(self._process)
        self.inputs = SyncedInputs(self, topics, self._on_inputs, 'approximate', self.p.queue_size,
                                   self.p.time_tolerance)
        self.create_timer(1.0, self._watch_sync)
        self.sources_used = ()

    def _extrinsics(self):
        """(T_camera_lidar, expected cloud frame, stereo baseline) from the rig file or parameters."""
        rig = load_rig(resolve_url(self.p.rig_file) if self.p.rig_file else default_rig_path('sim_rig'))
        baseline = self.p.stereo_baseline
        if baseline <= 0 and 'left' in rig.sensors and 'right' in rig.sensors:
            baseline = rig.stereo().baseline
        override = list(self.p.lidar_to_camera)
        if len(override) == 7:
            T = make_transform(quaternion_to_matrix(override[3:]), override[:3])
            return T, self.p.lidar_frame, baseline
        if override not in ([0.0], []):
            raise CalibrationError('lidar_to_camera needs 7 values [x, y, z, qx, qy, qz, qw]')
        return (rig.transform(self.p.lidar_sensor, self.p.camera_sensor),
                self.p.lidar_frame or rig.frame_of(self.p.lidar_sensor), baseline)

    def _on_inputs(self, *msgs):
        self.stats.frame_in()
        self.worker.submit(msgs)

    def _watch_sync(self):
        problem = self.inputs.stalled(self.p.sync_warning_after)
        if problem:
            self.reject('sync', f'camera/LiDAR{"/stereo" if self.p.use_stereo else ""} {problem} '
                                f'(time_tolerance {self.p.time_tolerance} s: stale or missing input?)')

    def _optional_depth(self, msg, size, name: str) -> Optional[np.ndarray]:
        if (msg.width, msg.height) != size:
            self.reject(f'{name}_size', f'{name} is {msg.width}x{msg.height} but the camera is '
                                        f'{size[0]}x{size[1]}: ignored')
            return None
        try:
            return depth_image_to_metres(msg) if name != 'stereo/confidence' else image_to_numpy(msg).astype(np.float32)
        except ConversionError as exc:
            self.reject(name, f'{name}: {exc}: ignored')
            return None

    def _process(self, msgs) -> None:
        img, info, sweep = msgs[:3]
        rest = list(msgs[3:])
        start = time.monotonic()
        if sweep.header.frame_id != self.lidar_frame:
            self.reject('frame', f'cloud frame {sweep.header.frame_id!r} is not the calibrated LiDAR frame '
                                 f'{self.lidar_frame!r}')
            return
        try:
            pts = xyz_from_cloud(sweep, skip_nans=True)
            cam = camera_from_info(info)
            if cam.size != (img.width, img.height):
                raise ConversionError(f'camera_info is {cam.width}x{cam.height}, image {img.width}x{img.height}')
            rgb = image_to_rgb8(img) if (self.p.completion == 'guided' or self.wanted(self.pub_points)) else None
        except (ConversionError, CalibrationError) as exc:
            self.reject('input', str(exc))
            return
        if pts.shape[0] == 0:
            self.reject('empty', 'LiDAR sweep holds no valid (finite) point')
            return
        size = (img.width, img.height)
        stereo = mono = conf = None
        if self.p.use_stereo:
            stereo_msg, conf_msg = rest.pop(0), rest.pop(0)
            stereo = self._optional_depth(stereo_msg, size, 'stereo/depth')
            conf = self._optional_depth(conf_msg, size, 'stereo/confidence') if stereo is not None else None
        if self.p.use_mono:
            mono = self._optional_depth(rest.pop(0), size, 'mono/depth')
        res = fuse_frame(pts, self.T_cam_lidar, cam, rgb, self.p.completion, self.model, self.p.max_depth,
                         stereo, conf, cam.fx, self.baseline, mono)
        self.sources_used = res.sources
        header = img.header
        for pub, arr in ((self.pub_sparse, res.sparse), (self.pub_depth, res.depth), (self.pub_sigma, res.sigma)):
            pub.publish(numpy_to_image(arr, '32FC1', header))
        self.pub_info.publish(info_from_camera(cam, header))
        if self.wanted(self.pub_points) and rgb is not None:
            self.pub_points.publish(points_cloud(cam.depth_to_points(res.depth), rgb, header, self.p.points_layout))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def diagnostic_values(self):
        return {'sources': '+'.join(self.sources_used) or 'none', 'completion': self.p.completion,
                'lidar_frame': self.lidar_frame}


NODE_CLASS = DepthFusionNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args)


if __name__ == '__main__':
    sys.exit(main())
