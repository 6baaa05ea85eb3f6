"""depth_fusion over real DDS with a stereo depth image of another size (that source is dropped with
its reason, the frame is fused from the LiDAR alone, the node keeps running), and a missing fitted
sigma model (a one-line start-up error naming the file)."""
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud
from depthmarks_ros.convert.image import numpy_to_image


def _set(sim, f, sweep, stamp, stereo_shape):
    img = numpy_to_image(f.left_rgb, 'rgb8')
    img.header.stamp, img.header.frame_id = stamp, 'left_camera_optical_frame'
    info = info_from_camera(sim.stereo.left, img.header)
    cloud = array_to_cloud(sweep)
    cloud.header.stamp, cloud.header.frame_id = stamp, 'lidar_link'
    sd = numpy_to_image(np.full(stereo_shape, 3.0, np.float32), '32FC1', img.header)
    conf = numpy_to_image(np.ones(stereo_shape, np.float32), '32FC1', img.header)
    return [img, info, cloud, sd, conf]


@pytest.mark.dds
def test_stereo_depth_of_another_size_is_dropped_and_the_lidar_still_fused(probe, fusion_scene):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    sim, f, sweep, pts, sparse = fusion_scene
    node = DepthFusionNode(parameter_overrides=[Parameter('use_stereo', value=True)])
    probe.add_node(node)
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(PointCloud2, 'lidar/points'), probe.publisher(Image, 'stereo/depth'),
            probe.publisher(Image, 'stereo/confidence')]
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    depth = probe.subscribe(Image, 'fusion/depth', node.output_qos())
    h, w = f.depth_gt.shape
    now = lambda: node.get_clock().now().to_msg()  # noqa: E731

    def send_until(shape, done):
        for _ in range(20):
            for p, m in zip(pubs, _set(sim, f, sweep, now(), shape)):
                p.publish(m)
            if probe.spin_until(done, 1.0):
                return True
        return False
    assert send_until((h // 2, w // 2), lambda: depth), node.stats.last_error
    assert node.sources_used == ('lidar',)
    assert f'stereo/depth is {w // 2}x{h // 2} but the camera is {w}x{h}' in node.stats.last_error
    n = len(depth)
    assert send_until((h, w), lambda: len(depth) > n and node.sources_used == ('lidar', 'stereo'))


def test_missing_sigma_model_file_is_a_clear_start_up_error(rclpy_context, tmp_path):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    missing = tmp_path / 'nope.json'
    with pytest.raises(ValueError, match=r"sigma model file .*nope\.json.* unreadable: No such file"):
        DepthFusionNode(parameter_overrides=[Parameter('sigma_model_file', value=str(missing))])
