"""Simulated rig: geometric and photometric truth, and the node over DDS."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.cloud import cloud_to_array
from depthmarks_ros.convert.image import image_to_numpy
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.core.transforms import apply_transform
from depthmarks_ros.testing.ros_harness import NodeProcess


@pytest.fixture(scope='module')
def sim():
    return SimRig(SimConfig(width=320, height=240, image_noise=0.0, lidar_range_noise=0.02))


def test_lidar_points_land_on_matching_ground_truth_depth(sim):
    frame = sim.render(0.0)
    sweep = sim.render_lidar(0.0)
    assert len(sweep) > 5000 and set(sweep.dtype.names) == {'x', 'y', 'z', 'intensity', 'ring'}
    pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
    cam = sim.stereo.left
    uv, z = cam.project(apply_transform(sim.rig.transform('lidar', 'left'), pts))
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height - 1)
    assert inside.sum() > 500
    gt = frame.depth_gt[np.round(uv[inside, 1]).astype(int), np.round(uv[inside, 0]).astype(int)]
    err = np.abs(gt - z[inside])
    # within noise except at depth edges where the nearest pixel sees another surface
    assert np.nanmean(err < 0.1) > 0.9
    assert np.nanmedian(err) < 0.03


def test_disparity_is_f_b_over_depth(sim):
    f = sim.render(0.0)
    valid = np.isfinite(f.depth_gt)
    assert valid.mean() > 0.5
    fb = sim.stereo.focal * sim.stereo.baseline
    np.testing.assert_allclose(f.disparity_gt[valid], fb / f.depth_gt[valid], rtol=1e-5)
    assert np.isnan(f.disparity_gt[~valid]).all()
    assert f.person_mask.any() and np.nanmax(np.abs(f.depth_gt[f.person_mask] - 2.0)) < 0.2


def test_left_and_right_agree_under_ground_truth_disparity(sim):
    import cv2
    f = sim.render(0.0)
    h, w = f.depth_gt.shape
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    d = np.nan_to_num(f.disparity_gt, nan=0.0)
    warped = cv2.remap(f.right_rgb, uu - d, vv, cv2.INTER_LINEAR).astype(np.float32)
    # visible in both: the right camera's depth at the matched pixel equals the left depth
    ur = np.clip(np.round(uu - d).astype(int), 0, w - 1)
    right_z = f.right_depth_gt[vv.astype(int), ur]
    ok = np.isfinite(f.depth_gt) & (uu - d > 2) & (np.abs(right_z - f.depth_gt) < 0.02 * f.depth_gt)
    diff = np.abs(warped - f.left_rgb.astype(np.float32)).mean(axis=2)[ok]
    assert ok.mean() > 0.5
    assert np.median(diff) < 4.0 and np.mean(diff < 15) > 0.9
    # and a wrong disparity does not agree: the check can fail
    wrong = cv2.remap(f.right_rgb, uu - d - 3, vv, cv2.INTER_LINEAR).astype(np.float32)
    assert np.median(np.abs(wrong - f.left_rgb.astype(np.float32)).mean(axis=2)[ok]) > np.median(diff) + 3


def test_seed_determinism_noise_and_motion():
    a = SimRig(SimConfig(width=160, height=120, seed=3, motion=True))
    b = SimRig(SimConfig(width=160, height=120, seed=3, motion=True))
    fa, fb = a.render(1.0), b.render(1.0)
    np.testing.assert_array_equal(fa.left_rgb, fb.left_rgb)
    np.testing.assert_array_equal(a.render_lidar(1.0), b.render_lidar(1.0))
    later = a.render(2.0)
    assert np.nanmean(np.abs(later.depth_gt - fa.depth_gt)) > 0.001  # the rig moved
    noisy = SimRig(SimConfig(width=160, height=120, image_noise=3.0)).render(0.0)
    clean = SimRig(SimConfig(width=160, height=120, image_noise=0.0)).render(0.0)
    assert 1.5 < np.std(noisy.left_rgb.astype(float) - clean.left_rgb) < 4.5


def test_static_rig_reuses_the_noise_free_sweep_but_not_the_noise():
    cfg = SimConfig(width=160, height=120, lidar_range_noise=0.02, lidar_dropout=0.05)
    warm, fresh = SimRig(cfg), SimRig(cfg)
    first = warm.render_lidar(0.1)                    # fills the cache
    cached = warm.render_lidar(0.7)                   # same pose: cast skipped
    np.testing.assert_array_equal(cached, fresh.render_lidar(0.7))   # == computed from scratch
    assert len(first) != len(cached) or not np.array_equal(first['x'], cached['x'])  # new noise/dropout
    moving = SimConfig(width=160, height=120, motion=True)
    a, b = SimRig(moving), SimRig(moving)
    a.render_lidar(0.0)
    np.testing.assert_array_equal(a.render_lidar(1.3), b.render_lidar(1.3))   # a moved pose re-casts


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="scene: 'moon' is not one of"):
        SimRig(SimConfig(scene='moon'))
    with pytest.raises(ValueError, match='width: 0 is below the minimum 16'):
        SimRig(SimConfig(width=0))


def test_baseline_override_and_resolution_scaling():
    s = SimRig(SimConfig(width=320, height=240, baseline=0.2))
    assert s.stereo.baseline == pytest.approx(0.2)
    np.testing.assert_allclose(s.rig.transform('left', 'right')[:3, 3], [-0.2, 0, 0], atol=1e-9)
    assert s.stereo.focal == pytest.approx(250.0)


@pytest.mark.dds
def test_node_publishes_all_topics_at_rate_with_shared_stamps(probe):
    topics = {t: probe.subscribe(Image, t) for t in ('stereo/left/image_raw', 'stereo/right/image_raw',
                                                     'camera/image_raw', 'sim/depth_gt', 'sim/disparity_gt')}
    infos = probe.subscribe(CameraInfo, 'stereo/right/camera_info')
    clouds = probe.subscribe(PointCloud2, 'lidar/points')
    with NodeProcess('sim_rig', params={'rate': 5.0, 'lidar_rate': 4.0, 'width': 320, 'height': 240,
                                        'lidar_max_range': 50.0}) as node:
        assert probe.spin_until(lambda: all(len(v) >= 2 for v in topics.values()) and clouds, 30), node.output
        n0, c0, t0 = len(topics['stereo/left/image_raw']), len(clouds), time.monotonic()
        probe.spin_for(2.5)
        dt = time.monotonic() - t0
        cam_rate = (len(topics['stereo/left/image_raw']) - n0) / dt
        lidar_rate = (len(clouds) - c0) / dt
        assert node.stop() == 0, node.output
    assert 3.0 < cam_rate < 7.0 and 2.0 < lidar_rate < 6.0
    stamps = [{(m.header.stamp.sec, m.header.stamp.nanosec) for m in v} for v in topics.values()]
    assert len(set.intersection(*stamps)) >= 3  # every sensor of one instant shares its stamp
    left = topics['stereo/left/image_raw'][-1]
    assert (left.encoding, left.width, left.header.frame_id) == ('rgb8', 320, 'left_camera_optical_frame')
    assert infos[-1].p[3] == pytest.approx(-250.0 * 0.12)
    cloud = clouds[-1]
    assert cloud.header.frame_id == 'lidar_link'
    assert [(f.name, f.datatype) for f in cloud.fields] == [('x', 7), ('y', 7), ('z', 7), ('intensity', 7), ('ring', 4)]
    arr = cloud_to_array(cloud)
    assert len(arr) > 5000 and arr['ring'].max() == 31
    depth = image_to_numpy(topics['sim/depth_gt'][-1])
    assert depth.dtype == np.float32 and np.isnan(depth).any() and np.nanmin(depth) > 0


def test_sim_command_writes_frames_and_ground_truth(tmp_path):
    import cv2
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.calibration import load_rig
    assert main(['sim', '-o', str(tmp_path), '--frames', '2', '--width', '160', '--height', '120',
                 '--lidar-horizontal-resolution', '512']) == 0
    assert main(['sim', '-o', str(tmp_path / 'bad'), '--width', '0']) == 2
    depth = np.load(tmp_path / 'depth_000001.npy')
    mm = cv2.imread(str(tmp_path / 'depth_000001.png'), cv2.IMREAD_UNCHANGED)
    assert mm.dtype == np.uint16 and abs(int(mm[60, 80]) - depth[60, 80] * 1000) <= 1
    bin_pts = np.fromfile(tmp_path / 'lidar_000000.bin', np.float32).reshape(-1, 4)
    assert bin_pts.shape[0] > 1000
    assert bin_pts.shape[0] == len(np.load(tmp_path / 'lidar_000000.npy')) < 32 * 512
    rig = load_rig(str(tmp_path / 'calibration' / 'rig.yaml'))
    assert rig.stereo().focal == pytest.approx(125.0)  # the calibration written matches the images


def test_lidar_pattern_follows_vertical_fov_rings_and_max_range():
    s = SimRig(SimConfig(width=64, height=48, lidar_rings=8, lidar_horizontal_resolution=256,
                         lidar_vertical_fov_min=-20.0, lidar_vertical_fov_max=-2.0, lidar_range_noise=0.0,
                         lidar_dropout=0.0, lidar_max_range=4.0))
    sweep = s.render_lidar(0.0)
    r = np.sqrt(sweep['x'] ** 2 + sweep['y'] ** 2 + sweep['z'] ** 2)
    elev = np.degrees(np.arcsin(sweep['z'] / r))
    assert sweep['ring'].max() == 7 and r.max() <= 4.0 + 1e-4
    for ring, expected in ((0, -20.0), (7, -2.0)):
        np.testing.assert_allclose(elev[sweep['ring'] == ring], expected, atol=1e-3)
    full = SimRig(SimConfig(width=64, height=48, lidar_rings=8, lidar_horizontal_resolution=256,
                            lidar_vertical_fov_min=-20.0, lidar_vertical_fov_max=-2.0,
                            lidar_dropout=0.0)).render_lidar(0.0)
    assert len(full) > len(sweep)  # beyond max range are dropped
    with pytest.raises(ValueError, match='lidar_vertical_fov_min .* is above'):
        SimRig(SimConfig(lidar_vertical_fov_min=10.0, lidar_vertical_fov_max=-10.0))


@pytest.mark.dds
def test_node_in_process_shares_lidar_stamp_at_equal_rates_and_gates_ground_truth(probe):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.sim_rig import SimRigNode
    node = SimRigNode(parameter_overrides=[Parameter('width', value=160), Parameter('height', value=120),
                                           Parameter('lidar_horizontal_resolution', value=256)])
    probe.add_node(node)
    left = probe.subscribe(Image, 'stereo/left/image_raw')
    depth = probe.subscribe(Image, 'sim/depth_gt')
    clouds = probe.subscribe(PointCloud2, 'lidar/points')
    assert probe.spin_until(lambda: len(left) >= 3 and len(clouds) >= 3 and depth, 20)
    stamp = lambda m: (m.header.stamp.sec, m.header.stamp.nanosec)  # noqa: E731
    assert {stamp(m) for m in clouds} & {stamp(m) for m in left}  # one clock at equal rates
    assert not node.set_parameters([Parameter('rate', value=20.0)])[0].successful  # read-only
    assert node.set_parameters([Parameter('publish_ground_truth', value=False)])[0].successful
    probe.spin_for(0.3)
    n_depth, n_left = len(depth), len(left)
    assert probe.spin_until(lambda: len(left) >= n_left + 3, 10)
    assert len(depth) <= n_depth + 1  # at most one frame already in flight
    assert node.diagnostic_values()['frames'] >= n_left + 3


@pytest.mark.dds
def test_node_builds_the_disparity_truth_only_for_the_recorded_instants_while_only_the_recorder_takes_it(
        probe, monkeypatch):
    """sim/disparity_gt, which only `depthmarks run`'s recorder takes in the main job, is published for
    the first frame of each record period while the recorder is its only subscriber
    (ros/recorded_topics.py); sim/depth_gt, scored against every output frame, every frame."""
    import rclpy
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.sim_rig import SimRigNode
    from depthmarks_ros.ros import recorded_topics
    monkeypatch.setenv(*recorded_topics.recorded_periods_env({'/sim/disparity_gt': 10**9}).popitem())
    recorder = rclpy.create_node(recorded_topics.RECORDER_NODE)
    probe.add_node(recorder)
    disparity = []
    recorder.create_subscription(Image, 'sim/disparity_gt', disparity.append, 10)
    depth = probe.subscribe(Image, 'sim/depth_gt')
    node = SimRigNode(parameter_overrides=[Parameter(k, value=v) for k, v in
                                           {'rate': 10.0, 'lidar_rate': 10.0, 'width': 160, 'height': 120}.items()])
    assert probe.spin_until(lambda: node.pub_disp.only_recorder(), 5)
    probe.add_node(node)
    assert probe.spin_until(lambda: len({m.header.stamp.sec for m in depth}) >= 3 and len(disparity) >= 2, 30)
    stamps = lambda msgs: [(m.header.stamp.sec, m.header.stamp.nanosec) for m in msgs]   # noqa: E731
    secs = [s for s, _ in stamps(disparity)]
    assert len(secs) == len(set(secs)) and len(disparity) < len(depth)        # one per second, not every frame
    first_of_second = {}
    for s, ns in stamps(depth):
        first_of_second.setdefault(s, (s, ns))
    assert set(stamps(disparity)) <= set(first_of_second.values())
