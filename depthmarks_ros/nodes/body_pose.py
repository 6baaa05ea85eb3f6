"""body_pose: body keypoints (MediaPipe BlazePose 33, published as COCO-17 and natively) in 2D and
3D with a 3x3 covariance each, lifted with a depth image or placed from the model's own world
landmarks. See docs/body_pose.md for the PointCloud2 layouts.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.cloud import array_to_cloud, make_struct
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.convert.markers import delete_all, lines_marker, points_marker
from depthmarks_ros.core.body.backends import BackendError
from depthmarks_ros.core.body.coco17 import BLAZEPOSE_BONES, BLAZEPOSE_TO_COCO17, COCO17_BONES
from depthmarks_ros.core.body.pipeline import BodyPoseEstimator
from depthmarks_ros.ros.camera_inputs import CameraInputs
from depthmarks_ros.ros.node_base import DepthmarksNode, run_node

KEYPOINT_FIELDS = {'x': np.float32, 'y': np.float32, 'z': np.float32, 'u': np.float32, 'v': np.float32,
                   'visibility': np.float32, 'sigma': np.float32,
                   'cov_xx': np.float32, 'cov_xy': np.float32, 'cov_xz': np.float32,
                   'cov_yy': np.float32, 'cov_yz': np.float32, 'cov_zz': np.float32,
                   'keypoint_index': np.uint16, 'person_id': np.uint32, 'source': np.uint8}
COV_FIELDS = (('cov_xx', 0, 0), ('cov_xy', 0, 1), ('cov_xz', 0, 2), ('cov_yy', 1, 1), ('cov_yz', 1, 2),
              ('cov_zz', 2, 2))


def keypoints_array(people, layout: str) -> np.ndarray:
    """Structured array of every keypoint of every person (fields: KEYPOINT_FIELDS)."""
    rows = []
    for p in people:
        sel = BLAZEPOSE_TO_COCO17 if layout == 'coco17' else np.arange(len(p.keypoints))
        arr = make_struct(len(sel), KEYPOINT_FIELDS)
        xyz, cov = p.xyz[sel], p.cov[sel]
        arr['x'], arr['y'], arr['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        arr['u'], arr['v'] = p.keypoints[sel, 0], p.keypoints[sel, 1]
        arr['visibility'], arr['sigma'] = p.visibility[sel], p.sigma_px[sel]
        for name, i, j in COV_FIELDS:
            arr[name] = cov[:, i, j]
        arr['keypoint_index'] = np.arange(len(sel))
        arr['person_id'] = p.person_id
        arr['source'] = p.source[sel]
        rows.append(arr)
    return np.concatenate(rows) if rows else make_struct(0, KEYPOINT_FIELDS)


class BodyPoseNode(DepthmarksNode):
    def __init__(self, **kwargs):
        super().__init__('body_pose', **kwargs)
        d = self.declare
        d('backend', 'mediapipe', 'Keypoint backend (core/body/backends.py)', choices=('mediapipe',), read_only=True)
        d('model_complexity', 1, 'BlazePose model (only 1 ships with the wheel; 0 and 2 need downloads)',
          min_value=0, max_value=2, read_only=True)
        d('min_detection_confidence', 0.5, 'Person detector threshold', min_value=0.0, max_value=1.0,
          read_only=True)
        d('layout', 'coco17', 'Keypoints on body/keypoints (body/keypoints_native always has 33)',
          choices=('coco17', 'blazepose33'))
        d('depth_topic', '', 'Depth image (32FC1 m or 16UC1 mm) for 3D keypoints; empty = model only',
          read_only=True)
        d('depth_slop', 0.05, 'Largest image/depth stamp difference (s)', min_value=0.0, max_value=1.0,
          read_only=True)
        d('max_depth_offset', 0.6, 'Depth farther than this from the torso depth is background (m)',
          min_value=0.05, max_value=5.0)
        d('min_visibility', 0.3, 'Keypoints below this visibility are left out of body/markers',
          min_value=0.0, max_value=1.0)
        try:
            self.estimator = BodyPoseEstimator(self.p.backend, model_complexity=self.p.model_complexity,
                                               min_confidence=self.p.min_detection_confidence)
        except BackendError as exc:
            raise ValueError(str(exc)) from exc
        qos = self.output_qos()
        self.pub_kp = self.create_publisher(PointCloud2, 'body/keypoints', qos)
        self.pub_native = self.create_publisher(PointCloud2, 'body/keypoints_native', qos)
        self.pub_markers = self.create_publisher(MarkerArray, 'body/markers', qos)
        self.pub_debug = self.create_publisher(Image, 'body/debug_image', qos)
        self.inputs = CameraInputs(self, self.p.depth_topic, self.p.depth_slop, self._process,
                                   'keypoints placed from the model only')
        self.worker = self.inputs.worker
        self.people_seen = 0
        self.depth_share = 0.0

    def _process(self, frame) -> None:
        start = time.monotonic()
        rgb, cam, depth = frame.rgb, frame.camera, frame.depth
        self.estimator.max_depth_offset = self.p.max_depth_offset
        people = self.estimator.process(rgb, cam.intrinsics(), depth)
        self.people_seen = len(people)
        if people:
            self.depth_share = float(np.mean([np.mean(p.source == 1) for p in people]))
        header = frame.header
        self.pub_kp.publish(array_to_cloud(keypoints_array(people, self.p.layout), header))
        if self.wanted(self.pub_native):
            self.pub_native.publish(array_to_cloud(keypoints_array(people, 'blazepose33'), header))
        self.pub_markers.publish(self._markers(header, people))
        if self.wanted(self.pub_debug):
            self.pub_debug.publish(numpy_to_image(self._debug(rgb, people), 'rgb8', header))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def _markers(self, header, people) -> MarkerArray:
        out = MarkerArray(markers=[delete_all(header)])
        for p in people:
            pts = p.xyz.copy()
            pts[p.visibility < self.p.min_visibility] = np.nan
            out.markers.append(points_marker(header, 'body_joints', p.person_id, pts, (1.0, 0.6, 0.1, 1.0), 0.04))
            out.markers.append(lines_marker(header, 'body_bones', p.person_id, pts, BLAZEPOSE_BONES,
                                            (0.2, 0.8, 1.0, 1.0), 0.015))
        return out

    def _debug(self, rgb, people) -> np.ndarray:
        import cv2
        img = rgb.copy()
        for p in people:
            kp, vis, _ = p.coco17()
            for a, b in COCO17_BONES:
                if min(vis[a], vis[b]) >= self.p.min_visibility:
                    cv2.line(img, tuple(int(round(c)) for c in kp[a]), tuple(int(round(c)) for c in kp[b]),
                             (0, 200, 255), 2)
            for (u, v), s, src in zip(kp, p.sigma_px[BLAZEPOSE_TO_COCO17], p.source[BLAZEPOSE_TO_COCO17]):
                colour = (0, 255, 0) if src == 1 else (255, 160, 0)   # green: depth, orange: model
                cv2.circle(img, (int(round(u)), int(round(v))), max(2, int(round(2 * s))), colour, 1)
        return img

    def diagnostic_values(self):
        return {'backend': self.p.backend, 'people': self.people_seen,
                'share_depth_lifted': round(self.depth_share, 2)}

    def shutdown(self) -> None:
        super().shutdown()
        self.estimator.close()


NODE_CLASS = BodyPoseNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args)


if __name__ == '__main__':
    sys.exit(main())
