"""face_landmarks: facial landmarks with per-landmark covariance and visibility, 3D landmarks and
head pose with covariance (MediaPipe Face Mesh or dlib 68). See docs/face_landmarks.md for the
face/landmarks PointCloud2 layout and how several faces are published.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseWithCovarianceStamped
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.cloud import array_to_cloud
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.convert.markers import axes_markers, delete_all, lines_marker, points_marker
from depthmarks_ros.core.face.backends import BackendError
from depthmarks_ros.core.face.ibug68 import OUTLINES
from depthmarks_ros.core.face.pipeline import FaceLandmarker, fitted_data_dir
from depthmarks_ros.core.transforms import matrix_to_quaternion
from depthmarks_ros.params.face_landmarks import FaceLandmarksParams
from depthmarks_ros.ros.node_base import DepthmarksNode, EXIT_DEADLINE_S, run_node
from depthmarks_ros.ros.camera_inputs import CameraInputs

LANDMARK_FIELDS = {'x': np.float32, 'y': np.float32, 'z': np.float32, 'u': np.float32, 'v': np.float32,
                   'sigma_u': np.float32, 'sigma_v': np.float32, 'cov_uv': np.float32,
                   'visibility': np.float32, 'landmark_index': np.uint16, 'face_id': np.uint32}


def landmarks_array(faces, layout: str) -> np.ndarray:
    """Structured array of every landmark of every face (see LANDMARK_FIELDS)."""
    from depthmarks_ros.convert.cloud import make_struct
    rows = []
    for f in faces:
        if layout == 'ibug68':
            sel = f.subset68()
            uv, cov, vis = f.landmarks68, f.cov68, f.visibility68
        else:
            sel = np.arange(len(f.landmarks))
            uv, cov, vis = f.landmarks, f.cov, f.visibility
        arr = make_struct(len(uv), LANDMARK_FIELDS)
        xyz = f.points3d[sel] if f.points3d is not None else np.full((len(uv), 3), np.nan)
        arr['x'], arr['y'], arr['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        arr['u'], arr['v'] = uv[:, 0], uv[:, 1]
        arr['sigma_u'], arr['sigma_v'] = np.sqrt(cov[:, 0, 0]), np.sqrt(cov[:, 1, 1])
        arr['cov_uv'] = cov[:, 0, 1]
        arr['visibility'] = vis
        arr['landmark_index'] = np.arange(len(uv))
        arr['face_id'] = f.face_id
        rows.append(arr)
    if not rows:
        return make_struct(0, LANDMARK_FIELDS)
    return np.concatenate(rows)


class FaceLandmarksNode(DepthmarksNode):
    PARAMS = FaceLandmarksParams
    p: FaceLandmarksParams

    def __init__(self, **kwargs):
        super().__init__('face_landmarks', **kwargs)
        try:
            self.landmarker = FaceLandmarker(self.p.backend, self.p.max_faces, self.p.refine_landmarks,
                                             self.p.uncertainty, dlib_detector=self.p.dlib_detector,
                                             learned_model=self.p.uncertainty_model,
                                             dlib_redetect_every=self.p.dlib_redetect_every,
                                             all_views=self.p.detector_all_views, mmod=self.p.detector_mmod,
                                             convention=self.p.landmark_convention,
                                             data_dir=fitted_data_dir(self.p.fitted_data, self.p.backend,
                                                                    self.p.dlib_detector, self.p.uncertainty,
                                                                    self.p.landmark_convention))
        except (BackendError, FileNotFoundError) as exc:
            raise ValueError(str(exc)) from exc
        qos = self.output_qos()
        self.pub_landmarks = self.create_publisher(PointCloud2, 'face/landmarks', qos)
        self.pub_pose = self.create_publisher(PoseWithCovarianceStamped, 'face/head_pose', qos)
        self.pub_poses = self.create_publisher(PoseArray, 'face/head_poses', qos)
        self.pub_markers = self.create_publisher(MarkerArray, 'face/markers', qos)
        self.pub_debug = self.create_image_publisher('face/debug_image', qos)
        self.inputs = CameraInputs(self, self.p.depth_topic, self.p.depth_slop, self._process,
                                   'landmarks published without 3D')
        self.worker = self.inputs.worker
        self.faces_seen = 0

    def _process(self, frame) -> None:
        start = time.monotonic()
        rgb = frame.rgb
        faces = self.landmarker.process(rgb, frame.camera.intrinsics(), frame.depth)
        self.faces_seen = len(faces)
        header = frame.header
        self.pub_landmarks.publish(array_to_cloud(landmarks_array(faces, self.p.layout), header))
        self._publish_poses(header, faces)
        self.pub_markers.publish(self._markers(header, faces))
        if self.wanted(self.pub_debug):
            self.pub_debug.publish(numpy_to_image(self._debug(rgb, faces), 'rgb8', header))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def _publish_poses(self, header, faces) -> None:
        arr = PoseArray(header=header)
        best = None
        for f in sorted(faces, key=lambda f: f.face_id):
            hp = f.head_pose
            if hp is None:
                continue
            q = matrix_to_quaternion(hp.rotation)
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = (float(v) for v in hp.tvec)
            pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in q)
            arr.poses.append(pose)
            area = (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])
            if best is None or area > best[0]:
                best = (area, pose, hp)
        self.pub_poses.publish(arr)
        if best is not None:
            msg = PoseWithCovarianceStamped(header=header)
            msg.pose.pose = best[1]
            order = [3, 4, 5, 0, 1, 2]  # (rvec, tvec) -> ROS (x, y, z, rot x, rot y, rot z)
            cov = np.nan_to_num(best[2].covariance[np.ix_(order, order)], nan=1e6)
            msg.pose.covariance = [float(v) for v in cov.ravel()]
            self.pub_pose.publish(msg)

    def _markers(self, header, faces) -> MarkerArray:
        out = MarkerArray(markers=[delete_all(header)])
        model = self.landmarker.face_model        # the fitted folder's 3D mean face (fitted_data)
        for f in faces:
            if f.points3d is not None and np.isfinite(f.points3d).any():
                pts68 = f.points3d[f.subset68()]
            elif f.head_pose is not None:
                pts68 = model @ f.head_pose.rotation.T + f.head_pose.tvec
            else:
                continue
            out.markers.append(points_marker(header, 'face_landmarks', f.face_id, pts68, (0.1, 0.9, 0.2, 1.0), 0.006))
            out.markers.append(lines_marker(header, 'face_outline', f.face_id, pts68, OUTLINES, (1.0, 1.0, 1.0, 0.8)))
            if f.head_pose is not None:
                out.markers += axes_markers(header, 'head_axes', f.face_id, f.head_pose.rotation, f.head_pose.tvec)
        return out

    @staticmethod
    def _debug(rgb, faces) -> np.ndarray:
        import cv2
        img = rgb.copy()
        for f in faces:
            for (u, v), c in zip(f.landmarks68, f.cov68):
                evals, evecs = np.linalg.eigh(c)
                axes = tuple(int(max(1, round(2 * np.sqrt(max(e, 0))))) for e in evals[::-1])
                angle = float(np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1])))
                cv2.ellipse(img, (int(round(u)), int(round(v))), axes, angle, 0, 360, (255, 200, 0), 1)
                cv2.circle(img, (int(round(u)), int(round(v))), 1, (0, 255, 0), -1)
            x0, y0 = int(f.bbox[0]), int(f.bbox[1])
            label = f'id {f.face_id}'
            if f.head_pose is not None:
                label += f' yaw {f.head_pose.yaw:.0f} pitch {f.head_pose.pitch:.0f} roll {f.head_pose.roll:.0f}'
            cv2.putText(img, label, (x0, max(y0 - 5, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        return img

    def diagnostic_values(self):
        values = {'backend': self.p.backend, 'faces': self.faces_seen, 'uncertainty': self.p.uncertainty}
        scans = getattr(self.landmarker.backend, 'full_scans', None)
        if scans is not None:
            values['full_image_scans'] = scans
        return values

    def shutdown(self, **join) -> None:   # join: timeout or deadline (DepthmarksNode.shutdown)
        super().shutdown(**join)
        self.landmarker.close()


NODE_CLASS = FaceLandmarksNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
