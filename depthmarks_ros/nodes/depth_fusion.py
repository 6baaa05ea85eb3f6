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
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import camera_from_info, info_from_camera
from depthmarks_ros.convert.cloud import points_cloud, xyz_from_cloud
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_array, image_to_rgb8, numpy_to_image
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.calibration import load_rig, resolve_url, default_rig_path, transform_from_pose
from depthmarks_ros.core.camera import CalibrationError
from depthmarks_ros.core.fusion.learned import MODEL_PRESETS, resolve_sigma_model
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_frame
from depthmarks_ros.params.depth_fusion import DepthFusionParams
from depthmarks_ros.ros.node_base import DepthmarksNode, EXIT_DEADLINE_S, run_node
from depthmarks_ros.pipeline import node_inputs
from depthmarks_ros.ros.synced_inputs import inputs_of


@dataclass(frozen=True)
class FusionMessages:
    """One synchronised fusion set (images: Image or CompressedImage); stereo/confidence/mono
    only with use_stereo / use_mono."""
    image: Any
    info: CameraInfo
    cloud: PointCloud2
    stereo: Any = None
    confidence: Any = None
    mono: Any = None


class DepthFusionNode(DepthmarksNode):
    PARAMS = DepthFusionParams
    p: DepthFusionParams

    def __init__(self, **kwargs):
        super().__init__('depth_fusion', **kwargs)
        # start-up calibration (rig file, lidar_to_camera, sigma model): unusable = one-line error, exit 1
        spec = self.p.sigma_model_file
        self.model = resolve_sigma_model(spec if spec in MODEL_PRESETS else resolve_url(spec))
        self.lidar2cam, self.lidar_frame, self.baseline = self._extrinsics()
        if self.p.use_stereo and not self.baseline > 0:
            raise CalibrationError('use_stereo needs the stereo baseline: set stereo_baseline or a rig file with '
                                   'left and right cameras')
        qos = self.output_qos()
        self.pub_sparse = self.create_image_publisher('fusion/sparse_depth', qos, 'depth')
        self.pub_depth = self.create_image_publisher('fusion/depth', qos, 'depth')
        self.pub_sigma = self.create_publisher(Image, 'fusion/depth_sigma', qos)
        self.pub_info = self.create_publisher(CameraInfo, 'fusion/camera_info', qos)
        self.pub_points = self.create_publisher(PointCloud2, 'fusion/points', qos)
        inputs, _ = inputs_of(node_inputs.depth_fusion(self.p))
        self.inputs = self.synced_inputs(inputs, FusionMessages, self._process, policy='approximate',
                                         queue_size=self.p.queue_size, slop=self.p.time_tolerance)
        self.worker = self.inputs.worker
        self.sources_used = ()

    def on_parameters_changed(self, names):
        if 'time_tolerance' in names:
            self.inputs.set_slop(self.p.time_tolerance)

    def _extrinsics(self):
        """(lidar2cam, expected cloud frame, stereo baseline) from the rig file or parameters."""
        rig = load_rig(resolve_url(self.p.rig_file) if self.p.rig_file else default_rig_path('sim_rig'))
        baseline = self.p.stereo_baseline
        if baseline <= 0 and 'left' in rig.sensors and 'right' in rig.sensors:
            baseline = rig.stereo().baseline
        override = list(self.p.lidar_to_camera)
        if override not in ([0.0], []):
            lidar2cam = transform_from_pose(override, 'lidar_to_camera')
            return lidar2cam, self.p.lidar_frame or rig.frame_of(self.p.lidar_sensor), baseline
        return (rig.transform(self.p.lidar_sensor, self.p.camera_sensor),
                self.p.lidar_frame or rig.frame_of(self.p.lidar_sensor), baseline)

    def _optional_depth(self, msg, size, name: str) -> Optional[np.ndarray]:
        try:
            arr = depth_image_to_metres(msg) if name != 'stereo/confidence' else \
                image_array(msg)[0].astype(np.float32)
        except ConversionError as exc:
            self.reject(name, f'{name}: {exc}: ignored')
            return None
        if arr.shape != (size[1], size[0]):
            self.reject(f'{name}_size', f'{name} is {arr.shape[1]}x{arr.shape[0]} but the camera is '
                                        f'{size[0]}x{size[1]}: ignored')
            return None
        return arr

    def _process(self, msgs: 'FusionMessages') -> None:
        img, info, sweep = msgs.image, msgs.info, msgs.cloud
        start = time.monotonic()
        if sweep.header.frame_id != self.lidar_frame:
            self.reject('frame', f'cloud frame {sweep.header.frame_id!r} is not the calibrated LiDAR frame '
                                 f'{self.lidar_frame!r}')
            return
        try:
            pts = xyz_from_cloud(sweep, skip_nans=True)
            cam = camera_from_info(info)
            want_points = self.wanted_every(self.pub_points, stamp_ns(img.header), self.p.points_period)
            need_rgb = self.p.completion == 'guided' or want_points or not hasattr(img, 'width')
            rgb = image_to_rgb8(img) if need_rgb else None
            size = (rgb.shape[1], rgb.shape[0]) if rgb is not None else (img.width, img.height)
            if cam.size != size:
                raise ConversionError(f'camera_info is {cam.width}x{cam.height}, image {size[0]}x{size[1]}')
        except (ConversionError, CalibrationError) as exc:
            self.reject('input', str(exc))
            return
        if pts.shape[0] == 0:
            self.reject('empty', 'LiDAR sweep holds no valid (finite) point')
            return
        stereo = mono = None
        if msgs.stereo is not None:
            sd = self._optional_depth(msgs.stereo, size, 'stereo/depth')
            conf = self._optional_depth(msgs.confidence, size, 'stereo/confidence') if sd is not None else None
            stereo = StereoInput(sd, cam.fx, self.baseline, conf) if sd is not None else None
        if msgs.mono is not None:
            mono = self._optional_depth(msgs.mono, size, 'mono/depth')
        settings = FusionSettings.from_params(self.p, self.model)
        res = fuse_frame(pts, self.lidar2cam, cam, rgb, settings, stereo=stereo, mono_depth=mono)
        self.sources_used = res.sources
        header = img.header
        stamp = stamp_ns(header)
        # fused depth first: face_landmarks and body_pose wait for it, and a publish to other processes
        # takes 0.5 ms or more per image (docs/pipeline.md, "Multi-process"); then its sigma; the
        # sparse depth and camera_info (only `depthmarks run`'s recorder takes them in the main job)
        # only while wanted: with only the recorder, for the instants it keeps (ros/local_tap.py,
        # ros/recorded_topics.py). The arrays are this frame's own and never change after: no copy.
        self.pub_depth.publish(numpy_to_image(res.depth, '32FC1', header, copy=False))
        self.pub_sigma.publish(numpy_to_image(res.sigma, '32FC1', header, copy=False))
        if self.wanted_at(self.pub_sparse, stamp):
            self.pub_sparse.publish(numpy_to_image(res.sparse, '32FC1', header, copy=False))
        if self.wanted_at(self.pub_info, stamp):
            self.pub_info.publish(info_from_camera(cam, header))
        if want_points and rgb is not None:
            self.pub_points.publish(points_cloud(cam.depth_to_points(res.depth), rgb, header, self.p.points_layout))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def diagnostic_values(self):
        return {'sources': '+'.join(self.sources_used) or 'none', 'completion': self.p.completion,
                'lidar_frame': self.lidar_frame}


NODE_CLASS = DepthFusionNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
