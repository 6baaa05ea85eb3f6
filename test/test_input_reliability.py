"""Issue 17 over real DDS: nodes recover from future-stamped input, say on /diagnostics when an input
never comes, stops or never pairs, refuse bad calibrations and huge frames, and take
CompressedImage input (issue 15) encoded exactly as image_transport's plugins encode it."""
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud
from depthmarks_ros.convert.compressed import encode_compressed, encode_compressed_depth
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.convert.stamps import ns_to_stamp, stamp_ns
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.sim import SimConfig, SimRig

pytestmark = pytest.mark.dds
HOUR_NS = 3600 * 1_000_000_000
ERROR = 2


@pytest.fixture(scope='module')
def rig():
    sim = SimRig(SimConfig(width=320, height=240, seed=5))
    return sim, sim.render(0.0), sim.render_lidar(0.0)


def _stamped(msgs, stamp):
    for m in msgs:
        m.header.stamp = stamp
    return msgs


def _later(stamp, ns):
    return ns_to_stamp(stamp_ns(stamp) + ns)


def _stereo_msgs(sim, f, stamp, compressed=False):
    if compressed:   # PNG, as image_transport's compressed publisher with format png writes it
        left, right = (encode_compressed(x, 'rgb8', 'png') for x in (f.left_rgb, f.right_rgb))
    else:
        left, right = numpy_to_image(f.left_rgb, 'rgb8'), numpy_to_image(f.right_rgb, 'rgb8')
    li, ri = info_from_camera(sim.stereo.left), info_from_camera(sim.stereo.right)
    for m, frame in ((left, 'left_camera_optical_frame'), (li, 'left_camera_optical_frame'),
                     (right, 'right_camera_optical_frame'), (ri, 'right_camera_optical_frame')):
        m.header.frame_id = frame
    return _stamped([left, li, right, ri], stamp)


def _publish_until(probe, pubs_msgs, done, tries=20, wait=0.4):
    """Publish fresh sets (``pubs_msgs()`` -> [(pub, msg)]) until ``done()``."""
    for _ in range(tries):
        for pub, msg in pubs_msgs():
            pub.publish(msg)
        if probe.spin_until(done, wait):
            return True
    return False


def test_stereo_recovers_from_future_stamps_and_takes_compressed_pairs(probe, rig):
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    sim, f, _ = rig
    raw = StereoDepthNode(parameter_overrides=[Parameter('disparity_range', value=64),
                                               Parameter('input_warn_after', value=0.5)])
    comp = StereoDepthNode(parameter_overrides=[Parameter('disparity_range', value=64),
                                                Parameter('image_transport', value='compressed')],
                           namespace='c')
    for n in (raw, comp):
        probe.add_node(n)
    topics = ['stereo/left/image_raw', 'stereo/left/camera_info', 'stereo/right/image_raw', 'stereo/right/camera_info']
    pubs = [probe.publisher(Image if 'image' in t else CameraInfo, t) for t in topics]
    cpubs = [probe.publisher(CameraInfo, '/c/' + t) if 'info' in t else
             probe.publisher(CompressedImage, f'/c/{t}/compressed') for t in topics]
    for p in pubs + cpubs:
        assert probe.wait_for_subscribers(p)
    depth = probe.subscribe(Image, 'stereo/depth', raw.output_qos())
    cdepth = probe.subscribe(Image, '/c/stereo/depth', comp.output_qos())
    now = lambda: raw.get_clock().now().to_msg()  # noqa: E731
    # six right image + camera_info messages stamped one hour ahead (a sensor with a wrong clock)
    for _ in range(6):
        msgs = _stereo_msgs(sim, f, _later(now(), HOUR_NS))
        pubs[2].publish(msgs[2])
        pubs[3].publish(msgs[3])
        probe.spin_for(0.05)
    assert _publish_until(probe, lambda: list(zip(pubs, _stereo_msgs(sim, f, now()))), lambda: depth)
    level, reason = raw.inputs.status()
    assert 'stereo/right/image_raw jumped back by 3599.' in reason and 'ahead of this node' in reason, reason
    # the same pair as PNG CompressedImage gives the same depth
    assert _publish_until(probe, lambda: list(zip(cpubs, _stereo_msgs(sim, f, now(), compressed=True))),
                          lambda: cdepth)
    a, b = image_to_numpy(depth[-1]), image_to_numpy(cdepth[-1])
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.6 and np.allclose(a[both], b[both], rtol=1e-5)
    # huge frames are refused before any work, also when compressed (size read from the PNG header)
    assert comp.set_parameters([Parameter('max_image_pixels', value=320 * 240 - 1)])[0].successful
    errors = comp.stats.errors
    for pub, msg in zip(cpubs, _stereo_msgs(sim, f, now(), compressed=True)):
        pub.publish(msg)
    assert probe.spin_until(lambda: comp.stats.errors > errors, 5)
    assert 'image 320x240 (0.1 Mpx) is larger than max_image_pixels' in comp.stats.last_error


