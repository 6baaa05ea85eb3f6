"""LiDAR-camera fusion: projection, completion, sigma, fusion on the simulated rig's truth; KITTI
formats; the learned sigma model; the node over DDS with bad inputs."""
import os

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud, make_struct
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.fusion import kitti
from depthmarks_ros.core.fusion.combine import fuse_inverse_variance
from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
from depthmarks_ros.core.fusion.learned import fit_sigma_model, load_model, save_model
from depthmarks_ros.core.fusion.metrics import depth_metrics, sigma_calibration
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_sparse
from depthmarks_ros.core.fusion.projection import sparse_depth_image
from depthmarks_ros.core.fusion.uncertainty import SigmaModel
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
from depthmarks_ros.testing.ros_harness import NodeProcess


@pytest.fixture(scope='module')
def scene():
    sim = SimRig(SimConfig(width=320, height=240, seed=5))
    f = sim.render(0.0)
    sweep = sim.render_lidar(0.0)
    pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
    sparse = sparse_depth_image(pts, sim.rig.transform('lidar', 'left'), sim.stereo.left)
    return sim, f, sweep, pts, sparse


def test_zbuffer_keeps_nearest_and_drops_behind_and_outside():
    cam = PinholeCamera(10, 10, [[10, 0, 4.0], [0, 10, 4.0], [0, 0, 1]])
    pts = np.array([[0, 0, 5.0], [0, 0, 2.0], [0, 0, 9.0],   # same pixel: nearest (2.0) wins
                    [0, 0, -3.0],                          # behind the camera
                    [100, 0, 1.0]], np.float32)            # outside the image
    d = sparse_depth_image(pts, np.eye(4), cam)
    assert d[4, 4] == pytest.approx(2.0)
    assert np.isfinite(d).sum() == 1


def test_projected_lidar_matches_ground_truth(scene):
    sim, f, sweep, pts, sparse = scene
    ok = np.isfinite(sparse) & np.isfinite(f.depth_gt)
    assert ok.sum() > 500
    assert np.median(np.abs(sparse[ok] - f.depth_gt[ok])) < 0.03


def test_completion_beats_nearest_neighbour_on_held_out_points(scene):
    from scipy.interpolate import griddata
    sim, f, sweep, pts, sparse = scene
    rng = np.random.default_rng(0)
    measured = np.argwhere(np.isfinite(sparse))
    held = measured[rng.random(len(measured)) < 0.2]
    inp = sparse.copy()
    inp[held[:, 0], held[:, 1]] = np.nan
    truth = f.depth_gt[held[:, 0], held[:, 1]]
    kept = np.argwhere(np.isfinite(inp))
    nn = griddata(kept, inp[kept[:, 0], kept[:, 1]], held, method='nearest')
    for method in ('classical', 'guided'):
        dense = complete(inp, method, f.left_rgb)
        ours = dense[held[:, 0], held[:, 1]]
        ok = np.isfinite(ours) & np.isfinite(truth)
        rmse = np.sqrt(np.mean((ours[ok] - truth[ok]) ** 2))
        rmse_nn = np.sqrt(np.mean((nn[ok] - truth[ok]) ** 2))
        assert rmse < 0.9 * rmse_nn, (method, rmse, rmse_nn)


def test_fused_lidar_and_stereo_beats_each_alone(scene):
    sim, f, sweep, pts, sparse = scene
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb)]
    st = StereoMatcher(StereoParams(disparity_range=64)).compute(*grey)
    sd = sim.stereo.disparity_to_depth(st.disparity)
    r = fuse_sparse(sparse, f.left_rgb, FusionSettings('guided'),
                    stereo=StereoInput(sd, sim.stereo.focal, sim.stereo.baseline, st.confidence))
    both = np.isfinite(sd) & np.isfinite(r.lidar_depth)
    fused = depth_metrics(r.depth, f.depth_gt, both)['rmse']
    assert fused < depth_metrics(sd, f.depth_gt, both)['rmse']
    assert fused < depth_metrics(r.lidar_depth, f.depth_gt, both)['rmse']
    assert r.sources == ('lidar', 'stereo')
    assert np.nanmax(r.sigma[both] - np.minimum(r.lidar_sigma, 1e9)[both]) <= 1e-5  # fusing never adds sigma


