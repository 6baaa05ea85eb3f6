"""face_landmarks node over real DDS: landmarks, head pose and markers from a real face, bad input
dropped with the reason, clean exit of the node process."""
import numpy as np
import pytest
from geometry_msgs.msg import PoseWithCovarianceStamped
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import cloud_to_array
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.testing.ros_harness import NodeProcess
from depthmarks_ros.testing.scenes import FACE_K as K, camera_input_publishers, publish_stamped


@pytest.mark.dds
def test_node_publishes_landmarks_pose_markers_and_survives_bad_input(probe, face_image):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.face_landmarks import FaceLandmarksNode
    node = FaceLandmarksNode(parameter_overrides=[Parameter('depth_topic', value='depth')])
    probe.add_node(node)
    pubs = camera_input_publishers(probe, 'depth')
    lms = probe.subscribe(PointCloud2, 'face/landmarks', node.output_qos())
    poses = probe.subscribe(PoseWithCovarianceStamped, 'face/head_pose', node.output_qos())
    markers = probe.subscribe(MarkerArray, 'face/markers', node.output_qos())
    for p in pubs:
        assert probe.wait_for_subscribers(p)
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
