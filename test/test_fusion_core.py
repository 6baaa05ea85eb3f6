"""LiDAR-camera fusion, core (ROS-free): projection, completion (classical, guided, scanline), the
sigma model and inverse-variance fusion on the simulated rig's truth (the ``fusion_scene``
fixture), KITTI formats, the shipped KITTI sigma model."""
import os

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.core.fusion import kitti
from depthmarks_ros.core.fusion.combine import fuse_inverse_variance
from depthmarks_ros.core.fusion.completion import complete
from depthmarks_ros.core.fusion.learned import fit_sigma_model, load_model, save_model
from depthmarks_ros.core.fusion.metrics import depth_metrics, sigma_calibration
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_sparse
from depthmarks_ros.core.fusion.projection import sparse_depth_image
from depthmarks_ros.core.fusion.real_data import hold_out
from depthmarks_ros.core.fusion.uncertainty import SigmaModel
from depthmarks_ros.core.stereo import StereoMatcher, StereoParams


def test_zbuffer_keeps_nearest_and_drops_behind_and_outside():
    cam = PinholeCamera(10, 10, [[10, 0, 4.0], [0, 10, 4.0], [0, 0, 1]])
    pts = np.array([[0, 0, 5.0], [0, 0, 2.0], [0, 0, 9.0],   # same pixel: nearest (2.0) wins
                    [0, 0, -3.0],                          # behind the camera
                    [100, 0, 1.0]], np.float32)            # outside the image
    d = sparse_depth_image(pts, np.eye(4), cam)
    assert d[4, 4] == pytest.approx(2.0)
    assert np.isfinite(d).sum() == 1