def test_inverse_variance_closed_form():
    d, s = fuse_inverse_variance([np.array([[1.0, np.nan]]), np.array([[3.0, 2.0]])],
                                 [np.array([[1.0, 1.0]]), np.array([[1.0, 0.5]])])
    assert d[0, 0] == pytest.approx(2.0) and s[0, 0] == pytest.approx(1 / np.sqrt(2))
    assert d[0, 1] == pytest.approx(2.0) and s[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match='differ in size'):
        fuse_inverse_variance([np.zeros((2, 2))], [np.zeros((3, 3))])
    # a source counts only where depth and sigma are finite and positive
    a = np.array([[2.0, 2.0, 2.0, 2.0, np.inf, -1.0, 2.0]], np.float32)
    sa = np.array([[0.0, -1.0, np.nan, np.inf, 1.0, 1.0, 1.0]], np.float32)
    b = np.array([[4.0, 4.0, 4.0, 4.0, 4.0, 4.0, np.nan]], np.float32)
    d, s = fuse_inverse_variance([a, b], [sa, np.full_like(b, 2.0)])
    np.testing.assert_allclose(d[0, :6], 4.0)
    np.testing.assert_allclose(s[0, :6], 2.0)
    assert d[0, 6] == pytest.approx(2.0) and s[0, 6] == pytest.approx(1.0)
    d, s = fuse_inverse_variance([np.full((2, 2), np.nan, np.float32)], [np.ones((2, 2), np.float32)])
    assert np.isnan(d).all() and np.isnan(s).all() and d.dtype == np.float32


def test_fit_fusion_command_reproduces_the_shipped_sigma_defaults():
    from depthmarks_ros.cli.fit_fusion import collect_samples
    fitted = fit_sigma_model(collect_samples(4, 'classical')).to_dict()   # = depthmarks fit-fusion --frames 4 --completion classical
    for name, shipped in SigmaModel().to_dict().items():
        assert fitted[name] == pytest.approx(shipped, rel=0.03), name


def test_learned_sigma_model_recovers_noise_and_round_trips(tmp_path):
    from depthmarks_ros.core.fusion.uncertainty import lidar_sigma
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:120, 0:160]
    gt = (3.0 + 0.02 * xx + 0.01 * yy).astype(np.float32)          # a smooth slanted wall
    dist = rng.uniform(0, 10, gt.shape).astype(np.float32)
    true_sigma = np.sqrt(0.05 ** 2 + (0.01 * dist * gt) ** 2)
    lidar = (gt + rng.standard_normal(gt.shape) * true_sigma).astype(np.float32)
    model = fit_sigma_model([{'gt': gt, 'lidar': lidar, 'lidar_dist': dist}], steps=400)
    predicted = lidar_sigma(lidar, dist, model)
    ratio = np.median(predicted / true_sigma)
    assert 0.75 < ratio < 1.33
    assert np.corrcoef(predicted.ravel(), true_sigma.ravel())[0, 1] > 0.9
    untrained = lidar_sigma(lidar, dist, SigmaModel(lidar_a=0.0, lidar_c=0.0))
    assert np.corrcoef(untrained.ravel(), true_sigma.ravel())[0, 1] < 0.9  # the fit is what makes it right
    save_model(model, str(tmp_path / 'm.json'))
    assert load_model(str(tmp_path / 'm.json')) == model


def test_sigma_is_roughly_honest_on_held_out_points(scene):
    sim, f, sweep, pts, sparse = scene
    r = fuse_sparse(sparse, f.left_rgb, FusionSettings('guided'))
    cal = sigma_calibration(r.depth, r.sigma, f.depth_gt)
    assert 0.5 < cal['within_1sigma'] <= 1.0 and cal['within_2sigma'] > cal['within_1sigma']


