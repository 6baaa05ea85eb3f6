"""Stereo: matching accuracy on the simulated rig's truth, strips vs unsplit, files, the node over DDS."""
import time

import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
from depthmarks_ros.core.stereo.io import read_disparity_png, read_pfm, write_disparity_png, write_pfm
from depthmarks_ros.core.stereo.metrics import disparity_metrics
from depthmarks_ros.testing.ros_harness import NodeProcess


@pytest.fixture(scope='module')
def sim():
    s = SimRig(SimConfig(width=320, height=240, image_noise=1.0))
    return s, s.render(0.0)


def _grey(rgb):
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def test_default_matcher_is_accurate_on_ground_truth(sim):
    s, f = sim
    r = StereoMatcher(StereoParams(disparity_range=64)).compute(_grey(f.left_rgb), _grey(f.right_rgb))
    m = disparity_metrics(r.disparity, f.disparity_gt)
    assert m['bad2'] < 0.03 and m['density'] > 0.7 and m['epe'] < 0.5
    assert r.confidence.dtype == np.float32 and 0 <= r.confidence.min() and r.confidence.max() <= 1
    assert (r.confidence[~np.isfinite(r.disparity)] == 0).all()


def test_wls_and_lr_check_improve_on_plain_matching(sim):
    s, f = sim
    L, R = _grey(f.left_rgb), _grey(f.right_rgb)
    plain = disparity_metrics(StereoMatcher(StereoParams(disparity_range=64)).compute(L, R).disparity, f.disparity_gt)
    lr = disparity_metrics(StereoMatcher(StereoParams(disparity_range=64, lr_check=True)).compute(L, R).disparity,
                           f.disparity_gt)
    wls = disparity_metrics(StereoMatcher(StereoParams(disparity_range=64, wls_filter=True)).compute(L, R).disparity,
                            f.disparity_gt)
    assert lr['bad1'] <= plain['bad1'] and lr['density'] < plain['density']  # occlusions removed
    assert wls['epe'] < plain['epe']


def test_parallel_strips_match_unsplit_away_from_borders(sim):
    s, f = sim
    L, R = _grey(f.left_rgb), _grey(f.right_rgb)
    p = StereoParams(stereo_algorithm=1, disparity_range=64)
    whole = StereoMatcher(p.replace(strips=1)).compute_raw(L, R)
    m = StereoMatcher(p.replace(strips=3))
    split = m.compute_raw(L, R)
    rows = np.ones(L.shape[0], bool)
    for _s0, _s1, k0, _k1 in m._strip_bounds(L.shape[0])[1:]:
        rows[max(k0 - 12, 0):k0 + 12] = False  # strip borders
    assert (split[rows] == whole[rows]).mean() > 0.995
    assert (split == whole).mean() > 0.97


def test_algorithms_and_parameter_validation(sim):
    s, f = sim
    L, R = _grey(f.left_rgb), _grey(f.right_rgb)
    for alg in (0, 1, 2):
        window = 15 if alg == 0 else 5
        d = StereoMatcher(StereoParams(stereo_algorithm=alg, correlation_window_size=window,
                                       disparity_range=64)).compute(L, R).disparity
        assert disparity_metrics(d, f.disparity_gt)['bad2'] < 0.08
    for bad, match in (({'disparity_range': 40}, 'multiple of 16'), ({'correlation_window_size': 6}, 'odd'),
                       ({'P1': 500.0, 'P2': 400.0}, 'P2'), ({'uniqueness_ratio': 200.0}, 'outside')):
        with pytest.raises(ValueError, match=match):
            StereoParams().replace(**bad)


def test_disparity_files_round_trip(tmp_path):
    d = np.random.default_rng(0).uniform(0, 100, (7, 9)).astype(np.float32)
    d[0, 0] = np.nan
    write_pfm(str(tmp_path / 'd.pfm'), d)
    np.testing.assert_array_equal(read_pfm(str(tmp_path / 'd.pfm')), d)
    write_disparity_png(str(tmp_path / 'd.png'), d)
    back = read_disparity_png(str(tmp_path / 'd.png'))
    assert np.isnan(back[0, 0]) and np.nanmax(np.abs(back - d)) <= 1 / 512 + 1e-6