def test_projected_lidar_matches_ground_truth(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
    ok = np.isfinite(sparse) & np.isfinite(f.depth_gt)
    assert ok.sum() > 500
    assert np.median(np.abs(sparse[ok] - f.depth_gt[ok])) < 0.03


def test_completion_beats_nearest_neighbour_on_held_out_points(fusion_scene):
    from scipy.interpolate import griddata
    sim, f, sweep, pts, sparse = fusion_scene
    inp, mask = hold_out(sparse, 0.2, seed=0)
    held = np.argwhere(mask)
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


def test_fused_lidar_and_stereo_beats_each_alone(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
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
    # without the sources' spread (and the fused sigma's edge term and scale), fusing never adds sigma; with
    # them (the default) the fused sigma is at least that and grows where the two disagree by more than
    # their sigmas (the stereo sigma times its fusion factor)
    from depthmarks_ros.core.fusion.uncertainty import SigmaModel, stereo_sigma
    plain = fuse_sparse(sparse, f.left_rgb, FusionSettings('guided', SigmaModel(fused_edge=0.0, fused_scale=1.0),
                                                           spread=False),
                        stereo=StereoInput(sd, sim.stereo.focal, sim.stereo.baseline, st.confidence))
    np.testing.assert_array_equal(plain.depth, r.depth)
    assert np.nanmax(plain.sigma[both] - np.minimum(r.lidar_sigma, 1e9)[both]) <= 1e-5
    assert np.all(r.sigma[both] >= plain.sigma[both] * (1 - 1e-6))
    # the spread adds gap^2 / (sigma_lidar^2 + sigma_stereo^2) times the plain variance
    s_st = stereo_sigma(sd, st.confidence, sim.stereo.focal, sim.stereo.baseline, SigmaModel()) * \
        SigmaModel().stereo_fuse_factor
    gap = np.abs(r.lidar_depth - sd)[both]
    wide = gap > 3 * np.hypot(r.lidar_sigma, s_st)[both]
    assert wide.any() and np.all(r.sigma[both][wide] > 3 * plain.sigma[both][wide])


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


def test_fused_sigma_holds_the_sources_spread():
    depths = [np.array([[1.0, 2.0, 5.0]], np.float32), np.array([[3.0, 2.0, np.nan]], np.float32)]
    sigmas = [np.ones((1, 3), np.float32), np.ones((1, 3), np.float32)]
    d, s = fuse_inverse_variance(depths, sigmas, spread=True)
    # 1 and 3 (sigma 1 each): mean 2, variance 1/2 + (1 * 1 + 1 * 1) / 2
    assert d[0, 0] == pytest.approx(2.0) and s[0, 0] == pytest.approx(np.sqrt(1.5))
    assert s[0, 1] == pytest.approx(1 / np.sqrt(2))          # agreeing sources: as without the spread
    assert s[0, 2] == pytest.approx(1.0)                     # one source: its own sigma
    # unequal weights: sum w (D_i - D)^2 / sum w
    d, s = fuse_inverse_variance([np.array([[0.0 + 10]]), np.array([[4.0 + 10]])],
                                 [np.array([[1.0]]), np.array([[2.0]])], spread=True)
    w = np.array([1.0, 0.25])
    mean = (w * [10, 14]).sum() / w.sum()
    assert d[0, 0] == pytest.approx(mean, rel=1e-6)
    assert s[0, 0] ** 2 == pytest.approx(1 / w.sum() + (w * (np.array([10, 14]) - mean) ** 2).sum() / w.sum(), rel=1e-5)


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


def test_sigma_is_roughly_honest_on_held_out_points(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
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
    inp, mask = hold_out(sparse, 0.2, seed=0)
    held = np.argwhere(mask)
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


def test_shipped_kitti_sigma_model_was_fitted_on_the_fit_split_only():
    import json
    from depthmarks_ros.core.fusion import real_data as R
    path = R.SHIPPED_KITTI_MODEL
    doc = json.load(open(path))
    model = load_model(path)
    assert model.lidar_k > 0 and model.stereo_sigma_d > 0
    frames = doc['provenance']['lidar']['fit_frames'] + doc['provenance']['stereo']['fit_frames']
    assert frames and not any(R.in_report_split(s) for s in frames)
    assert doc['provenance']['split_rule'] == R.SPLIT_RULE
    assert os.path.getsize(path) < 100_000


def test_camera_visibility_filter_drops_returns_seen_past_a_nearer_edge():
    from depthmarks_ros.core.fusion.projection import camera_visible, visibility_filter
    sp = np.full((40, 80), np.nan, np.float32)
    sp[10, 20:41:2] = 5.0                     # a near surface: two scan lines 5 px apart, columns 20-40
    sp[15, 20:41:2] = 5.1
    sp[12, 31] = 20.0                         # background seen past its edge, among its pixels
    sp[12, 50] = 20.0                         # background beside it: the camera sees it
    sp[20:24, 60] = [10.0, 10.2, 10.4, 10.6]  # a sloped surface (ground): nearer rows do not hide it
    vis = camera_visible(sp, 5, 3)
    assert not vis[12, 31]
    assert vis[12, 50] and vis[10, 20:41:2].all() and vis[15, 20:41:2].all() and vis[20:24, 60].all()
    assert not vis[~np.isfinite(sp)].any()
    out = visibility_filter(sp, 5, 3)
    assert np.isnan(out[12, 31]) and np.array_equal(np.isfinite(out), vis) and np.isfinite(sp[12, 31])
    assert visibility_filter(sp, 0) is sp                                  # off
    assert not camera_visible(np.full((5, 5), np.nan, np.float32), 3).any()  # no return at all
    with pytest.raises(ValueError, match='odd'):
        camera_visible(sp, 4, 3)
    # in the fusion step the dropped return does not reach the completion (nor fusion/sparse_depth)
    r = fuse_sparse(sp, None, FusionSettings('scanline', visibility_rows=5))
    assert np.isnan(r.sparse[12, 31]) and abs(r.lidar_depth[12, 31] - 5.0) < 0.2
    assert fuse_sparse(sp, None, FusionSettings('scanline')).lidar_depth[12, 31] == 20.0


def test_camera_visibility_filter_on_the_simulated_rig(fusion_scene):
    """The rig's LiDAR sits above the camera and sees past its occluders: the returns farther than the
    camera's exact depth are the see-through ones; the filter drops most of them and few others."""
    from depthmarks_ros.core.fusion.projection import camera_visible
    _sim, f, _sw, _pts, sp = fusion_scene
    fin = np.isfinite(sp)
    see_through = fin & (sp - f.depth_gt > 0.3)
    vis = camera_visible(sp, 5, 3)
    assert see_through.sum() > 50
    assert (see_through & ~vis).sum() >= 0.6 * see_through.sum()
    assert (fin & ~see_through & ~vis).sum() <= 0.01 * (fin & ~see_through).sum()


def test_one_source_passes_through_where_it_counts():
    """One source: its own depth and sigma, bit for bit, where depth and sigma are usable (finite,
    positive, weight finite and positive); NaN elsewhere, as with two sources."""
    d = np.array([[2.0, np.nan, -1.0, 5.0, 7.0, 3.0]], np.float32)
    s = np.array([[0.1, 0.1, 0.1, 0.0, 1e-30, np.inf]], np.float32)
    fd, fs = fuse_inverse_variance([d], [s])
    assert fd.dtype == fs.dtype == np.float32
    assert fd[0, 0] == d[0, 0] and fs[0, 0] == s[0, 0]
    assert np.isnan(fd[0, 1:]).all() and np.isnan(fs[0, 1:]).all()
    # the same pixels count when a second source has nothing anywhere
    nothing = np.full(d.shape, np.nan, np.float32)
    gd, gs = fuse_inverse_variance([d, nothing], [s, np.ones_like(s)])
    assert np.array_equal(np.isfinite(gd), np.isfinite(fd)) and np.array_equal(np.isfinite(gs), np.isfinite(fs))
