"""face_landmarks node over real DDS: landmarks, head pose and markers from a real face, a head seen from
behind published hidden and without a pose, bad input dropped with the reason, clean exit of the node
process."""
import numpy as np
import pytest
from geometry_msgs.msg import PoseArray, PoseWithCovarianceStamped
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import cloud_to_array
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.testing.ros_harness import NodeProcess
from depthmarks_ros.testing.scenes import FACE_K as K, camera_input_publishers, publish_stamped


def _start_node(probe):
    """An in-process face_landmarks node on the depth topic 'depth', the publishers of its inputs once it
    has subscribed, and what arrives on face/landmarks, face/head_pose, face/head_poses, face/markers."""
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.face_landmarks import FaceLandmarksNode
    node = FaceLandmarksNode(parameter_overrides=[Parameter('depth_topic', value='depth')])
    probe.add_node(node)
    pubs = camera_input_publishers(probe, 'depth')
    subs = [probe.subscribe(t, name, node.output_qos()) for t, name in (
        (PointCloud2, 'face/landmarks'), (PoseWithCovarianceStamped, 'face/head_pose'),
        (PoseArray, 'face/head_poses'), (MarkerArray, 'face/markers'))]
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    return node, pubs, subs


@pytest.mark.dds
def test_node_publishes_landmarks_pose_markers_and_survives_bad_input(probe, face_image):
    node, pubs, (lms, poses, _, markers) = _start_node(probe)
    cam = PinholeCamera(640, 480, K)

    def send(img, depth):
        publish_stamped(probe, node, pubs, (numpy_to_image(img, 'rgb8'), info_from_camera(cam), depth))

    send(face_image, numpy_to_image(np.full((240, 320), 1.5, np.float32), '32FC1'))   # depth of another size
    assert node.stats.errors >= 1 and 'depth image is 320x240' in node.stats.last_error
    send(np.full((480, 640, 3), 90, np.uint8), numpy_to_image(np.full((480, 640), 1.5, np.float32), '32FC1'))
    n_before = len(lms)
    send(face_image, numpy_to_image(np.full((480, 640), 1.5, np.float32), '32FC1'))
    assert probe.spin_until(lambda: len(lms) > n_before and poses and markers, 10)
    arr = cloud_to_array(lms[-1])
    assert len(arr) == 68 and set(arr['face_id']) == {arr['face_id'][0]}
    assert np.nanmedian(arr['z']) == pytest.approx(1.5, abs=0.02) and np.all(arr['sigma_u'] > 0)
    assert len(poses[-1].pose.covariance) == 36 and poses[-1].pose.pose.position.z > 0
    empty = [m for m in lms if m.width == 0]
    assert empty  # the face_image without a face published an empty cloud (no crash)


@pytest.mark.dds
def test_node_process_exits_cleanly(probe):
    with NodeProcess('face_landmarks', params={'backend': 'dlib'}) as node:
        assert probe.wait_for_publishers('face/landmarks', timeout=30), node.output
        assert node.stop() == 0, node.output


@pytest.mark.dds
def test_node_publishes_a_head_seen_from_behind_hidden_and_without_a_pose(probe, face_image):
    """A head seen from behind (the pose head's BACK_SOURCE: on video the node never runs the pose head,
    so the detector is made to label the astronaut's face so, and the video mesh is made blind to it):
    face/landmarks carries its 68 points with visibility 0, face/head_poses no pose and face/head_pose
    nothing, face/markers its points (lifted on the depth image) without head axes; the node goes on and
    the next frame's face, seen from the front, gets its pose."""
    from dataclasses import replace
    from depthmarks_ros.core.face.pose_head import BACK_SOURCE
    node, pubs, (lms, pose, poses, markers) = _start_node(probe)
    cam = PinholeCamera(640, 480, K)
    depth = numpy_to_image(np.full((480, 640), 1.5, np.float32), '32FC1')
    mesh = node.landmarker.backend.mesh
    video_mesh, detect = mesh._mesh.process, mesh._detector.detect
    mesh._mesh.process = lambda img: type('R', (), {'multi_face_landmarks': None})()
    mesh._detector.detect = lambda rgb, mmod=True: [replace(d, source=BACK_SOURCE) for d in detect(rgb, mmod)]

    def send():
        publish_stamped(probe, node, pubs, (numpy_to_image(face_image, 'rgb8'), info_from_camera(cam), depth))
        assert probe.spin_until(lambda: lms and poses and markers, 10)
        return cloud_to_array(lms[-1]), poses[-1], markers[-1]

    arr, arr_poses, mk = send()
    assert len(arr) == 68 and np.all(arr['visibility'] == 0) and np.all(np.isfinite(arr['u']))
    assert np.all(arr['sigma_u'] > 0) and not arr_poses.poses
    assert not probe.spin_until(lambda: pose, 0.5)                       # none comes later either
    assert np.nanmedian(arr['z']) == pytest.approx(1.5, abs=0.02)
    assert {m.ns for m in mk.markers} >= {'face_landmarks'} and 'head_axes' not in {m.ns for m in mk.markers}
    assert node.stats.errors == 0
    mesh._mesh.process, mesh._detector.detect = video_mesh, detect      # the same face, seen from the front
    lms.clear(), pose.clear(), poses.clear(), markers.clear()
    arr, arr_poses, mk = send()
    assert len(arr) == 68 and arr['visibility'].max() > 0.5 and len(arr_poses.poses) == 1
    assert probe.spin_until(lambda: pose, 5) and 'head_axes' in {m.ns for m in mk.markers}