def _camera_msgs(img, cam, stamp, transport='raw'):
    m = encode_compressed(img, 'rgb8', 'jpeg') if transport == 'compressed' else numpy_to_image(img, 'rgb8')
    return _stamped([m, info_from_camera(cam)], stamp)


def test_face_says_why_it_is_starving_and_recovers(probe):
    from depthmarks_ros.nodes.face_landmarks import FaceLandmarksNode
    node = FaceLandmarksNode(parameter_overrides=[Parameter('input_warn_after', value=0.5),
                                                  Parameter('diagnostics_period', value=0.2)])
    probe.add_node(node)
    pub_img, pub_info = probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info')
    for p in (pub_img, pub_info):
        assert probe.wait_for_subscribers(p)
    diags = probe.subscribe(DiagnosticArray, '/diagnostics', 10)
    lms = probe.subscribe(PointCloud2, 'face/landmarks', node.output_qos())
    img, cam = np.full((120, 160, 3), 90, np.uint8), PinholeCamera(160, 120, [[150, 0, 80], [0, 150, 60], [0, 0, 1]])
    now = lambda: node.get_clock().now().to_msg()  # noqa: E731

    def mine(reason_part):
        return lambda: any(s.name.startswith('face_landmarks') and s.level == bytes([ERROR]) and reason_part in s.message
                           for a in diags for s in a.status)

    # 1. camera_info never sent: ERROR on /diagnostics with the reason
    assert _publish_until(probe, lambda: [(pub_img, _camera_msgs(img, cam, now())[0])],
                          mine('camera/camera_info: nothing received'), tries=30, wait=0.1)
    # 2. camera_info stamps 1 ms off the image's: never pairs (exact sync), said so with the offset
    assert _publish_until(
        probe, lambda: (lambda m: [(pub_img, m[0]), (pub_info, _stamped([m[1]], _later(m[0].header.stamp, 10**6))[0])])(
            _camera_msgs(img, cam, now())), mine('never synchronise (exact stamps)'), tries=30, wait=0.1)
    assert lms == []
    # 3. six camera_info stamped an hour ahead, then correct input: output again, and the jump is reported
    for _ in range(6):
        pub_info.publish(_camera_msgs(img, cam, _later(now(), HOUR_NS))[1])
        probe.spin_for(0.03)
    assert _publish_until(probe, lambda: list(zip((pub_img, pub_info), _camera_msgs(img, cam, now()))), lambda: lms)
    level, reason = node.inputs.sync.status()
    assert level < ERROR and 'camera/camera_info jumped back by 3599.' in reason, reason
    # 4. back to OK once the inputs flow again
    diags.clear()
    assert _publish_until(probe, lambda: list(zip((pub_img, pub_info), _camera_msgs(img, cam, now()))),
                          lambda: any(s.name.startswith('face_landmarks') and s.level == bytes([0])
                                      for a in diags for s in a.status), tries=40, wait=0.1)


