"""body_pose: several people per image, each with body keypoints (MediaPipe BlazePose 33, published
as COCO-17 and natively), hands (2 x 21) and optionally face (68) keypoints in 2D and 3D with a
3x3 covariance each, lifted with a depth image or placed from the models' own metric landmarks;
stable person ids. See docs/body_pose.md for the PointCloud2 layouts.
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
from depthmarks_ros.core.body.coco17 import BLAZEPOSE_BONES, BLAZEPOSE_TO_COCO17, COCO17_BONES, HAND_BONES
from depthmarks_ros.core.body.pipeline import NO_PERSON, BodyPoseEstimator
from depthmarks_ros.core.body.wholebody import wholebody_arrays
from depthmarks_ros.params.body_pose import BodyPoseParams, estimator_settings
from depthmarks_ros.ros.camera_inputs import CameraInputs
from depthmarks_ros.ros.node_base import DepthmarksNode, EXIT_DEADLINE_S, run_node

KEYPOINT_FIELDS = {'x': np.float32, 'y': np.float32, 'z': np.float32, 'u': np.float32, 'v': np.float32,
                   'visibility': np.float32, 'sigma': np.float32,
                   'cov_xx': np.float32, 'cov_xy': np.float32, 'cov_xz': np.float32,
                   'cov_yy': np.float32, 'cov_yz': np.float32, 'cov_zz': np.float32,
                   'keypoint_index': np.uint16, 'person_id': np.uint32, 'source': np.uint8}
HAND_FIELDS = {'x': np.float32, 'y': np.float32, 'z': np.float32, 'u': np.float32, 'v': np.float32,
               'sigma': np.float32, 'cov_xx': np.float32, 'cov_xy': np.float32, 'cov_xz': np.float32,
               'cov_yy': np.float32, 'cov_yz': np.float32, 'cov_zz': np.float32,
               'keypoint_index': np.uint16, 'person_id': np.int32, 'hand_id': np.uint32, 'side': np.uint8,
               'source': np.uint8}
SIDE_CODES = {'left': 0, 'right': 1, 'unknown': 2}
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


def _fill(arr, xyz, cov, uv, sigma):
    arr['x'], arr['y'], arr['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    arr['u'], arr['v'], arr['sigma'] = uv[:, 0], uv[:, 1], sigma
    for name, i, j in COV_FIELDS:
        arr[name] = cov[:, i, j]


def hands_array(people, loose_hands) -> np.ndarray:
    """Structured array of every hand keypoint (fields: HAND_FIELDS); person_id -1: a hand on its own."""
    rows = []
    for h in [h for p in people for h in p.hands.values()] + list(loose_hands):
        arr = make_struct(21, HAND_FIELDS)
        _fill(arr, h.xyz, h.cov, h.keypoints, h.sigma_px)
        arr['keypoint_index'] = np.arange(21)
        arr['person_id'] = h.person_id if h.person_id != NO_PERSON else -1
        arr['hand_id'] = h.hand_id
        arr['side'] = SIDE_CODES.get(h.side, 2)
        arr['source'] = h.source
        rows.append(arr)
    return np.concatenate(rows) if rows else make_struct(0, HAND_FIELDS)


def wholebody_array(people) -> np.ndarray:
    """133 keypoints per person in the COCO-WholeBody layout (fields: KEYPOINT_FIELDS; visibility =
    the part's score, 0 where the part was not found)."""
    rows = []
    for p in people:
        a = wholebody_arrays(p)
        arr = make_struct(len(a['uv']), KEYPOINT_FIELDS)
        _fill(arr, a['xyz'], a['cov'], a['uv'], a['sigma_px'])
        arr['visibility'] = a['score']
        arr['keypoint_index'] = np.arange(len(a['uv']))
        arr['person_id'] = p.person_id
        arr['source'] = a['source']
        rows.append(arr)
    return np.concatenate(rows) if rows else make_struct(0, KEYPOINT_FIELDS)


def id_colour(pid: int):
    """A distinct, stable colour per id (golden-ratio hue steps), RGBA in [0, 1]."""
    import colorsys
    r, g, b = colorsys.hsv_to_rgb((0.11 + 0.618034 * max(pid, 0)) % 1.0, 0.85, 1.0)
    return (r, g, b, 1.0)


class BodyPoseNode(DepthmarksNode):
    PARAMS = BodyPoseParams
    p: BodyPoseParams

    def __init__(self, **kwargs):
        super().__init__('body_pose', **kwargs)
        try:
            self.estimator = BodyPoseEstimator(**estimator_settings(self.p))
        except BackendError as exc:
            raise ValueError(str(exc)) from exc
        qos = self.output_qos()
        self.pub_kp = self.create_publisher(PointCloud2, 'body/keypoints', qos)
        self.pub_native = self.create_publisher(PointCloud2, 'body/keypoints_native', qos)
        self.pub_hands = self.create_publisher(PointCloud2, 'hands/keypoints', qos)
        self.pub_whole = self.create_publisher(PointCloud2, 'body/wholebody', qos)
        self.pub_markers = self.create_publisher(MarkerArray, 'body/markers', qos)
        self.pub_debug = self.create_image_publisher('body/debug_image', qos)
        self.inputs = CameraInputs(self, self.p.depth_topic, self.p.depth_slop, self._process,
                                   'keypoints placed from the model only')
        self.worker = self.inputs.worker
        self.people_seen = 0
        self.hands_seen = 0
        self.depth_share = 0.0

    def _process(self, frame) -> None:
        start = time.monotonic()
        rgb, cam, depth = frame.rgb, frame.camera, frame.depth
        self.estimator.max_depth_offset = self.p.max_depth_offset
        try:
            people = self.estimator.process(rgb, cam.intrinsics(), depth)
        except ValueError as exc:
            self.reject('input', str(exc))
            return
        loose = self.estimator.loose_hands
        self.people_seen = len(people)
        self.hands_seen = sum(len(p.hands) for p in people) + len(loose)
        if people:
            self.depth_share = float(np.mean([np.mean(p.source == 1) for p in people]))
        header = frame.header
        self.pub_kp.publish(array_to_cloud(keypoints_array(people, self.p.layout), header))
        if self.wanted(self.pub_native):
            self.pub_native.publish(array_to_cloud(keypoints_array(people, 'blazepose33'), header))
        self.pub_hands.publish(array_to_cloud(hands_array(people, loose), header))
        if self.wanted(self.pub_whole):
            self.pub_whole.publish(array_to_cloud(wholebody_array(people), header))
        self.pub_markers.publish(self._markers(header, people, loose))
        if self.wanted(self.pub_debug):
            self.pub_debug.publish(numpy_to_image(self._debug(rgb, people), 'rgb8', header))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def _markers(self, header, people, loose) -> MarkerArray:
        out = MarkerArray(markers=[delete_all(header)])
        for p in people:
            pts = p.xyz.copy()
            pts[p.visibility < self.p.min_visibility] = np.nan
            colour = id_colour(p.person_id)
            out.markers.append(points_marker(header, 'body_joints', p.person_id, pts, colour, 0.04))
            out.markers.append(lines_marker(header, 'body_bones', p.person_id, pts, BLAZEPOSE_BONES, colour, 0.015))
        for h in [h for p in people for h in p.hands.values()] + list(loose):
            colour = id_colour(h.person_id) if h.person_id != NO_PERSON else (0.9, 0.9, 0.9, 1.0)
            out.markers.append(points_marker(header, 'hand_joints', h.hand_id, h.xyz, colour, 0.012))
            out.markers.append(lines_marker(header, 'hand_bones', h.hand_id, h.xyz, HAND_BONES, colour, 0.005))
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
            x0, y0 = (int(c) for c in np.nan_to_num(p.box()[:2]))
            cv2.putText(img, f'id {p.person_id}', (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        tuple(int(255 * c) for c in id_colour(p.person_id)[:3]), 1)
        for h in [h for p in people for h in p.hands.values()] + list(self.estimator.loose_hands):
            for a, b in HAND_BONES:
                cv2.line(img, tuple(int(round(c)) for c in h.keypoints[a]), tuple(int(round(c)) for c in h.keypoints[b]),
                         (255, 80, 200) if h.side == 'left' else (80, 255, 200), 1)
        return img

    def diagnostic_values(self):
        return {'backend': self.p.backend, 'people': self.people_seen, 'hands': self.hands_seen,
                'share_depth_lifted': round(self.depth_share, 2)}

    def shutdown(self, **join) -> None:   # join: timeout or deadline (DepthmarksNode.shutdown)
        super().shutdown(**join)
        self.estimator.close()


NODE_CLASS = BodyPoseNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
