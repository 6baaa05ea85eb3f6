"""depth_fusion node over real DDS: fuses the simulated rig's LiDAR and camera, drops each bad input
with its own reason, says so when stamps never pair, runs next to sim_rig and exits cleanly."""
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud, make_struct
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.testing.ros_harness import NodeProcess


def _inputs(sim, f, sweep, stamp, frame='lidar_link'):
    img = numpy_to_image(f.left_rgb, 'rgb8')
    img.header.stamp, img.header.frame_id = stamp, 'left_camera_optical_frame'
    info = info_from_camera(sim.stereo.left, img.header)
    cloud = array_to_cloud(sweep)
    cloud.header.stamp.sec, cloud.header.stamp.nanosec = stamp.sec, stamp.nanosec
    cloud.header.frame_id = frame
    return img, info, cloud


@pytest.mark.dds
def test_node_fuses_and_drops_bad_inputs(probe, fusion_scene):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    sim, f, sweep, pts, sparse = fusion_scene
    node = DepthFusionNode(parameter_overrides=[Parameter('completion', value='classical'),
                                                Parameter('input_warn_after', value=0.5)])
    probe.add_node(node)
    pub_img, pub_info = probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info')
    pub_cloud = probe.publisher(PointCloud2, 'lidar/points')
    depth = probe.subscribe(Image, 'fusion/depth', node.output_qos())
    sigma = probe.subscribe(Image, 'fusion/depth_sigma', node.output_qos())
    sparse_out = probe.subscribe(Image, 'fusion/sparse_depth', node.output_qos())
    for p in (pub_img, pub_info, pub_cloud):
        assert probe.wait_for_subscribers(p)

    def send(img, info, cloud):
        pub_cloud.publish(cloud)
        probe.spin_for(0.05)
        pub_img.publish(img)
        pub_info.publish(info)
        probe.spin_for(0.1)
        node.worker.wait_idle(5)
        probe.spin_for(0.05)

    now = lambda: node.get_clock().now().to_msg()  # noqa: E731
    empty = make_struct(0, {'x': np.float32, 'y': np.float32, 'z': np.float32})
    nan_pts = make_struct(10, {'x': np.float32, 'y': np.float32, 'z': np.float32})
    nan_pts['x'] = np.nan
    no_xyz = make_struct(10, {'intensity': np.float32})
    bad = []
    for arr, expected in ((empty, 'no valid (finite) point'), (nan_pts, 'no valid (finite) point'),
                          (no_xyz, 'no x/y/z field')):
        img, info, _ = _inputs(sim, f, sweep, now())
        c = array_to_cloud(arr)
        c.header.stamp, c.header.frame_id = img.header.stamp, 'lidar_link'
        bad.append(((img, info, c), expected))
    bad.append((_inputs(sim, f, sweep, now(), frame='some_other_frame'),   # unknown frame
                "'some_other_frame' is not the calibrated lidar frame"))
    img, info, cloud = _inputs(sim, f, sweep, now())
    info.k = [0.0] * 9                                                    # missing calibration
    bad.append(((img, info, cloud), 'no calibration'))
    for i, (b, expected) in enumerate(bad):                               # each one dropped for its own reason
        send(*b)
        assert probe.spin_until(lambda: node.stats.errors > i, 5), expected
        assert expected in node.stats.last_error.lower(), (expected, node.stats.last_error)
    assert depth == [] and node.stats.errors == len(bad)
    errors = node.stats.errors
    for _ in range(15):                                                   # stale sweeps never pair
        img, info, cloud = _inputs(sim, f, sweep, now())
        cloud.header.stamp.sec -= 5
        send(img, info, cloud)
    level, reason = node.inputs.status()
    assert depth == [] and level == 2 and 'never synchronise' in reason, reason
    assert 'lidar/points -5' in reason   # by how much the stamps disagree
    for _ in range(10):  # still alive
        send(*_inputs(sim, f, sweep, now()))
        if depth:
            break
    assert depth and sigma and sparse_out
    z = image_to_numpy(depth[-1])
    ok = np.isfinite(z) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.6 and np.median(np.abs(z[ok] - f.depth_gt[ok])) < 0.1
    s = image_to_numpy(sigma[-1])
    assert np.all(s[np.isfinite(z)] > 0)
    # the camera-visibility filter, switched on at run time: the see-through returns leave fusion/sparse_depth
    before = image_to_numpy(sparse_out[-1])
    assert node.set_parameters([Parameter('visibility_rows', value=5)])[0].successful
    n = len(sparse_out)
    send(*_inputs(sim, f, sweep, now()))
    assert probe.spin_until(lambda: len(sparse_out) > n, 5)
    after = image_to_numpy(sparse_out[-1])
    see_through = lambda sp: int((np.isfinite(sp) & (sp - f.depth_gt > 0.3)).sum())   # noqa: E731
    assert np.isfinite(after).sum() < np.isfinite(before).sum() and see_through(after) < 0.5 * see_through(before)