def test_batch_command_matches_core(tmp_path, sim):
    from depthmarks_ros.cli.main import main
    s, f = sim
    cv2.imwrite(str(tmp_path / 'l.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / 'r.png'), cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2BGR))
    rc = main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(tmp_path / 'out'),
               '--focal', str(s.stereo.focal), '--baseline', '0.12', '--disparity-range', '64'])
    assert rc == 0
    disp = read_pfm(str(tmp_path / 'out' / 'disparity.pfm'))
    core = StereoMatcher(StereoParams(disparity_range=64)).compute(
        cv2.imread(str(tmp_path / 'l.png'), cv2.IMREAD_GRAYSCALE),
        cv2.imread(str(tmp_path / 'r.png'), cv2.IMREAD_GRAYSCALE)).disparity
    np.testing.assert_array_equal(np.isnan(disp), np.isnan(core))
    depth = np.load(tmp_path / 'out' / 'depth.npy')
    ok = np.isfinite(depth) & np.isfinite(f.depth_gt)
    assert np.median(np.abs(depth[ok] - f.depth_gt[ok])) < 0.05


# ------------------------------------------------------------------------------- node over DDS
def _pair_msgs(sim, stamp, left_cam=None, right_cam=None, left_rgb=None, right_rgb=None):
    s, f = sim
    lm = numpy_to_image(f.left_rgb if left_rgb is None else left_rgb, 'rgb8')
    rm = numpy_to_image(f.right_rgb if right_rgb is None else right_rgb, 'rgb8')
    li = info_from_camera(left_cam or s.stereo.left)
    ri = info_from_camera(right_cam or s.stereo.right)
    for m, frame in ((lm, 'left_camera_optical_frame'), (li, 'left_camera_optical_frame'),
                     (rm, 'right_camera_optical_frame'), (ri, 'right_camera_optical_frame')):
        m.header.stamp = stamp
        m.header.frame_id = frame
    return lm, li, rm, ri


@pytest.fixture
def stereo_node(probe):
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    node = StereoDepthNode(parameter_overrides=[Parameter('disparity_range', value=64)])
    probe.add_node(node)
    pubs = [probe.publisher(Image, 'stereo/left/image_raw'), probe.publisher(CameraInfo, 'stereo/left/camera_info'),
            probe.publisher(Image, 'stereo/right/image_raw'), probe.publisher(CameraInfo, 'stereo/right/camera_info')]
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    return node, pubs


def _send(probe, pubs, msgs):
    for p, m in zip(pubs, msgs):
        p.publish(m)
    probe.spin_for(0.05)


@pytest.mark.dds
def test_node_outputs_accurate_depth_and_fills_disparity_like_stereo_image_proc(probe, stereo_node, sim):
    node, pubs = stereo_node
    s, f = sim
    disp = probe.subscribe(DisparityImage, 'stereo/disparity', node.output_qos())
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    conf = probe.subscribe(Image, 'stereo/confidence', node.output_qos())
    info = probe.subscribe(CameraInfo, 'stereo/camera_info', node.output_qos())
    for i in range(30):
        _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
        if probe.spin_until(lambda: depth and disp and conf and info, 0.5):
            break
    assert depth and disp and conf and info
    d = disp[-1]
    assert d.f == pytest.approx(s.stereo.focal) and d.t == pytest.approx(0.12)
    assert (d.min_disparity, d.max_disparity, d.delta_d) == (0.0, 63.0, 1.0 / 16)
    assert d.valid_window.x_offset == 64 + 2 - 1 and d.valid_window.width > 0
    z = image_to_numpy(depth[-1])
    ok = np.isfinite(z) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.6 and np.median(np.abs(z[ok] - f.depth_gt[ok])) < 0.03
    assert not np.any(z <= 0)  # REP-118: invalid is NaN, never 0 or negative
    assert depth[-1].header.stamp == info[-1].header.stamp
    assert node.stats.frames_out >= 1


@pytest.mark.dds
def test_node_points_only_when_subscribed_and_runtime_params(probe, stereo_node, sim):
    node, pubs = stereo_node
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
    assert probe.spin_until(lambda: depth, 10)
    assert node.stats.frames_out >= 1 and node.pub_points.get_subscription_count() == 0
    points = probe.subscribe(PointCloud2, 'stereo/points', node.output_qos())
    probe.spin_until(lambda: node.pub_points.get_subscription_count() > 0, 5)
    for _ in range(20):
        _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
        if probe.spin_until(lambda: points, 0.5):
            break
    assert points and {f.name for f in points[-1].fields} == {'x', 'y', 'z', 'rgb'}
    assert not node.set_parameters([Parameter('disparity_range', value=50)])[0].successful
    assert node.set_parameters([Parameter('stereo_algorithm', value=0),
                                Parameter('correlation_window_size', value=15)])[0].successful
    assert node.matcher.params.stereo_algorithm == 0