def test_body_with_compressed_image_and_depth_reports_a_stopped_depth_topic(probe):
    from depthmarks_ros.nodes.body_pose import BodyPoseNode
    node = BodyPoseNode(parameter_overrides=[Parameter('depth_topic', value='depth'),
                                             Parameter('image_transport', value='compressed'),
                                             Parameter('depth_transport', value='compressedDepth'),
                                             Parameter('input_warn_after', value=0.5)])
    probe.add_node(node)
    pub_img = probe.publisher(CompressedImage, 'camera/image_raw/compressed')
    pub_info = probe.publisher(CameraInfo, 'camera/camera_info')
    pub_depth = probe.publisher(CompressedImage, 'depth/compressedDepth')
    for p in (pub_img, pub_info, pub_depth):
        assert probe.wait_for_subscribers(p)
    img, cam = np.full((120, 160, 3), 90, np.uint8), PinholeCamera(160, 120, [[150, 0, 80], [0, 150, 60], [0, 0, 1]])
    mm = np.full((120, 160), 1500, np.uint16)
    now = lambda: node.get_clock().now().to_msg()  # noqa: E731

    def full_set():
        stamp = now()
        m, info = _camera_msgs(img, cam, stamp, 'compressed')
        assert m.format == 'rgb8; jpeg compressed bgr8'
        return [(pub_img, m), (pub_info, info), (pub_depth, encode_compressed_depth(mm, '16UC1', _stamped_header(stamp)))]
    out = node.stats.frames_out
    assert _publish_until(probe, full_set, lambda: node.stats.frames_out > out)
    assert node.stats.errors == 0, node.stats.last_error
    # the depth topic stops: ERROR with the reason, within input_warn_after
    assert _publish_until(probe, lambda: full_set()[:2],
                          lambda: 'depth/compressedDepth: no message for' in node.inputs.sync.status()[1],
                          tries=30, wait=0.1)
    assert node.inputs.sync.status()[0] == ERROR


def test_input_messages_name_the_remapped_topics_the_node_subscribes(probe):
    """A remapped input (and its compressed transport, under the remapped base) is named on /diagnostics
    and in a rejection as the topic the node reads, fully qualified, not by the node's own relative name."""
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    node = StereoDepthNode(cli_args=['--ros-args', '-r', '__ns:=/rig1', '-r', 'stereo/left/image_raw:=/cam/left',
                                     '-r', 'stereo/right/camera_info:=/cam/right_info'],
                           parameter_overrides=[Parameter('image_transport', value='compressed'),
                                                Parameter('input_warn_after', value=0.2),
                                                Parameter('max_image_pixels', value=1000)])
    probe.add_node(node)
    assert node.inputs.topics == [s.topic_name for s in node.inputs.subscriptions]
    assert sorted(node.inputs.topics) == ['/cam/left/compressed', '/cam/right_info', '/rig1/stereo/left/camera_info',
                                          '/rig1/stereo/right/image_raw/compressed']
    pub = probe.publisher(CompressedImage, '/cam/left/compressed')
    assert probe.wait_for_subscribers(pub)
    big = encode_compressed(np.full((48, 64, 3), 90, np.uint8), 'rgb8', 'png')      # 3072 px > 1000
    assert _publish_until(probe, lambda: [(pub, big)], lambda: node.stats.errors > 0, wait=0.1)
    assert node.stats.last_error.startswith('/cam/left/compressed: image 64x48'), node.stats.last_error
    assert probe.spin_until(lambda: 'nothing received' in node.inputs.status()[1], 5.0)
    reason = node.inputs.status()[1]
    assert '/cam/right_info: nothing received' in reason and '/rig1/stereo/left/camera_info: nothing' in reason, reason
    assert 'stereo/right/camera_info' not in reason


def _stamped_header(stamp):
    from std_msgs.msg import Header
    return Header(stamp=stamp)


def _fusion_msgs(sim, f, sweep, stamp, compressed=False):
    img = encode_compressed(f.left_rgb, 'rgb8', 'jpeg') if compressed else numpy_to_image(f.left_rgb, 'rgb8')
    img.header.frame_id = 'left_camera_optical_frame'
    info = info_from_camera(sim.stereo.left, img.header)
    cloud = array_to_cloud(sweep)
    cloud.header.frame_id = 'lidar_link'
    return _stamped([img, info, cloud], stamp)