@pytest.mark.dds
def test_node_process_publishes_with_sim_rig_and_exits_cleanly(probe):
    out = probe.subscribe(Image, 'fusion/depth')
    with NodeProcess('sim_rig', params={'rate': 5.0, 'lidar_rate': 5.0, 'width': 320, 'height': 240}) as sim, \
            NodeProcess('depth_fusion', params={'time_tolerance': 0.25}) as fusion:
        assert probe.spin_until(lambda: len(out) >= 2, 40), fusion.output + sim.output
        assert fusion.stop() == 0, fusion.output
    assert out[-1].encoding == '32FC1'


@pytest.mark.dds
def test_recorded_only_outputs_are_built_for_the_recorded_instants_and_fused_depth_every_frame(
        probe, fusion_scene, monkeypatch):
    """fusion/sparse_depth and fusion/camera_info, which only `depthmarks run`'s recorder takes in the
    main job, are published for the first frame of each record period while the recorder is their
    only subscriber (ros/recorded_topics.py), every frame once another node subscribes; fused depth
    and its sigma every frame."""
    import rclpy
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    from depthmarks_ros.ros import recorded_topics
    sim, f, sweep, _pts, _sparse = fusion_scene
    monkeypatch.setenv(*recorded_topics.recorded_periods_env(
        {'/fusion/sparse_depth': 10**9, '/fusion/camera_info': 10**9}).popitem())
    node = DepthFusionNode(parameter_overrides=[Parameter('completion', value='classical')])
    probe.add_node(node)
    recorder = rclpy.create_node(recorded_topics.RECORDER_NODE)
    probe.add_node(recorder)
    qos = node.output_qos()
    recorded = {t: [] for t in ('fusion/sparse_depth', 'fusion/camera_info')}
    recorder.create_subscription(Image, 'fusion/sparse_depth', recorded['fusion/sparse_depth'].append, qos)
    recorder.create_subscription(CameraInfo, 'fusion/camera_info', recorded['fusion/camera_info'].append, qos)
    depth = probe.subscribe(Image, 'fusion/depth', qos)
    sigma = probe.subscribe(Image, 'fusion/depth_sigma', qos)
    pubs = probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'), \
        probe.publisher(PointCloud2, 'lidar/points')
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    assert probe.spin_until(lambda: node.pub_sparse.raw.only_recorder() and node.pub_info.only_recorder(), 5)
    sec = node.get_clock().now().to_msg().sec

    def send(i):   # frame i at 10 Hz from a whole second: frames 0 and 10 open a record period
        stamp = node.get_clock().now().to_msg()
        stamp.sec, stamp.nanosec = sec + i // 10, (i % 10) * 10**8
        img, info, cloud = _inputs(sim, f, sweep, stamp)
        pubs[2].publish(cloud)
        probe.spin_for(0.05)
        pubs[0].publish(img)
        pubs[1].publish(info)
        assert probe.spin_until(lambda: len(depth) > i, 5)
        node.worker.wait_idle(5)

    for i in range(12):
        send(i)
    assert probe.spin_until(lambda: len(sigma) == 12 and all(len(v) == 2 for v in recorded.values()), 5)
    assert [m.header.stamp.nanosec for m in recorded['fusion/sparse_depth']] == [0, 0]
    assert [(m.header.stamp.sec - sec, m.header.stamp.nanosec) for m in recorded['fusion/camera_info']] == [(0, 0), (1, 0)]
    other = probe.subscribe(Image, 'fusion/sparse_depth', qos)          # another taker: every frame
    assert probe.spin_until(lambda: not node.pub_sparse.raw.only_recorder(), 5)
    for i in range(12, 14):
        send(i)
    assert probe.spin_until(lambda: len(other) == 2 and len(recorded['fusion/sparse_depth']) == 4, 5)
    assert len(recorded['fusion/camera_info']) == 2                    # still the recorder's only