def test_kitti_formats(tmp_path):
    d = np.array([[0.0, 1.5], [80.0, np.nan]], np.float32)
    kitti.write_depth_png(str(tmp_path / 'd.png'), d)
    back = kitti.read_depth_png(str(tmp_path / 'd.png'))
    assert np.isnan(back[0, 0]) and back[0, 1] == pytest.approx(1.5) and back[1, 0] == pytest.approx(80.0)
    calib = tmp_path / 'c.txt'
    calib.write_text('P2: ' + ' '.join(['1'] * 12) + '\nR0_rect: 1 0 0 0 1 0 0 0 1\n')
    with pytest.raises(Exception, match='Tr_velo_to_cam'):
        kitti.read_calib(str(calib))


def test_fuse_kitti_command_on_synthetic_kitti_layout(tmp_path, scene):
    from depthmarks_ros.cli.main import main
    sim, f, sweep, pts, sparse = scene
    root = tmp_path / 'kitti'
    for sub in ('image_2', 'velodyne', 'calib'):
        os.makedirs(root / sub)
    cv2.imwrite(str(root / 'image_2' / '000007.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
    np.hstack([pts, sweep['intensity'][:, None]]).astype(np.float32).tofile(root / 'velodyne' / '000007.bin')
    T = sim.rig.transform('lidar', 'left')
    P = sim.stereo.left.P
    with open(root / 'calib' / '000007.txt', 'w') as fh:
        fh.write('P2: ' + ' '.join(f'{x:.9e}' for x in P.ravel()) + '\n')
        fh.write('R0_rect: 1 0 0 0 1 0 0 0 1\n')
        fh.write('Tr_velo_to_cam: ' + ' '.join(f'{x:.9e}' for x in T[:3].ravel()) + '\n')
    assert main(['fuse-kitti', str(root), '-o', str(tmp_path / 'out')]) == 0
    depth = kitti.read_depth_png(str(tmp_path / 'out' / '000007.png'))
    ok = np.isfinite(depth) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.5 and np.median(np.abs(depth[ok] - f.depth_gt[ok])) < 0.1


# --------------------------------------------------------------------------------- node over DDS
def _inputs(sim, f, sweep, stamp, frame='lidar_link'):
    img = numpy_to_image(f.left_rgb, 'rgb8')
    img.header.stamp, img.header.frame_id = stamp, 'left_camera_optical_frame'
    info = info_from_camera(sim.stereo.left, img.header)
    cloud = array_to_cloud(sweep)
    cloud.header.stamp.sec, cloud.header.stamp.nanosec = stamp.sec, stamp.nanosec
    cloud.header.frame_id = frame
    return img, info, cloud


@pytest.mark.dds
def test_node_fuses_and_drops_bad_inputs(probe, scene):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    sim, f, sweep, pts, sparse = scene
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
    for arr in (empty, nan_pts, no_xyz):
        img, info, _ = _inputs(sim, f, sweep, now())
        c = array_to_cloud(arr)
        c.header.stamp, c.header.frame_id = img.header.stamp, 'lidar_link'
        bad.append((img, info, c))
    bad.append(_inputs(sim, f, sweep, now(), frame='some_other_frame'))   # unknown frame
    img, info, cloud = _inputs(sim, f, sweep, now())
    info.k = [0.0] * 9                                                    # missing calibration
    bad.append((img, info, cloud))
    for b in bad:
        send(*b)
    assert depth == [] and node.stats.errors >= len(bad)
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


@pytest.mark.dds
def test_node_process_publishes_with_sim_rig_and_exits_cleanly(probe):
    out = probe.subscribe(Image, 'fusion/depth')
    with NodeProcess('sim_rig', params={'rate': 5.0, 'lidar_rate': 5.0, 'width': 320, 'height': 240}) as sim, \
            NodeProcess('depth_fusion', params={'time_tolerance': 0.25}) as fusion:
        assert probe.spin_until(lambda: len(out) >= 2, 40), fusion.output + sim.output
        assert fusion.stop() == 0, fusion.output
    assert out[-1].encoding == '32FC1'


def _scanline_scene():
    """A floor (nearer downwards), a back wall at 20 m and a box at 5 m whose sides lie between two
    returns; LiDAR-like returns on every 4th row, every 2nd column (scan lines along image rows),
    2 cm noise."""
    h, w = 120, 200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = np.where(yy > 60, 300.0 / np.maximum(yy - 45.0, 1.0), 20.0).astype(np.float32)
    box = (xx >= 71) & (xx < 130) & (yy >= 30) & (yy < 100)
    truth[box] = 5.0
    rng = np.random.default_rng(3)
    sparse = np.full((h, w), np.nan, np.float32)
    scan = (yy % 4 == 1) & (xx % 2 == 0)
    sparse[scan] = truth[scan] + rng.normal(0, 0.02, int(scan.sum())).astype(np.float32)
    return truth, sparse, box


def test_scanline_completion_beats_classical_and_keeps_edges_sharp():
    truth, sparse, box = _scanline_scene()
    rng = np.random.default_rng(0)
    measured = np.argwhere(np.isfinite(sparse))
    held = measured[rng.random(len(measured)) < 0.2]
    inp = sparse.copy()
    inp[held[:, 0], held[:, 1]] = np.nan
    # away from depth edges (where which side a hidden return belongs to is a coin toss for any
    # method) interpolation along the scan line beats IP-Basic's near-preferring minimum filter
    from depthmarks_ros.core.fusion.uncertainty import local_range
    smooth = local_range(truth)[held[:, 0], held[:, 1]] < 1.0
    err = {}
    for method in ('classical', 'scanline'):
        dense = complete(inp, method)
        e = np.abs(dense[held[:, 0], held[:, 1]] - truth[held[:, 0], held[:, 1]])
        err[method] = (np.sqrt(np.mean(e[smooth] ** 2)), np.median(e), dense)
    assert smooth.mean() > 0.6
    assert err['scanline'][0] < 0.5 * err['classical'][0], err
    assert err['scanline'][1] < err['classical'][1], err
    dense = err['scanline'][2]
    kept = np.isfinite(inp)
    np.testing.assert_array_equal(dense[kept], inp[kept])          # measurements are kept as they are
    # no invented depth between the box (5 m) and the wall (20 m) along the box's side edges
    rows = slice(32, 58)
    band = dense[rows, 60:140]
    assert np.isfinite(band).all()
    assert not ((band > 5.5) & (band < 19.0)).any()
    # and the edge is where the box is (transitions after columns 70 and 129), within the 2-pixel spacing
    edge_cols = np.nonzero(np.abs(np.diff((band < 12).astype(int), axis=1)).any(axis=0))[0] + 60
    assert set(edge_cols) <= set(range(68, 73)) | set(range(127, 132)), edge_cols


def test_scanline_completion_edge_cases():
    from depthmarks_ros.core.fusion.completion import complete_scanline
    assert np.isnan(complete_scanline(np.full((5, 6), np.nan, np.float32))).all()
    one = np.full((5, 6), np.nan, np.float32)
    one[2, 3] = 4.0
    out = complete_scanline(one)
    assert np.nanmin(out) == np.nanmax(out) == pytest.approx(4.0) and np.isfinite(out).all()
    bad = np.array([[0.0, -1.0, np.inf, 2.0]], np.float32)        # non-positive / inf: no measurement
    out = complete_scanline(bad, max_depth=100.0)
    assert np.allclose(out, 2.0)
    with pytest.raises(ValueError, match='scanline'):
        complete(one, 'nope')


def test_fit_fusion_on_real_data_layouts_fits_the_fit_split_only(tmp_path, scene):
    """`fit-fusion --kitti --kitti-stereo` on KITTI-layout folders made from the simulated rig: only
    the fit-split frames (sha1 rule) are used and recorded, and each source is calibrated on its own
    (68.3 % of its fitting errors within 1 sigma)."""
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.fusion import real_data as R
    from depthmarks_ros.core.fusion.uncertainty import lidar_sigma, stereo_sigma
    from depthmarks_ros.core.stereo.io import write_disparity_png
    sim, f, sweep, pts, sparse = scene
    assert R.in_report_split('000007') and not R.in_report_split('000003')
    root, sroot = tmp_path / 'kitti', tmp_path / 'kitti2012'
    for sub in ('image_2', 'velodyne', 'calib'):
        os.makedirs(root / sub)
    for sub in ('image_0', 'image_1', 'disp_noc'):
        os.makedirs(sroot / sub)
    T, P = sim.rig.transform('lidar', 'left'), sim.stereo.left.P
    for stem in ('000003', '000007'):                              # fit, report
        cv2.imwrite(str(root / 'image_2' / f'{stem}.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2BGR))
        np.hstack([pts, sweep['intensity'][:, None]]).astype(np.float32).tofile(root / 'velodyne' / f'{stem}.bin')
        with open(root / 'calib' / f'{stem}.txt', 'w') as fh:
            fh.write('P2: ' + ' '.join(f'{x:.9e}' for x in P.ravel()) + '\nR0_rect: 1 0 0 0 1 0 0 0 1\n')
            fh.write('Tr_velo_to_cam: ' + ' '.join(f'{x:.9e}' for x in T[:3].ravel()) + '\n')
    for stem in ('000003_10', '000007_10'):                        # fit, report
        cv2.imwrite(str(sroot / 'image_0' / f'{stem}.png'), cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2GRAY))
        cv2.imwrite(str(sroot / 'image_1' / f'{stem}.png'), cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2GRAY))
        write_disparity_png(str(sroot / 'disp_noc' / f'{stem}.png'), f.disparity_gt)
    out = tmp_path / 'm.json'
    assert main(['fit-fusion', '--kitti', str(root), '--kitti-stereo', str(sroot), '--completion', 'scanline',
                 '--steps', '150', '--hold-out-seeds', '2', '-o', str(out)]) == 0
    import json
    doc = json.loads(out.read_text())
    assert doc['provenance']['lidar']['fit_frames'] == ['000003']
    assert doc['provenance']['stereo']['fit_frames'] == ['000003_10']
    assert 'sha1' in doc['provenance']['split_rule'] and '--kitti-stereo' in doc['provenance']['command']
    model = load_model(str(out))
    assert model.sigma_scale == 1.0
    samples, _ = __import__('depthmarks_ros.cli.fit_fusion', fromlist=['x']).collect_real_samples(
        str(root), str(sroot), 'scanline', 2)
    for smp in samples:
        if 'lidar' in smp:
            sig = lidar_sigma(smp['lidar'], smp['lidar_dist'], model)
            cal = sigma_calibration(smp['lidar'], sig, smp['gt'])
        else:
            sig = stereo_sigma(smp['stereo'], smp['stereo_conf'], smp['fb'], 1.0, model)
            cal = sigma_calibration(smp['stereo'], sig, smp['gt'])
        assert 0.6 < cal['within_1sigma'] < 0.76, cal                # each source calibrated on its own


def test_shipped_kitti_sigma_model_was_fitted_on_the_fit_split_only():
    import json
    from depthmarks_ros.core.fusion import real_data as R
    path = R.SHIPPED_KITTI_MODEL
    doc = json.load(open(path))
    model = load_model(path)
    assert model.lidar_c > 0 and model.stereo_sigma_d > 0
    frames = doc['provenance']['lidar']['fit_frames'] + doc['provenance']['stereo']['fit_frames']
    assert frames and not any(R.in_report_split(s) for s in frames)
    assert doc['provenance']['split_rule'] == R.SPLIT_RULE
    assert os.path.getsize(path) < 100_000