def test_fusion_recovers_from_future_sweeps_and_fuses_compressed_depth(probe, rig):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    sim, f, sweep = rig
    raw = DepthFusionNode(parameter_overrides=[Parameter('time_tolerance', value=0.05)])
    comp = DepthFusionNode(parameter_overrides=[Parameter('image_transport', value='compressed'),
                                                Parameter('depth_transport', value='compressedDepth'),
                                                Parameter('use_stereo', value=True)], namespace='c')
    for n in (raw, comp):
        probe.add_node(n)
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(PointCloud2, 'lidar/points')]
    cpubs = [probe.publisher(CompressedImage, '/c/camera/image_raw/compressed'),
             probe.publisher(CameraInfo, '/c/camera/camera_info'), probe.publisher(PointCloud2, '/c/lidar/points'),
             probe.publisher(CompressedImage, '/c/stereo/depth/compressedDepth'),
             probe.publisher(Image, '/c/stereo/confidence')]
    for p in pubs + cpubs:
        assert probe.wait_for_subscribers(p)
    depth = probe.subscribe(Image, 'fusion/depth', raw.output_qos())
    cdepth = probe.subscribe(Image, '/c/fusion/depth', comp.output_qos())
    now = lambda: raw.get_clock().now().to_msg()  # noqa: E731
    for _ in range(6):   # LiDAR sweeps stamped an hour ahead
        pubs[2].publish(_fusion_msgs(sim, f, sweep, _later(now(), HOUR_NS))[2])
        probe.spin_for(0.05)
    assert _publish_until(probe, lambda: list(zip(pubs, _fusion_msgs(sim, f, sweep, now()))), lambda: depth)
    assert 'lidar/points jumped back by 3599.' in raw.inputs.status()[1]

    def stereo_set():   # stereo depth as 32FC1 compressedDepth (inverse-depth PNG), as image_transport sends it
        stamp = now()
        msgs = _fusion_msgs(sim, f, sweep, stamp, compressed=True)
        sd = encode_compressed_depth(f.depth_gt.astype(np.float32), '32FC1', _stamped_header(stamp), depth_max=10.0)
        conf = numpy_to_image(np.ones(f.depth_gt.shape, np.float32), '32FC1', _stamped_header(stamp))
        return list(zip(cpubs, msgs + [sd, conf]))
    assert _publish_until(probe, stereo_set, lambda: cdepth)
    assert comp.sources_used == ('lidar', 'stereo'), comp.stats.last_error
    z = image_to_numpy(cdepth[-1])
    ok = np.isfinite(z) & np.isfinite(f.depth_gt) & (f.depth_gt < 10)
    assert ok.mean() > 0.5 and np.median(np.abs(z[ok] - f.depth_gt[ok])) < 0.05


@pytest.mark.parametrize('values, match', [
    ([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 'not a unit quaternion'),
    ([float('nan'), 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 'translation .* is not finite'),
    ([0.0, 0.0, 1.0], 'needs 7 values'),
])
def test_fusion_refuses_unusable_lidar_to_camera_at_start(rclpy_context, values, match):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    with pytest.raises(ValueError, match=match):
        DepthFusionNode(parameter_overrides=[Parameter('lidar_to_camera', value=values)])


def test_fusion_sigma_model_file_that_is_a_directory_is_a_one_line_start_up_error(tmp_path):
    from depthmarks_ros.testing.ros_harness import NodeProcess
    with NodeProcess('depth_fusion', params={'sigma_model_file': str(tmp_path)}) as node:
        node.proc.wait(30)
    out = node.output
    assert node.proc.returncode == 1 and 'Traceback' not in out, out
    line = next(x for x in out.splitlines() if 'cannot start' in x)
    assert 'sigma model file' in line and 'Is a directory' in line, out


def test_a_backward_jump_of_the_ros_clock_resets_the_queues(probe):
    """A looping bag with use_sim_time: /clock jumps back, the queues start afresh (as tf2 does)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    node = StereoDepthNode(parameter_overrides=[Parameter('use_sim_time', value=True)])
    probe.add_node(node)
    clock = probe.publisher(Clock, '/clock', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    assert probe.wait_for_subscribers(clock)
    left = probe.publisher(Image, 'stereo/left/image_raw')
    assert probe.wait_for_subscribers(left)
    for sec in (100, 101):
        clock.publish(Clock(clock=ns_to_stamp(sec * 1_000_000_000)))
        probe.spin_until(lambda: node.get_clock().now().nanoseconds >= sec * 1_000_000_000, 5)
    msg = numpy_to_image(np.zeros((4, 4), np.uint8), 'mono8')
    msg.header.stamp = ns_to_stamp(101 * 1_000_000_000)
    left.publish(msg)
    assert probe.spin_until(lambda: node.inputs.sync.pending() == 1, 5)
    clock.publish(Clock(clock=ns_to_stamp(10 * 1_000_000_000)))    # the bag starts again
    assert probe.spin_until(lambda: node.inputs.sync.pending() == 0, 5)
    assert 'ROS clock jumped by -91.000 s: synchronisation reset (1 queued message(s) discarded)' in \
        node.inputs.status()[1]