@pytest.mark.dds
def test_node_rectifies_raw_distorted_input(probe, stereo_node, sim):
    node, pubs = stereo_node
    s, f = sim
    D = np.array([-0.15, 0.02, 0.0, 0.0, 0.0])
    raws, cams = [], []
    for rect_img, cam in ((f.left_rgb, s.stereo.left), (f.right_rgb, s.stereo.right)):
        raw_cam = PinholeCamera(cam.width, cam.height, cam.K, D, np.eye(3), cam.P)
        # raw pixel -> rectified pixel, then sample the rectified image there (inverse rectification)
        uu, vv = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
        rect = raw_cam.rectify_points(np.stack([uu.ravel(), vv.ravel()], 1)).reshape(cam.height, cam.width, 2)
        raws.append(cv2.remap(rect_img, rect[..., 0].astype(np.float32), rect[..., 1].astype(np.float32),
                              cv2.INTER_LINEAR))
        cams.append(raw_cam)
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    for _ in range(20):
        _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg(), cams[0], cams[1], raws[0], raws[1]))
        if probe.spin_until(lambda: depth, 0.5):
            break
    z = image_to_numpy(depth[-1])
    ok = np.isfinite(z) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.5 and np.median(np.abs(z[ok] - f.depth_gt[ok])) < 0.05


@pytest.mark.dds
def test_node_drops_bad_input_and_keeps_running(probe, stereo_node, sim):
    node, pubs = stereo_node
    s, f = sim
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    now = lambda: node.get_clock().now().to_msg()  # noqa: E731
    small = cv2.resize(f.right_rgb, (160, 120))
    bad_sets = [
        _pair_msgs(sim, now(), right_rgb=small),                                    # mismatched sizes
        _pair_msgs(sim, now(), right_cam=PinholeCamera(320, 240, s.stereo.left.K)),  # zero baseline
    ]
    mono = _pair_msgs(sim, now())
    mono = (mono[0], mono[1], numpy_to_image(_grey(f.right_rgb), 'mono8', mono[2].header), mono[3])
    bad_sets.append(mono)                                                            # mismatched encodings
    uncal = list(_pair_msgs(sim, now()))
    uncal[1].k = [0.0] * 9                                                           # no calibration
    bad_sets.append(tuple(uncal))
    for msgs in bad_sets:
        _send(probe, pubs, msgs)
        probe.spin_for(0.3)
        node.worker.wait_idle(5)
    assert node.stats.errors >= 4 and depth == []
    assert 'sizes differ' in node.stats.last_error or node.stats.errors >= 4
    for _ in range(20):  # still alive: a good pair is processed
        _send(probe, pubs, _pair_msgs(sim, now()))
        if probe.spin_until(lambda: depth, 0.5):
            break
    assert depth


@pytest.mark.dds
def test_node_process_warns_when_stamps_never_match_and_exits_cleanly(probe, sim):
    pubs = [probe.publisher(Image, 'stereo/left/image_raw'), probe.publisher(CameraInfo, 'stereo/left/camera_info'),
            probe.publisher(Image, 'stereo/right/image_raw'), probe.publisher(CameraInfo, 'stereo/right/camera_info')]
    disp = probe.subscribe(DisparityImage, 'stereo/disparity')
    with NodeProcess('stereo_depth', params={'disparity_range': 64}) as node:
        for p in pubs:
            assert probe.wait_for_subscribers(p, timeout=20), node.output
        t_end = time.monotonic() + 5.0
        while time.monotonic() < t_end:  # right stamps 3 ms late: exact sync never pairs them
            stamp = probe.node.get_clock().now().to_msg()
            msgs = _pair_msgs(sim, stamp)
            late = probe.node.get_clock().now().to_msg()
            late.nanosec = (stamp.nanosec + 3_000_000) % 1_000_000_000
            msgs[2].header.stamp = msgs[3].header.stamp = late
            _send(probe, pubs, msgs)
            probe.spin_for(0.1)
        assert disp == []
        for _ in range(20):  # then matching stamps work
            _send(probe, pubs, _pair_msgs(sim, probe.node.get_clock().now().to_msg()))
            if probe.spin_until(lambda: disp, 0.5):
                break
        assert disp, node.output
        assert node.stop() == 0
    assert 'never synchronise' in node.output
