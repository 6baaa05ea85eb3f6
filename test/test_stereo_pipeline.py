"""Stereo's per-frame chain in core (rectified camera views, cached rectification, pluggable matcher
backends, depth and organised points) and the organised / dense point cloud layouts of
stereo/points and fusion/points."""
import cv2
import numpy as np
import pytest
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import array_to_cloud, cloud_to_array, points_cloud
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.camera import CalibrationError, PinholeCamera, StereoCamera
from depthmarks_ros.core.sim import SimConfig, SimRig
from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
from depthmarks_ros.core.stereo.backend import StereoBackend, backend_names, create_backend, register_backend
from depthmarks_ros.core.stereo.metrics import disparity_metrics
from depthmarks_ros.core.stereo.params import create_opencv_matcher
from depthmarks_ros.core.stereo.pipeline import StereoPipeline, cameras_from_focal_baseline
from depthmarks_ros.testing.scenes import start_stereo_node


@pytest.fixture(scope='module')
def rig():
    s = SimRig(SimConfig(width=320, height=240, image_noise=1.0, seed=3))
    return s, s.render(0.0)


def _distort(rect_img, cam, D):
    """The raw image a camera with distortion ``D`` would see of a rectified image."""
    raw_cam = PinholeCamera(cam.width, cam.height, cam.K, D, np.eye(3), cam.P, frame_id=cam.frame_id)
    uu, vv = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
    rect = raw_cam.rectify_points(np.stack([uu.ravel(), vv.ravel()], 1)).reshape(cam.height, cam.width, 2)
    return cv2.remap(rect_img, rect[..., 0].astype(np.float32), rect[..., 1].astype(np.float32),
                     cv2.INTER_LINEAR), raw_cam


def test_rectified_view_and_rectifier():
    K = [[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]]
    P = [[280.0, 0, 150, -28.0], [0, 280.0, 118, 0], [0, 0, 1, 0]]
    R = cv2.Rodrigues(np.array([0.0, 0.02, 0.0]))[0]
    raw = PinholeCamera(320, 240, K, [-0.2, 0.05, 0, 0, 0], R, P, frame_id='cam', name='right')
    rect = raw.rectified()
    assert not raw.is_rectified and rect.is_rectified
    np.testing.assert_array_equal(rect.K, raw.P[:, :3])
    np.testing.assert_array_equal(rect.P, raw.P)  # Tx kept: a rectified right camera stays a right camera
    assert (rect.D == 0).all() and np.allclose(rect.R, np.eye(3))
    assert (rect.frame_id, rect.name, rect.size) == ('cam', 'right', (320, 240))
    img = np.random.default_rng(0).integers(0, 255, (240, 320), dtype=np.uint8)
    m1, m2 = raw.rectify_maps()
    np.testing.assert_array_equal(raw.rectifier()(img), cv2.remap(img, m1, m2, cv2.INTER_LINEAR))
    assert rect.rectifier()(img) is img  # nothing to do: no copy
    with pytest.raises(CalibrationError, match='320x240'):
        raw.rectifier()(img[:100])
    assert raw.calibration_key() != rect.calibration_key()
    assert raw.calibration_key() == PinholeCamera(320, 240, K, [-0.2, 0.05, 0, 0, 0], R, P).calibration_key()


def test_chain_rectifies_raw_input_and_gives_depth_and_organised_points(rig):
    s, f = rig
    D = np.array([-0.15, 0.02, 0.0, 0.0, 0.0])
    (lraw, lcam), (rraw, rcam) = _distort(f.left_rgb, s.stereo.left, D), _distort(f.right_rgb, s.stereo.right, D)
    chain = StereoPipeline('opencv', StereoParams(disparity_range=64))
    out = chain.process(cv2.cvtColor(lraw, cv2.COLOR_RGB2GRAY), cv2.cvtColor(rraw, cv2.COLOR_RGB2GRAY),
                        (lcam, rcam), points=True, left_colour=lraw)
    ok = np.isfinite(out.depth) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.5 and np.median(np.abs(out.depth[ok] - f.depth_gt[ok])) < 0.05
    assert out.camera.is_rectified and out.stereo.baseline == pytest.approx(s.stereo.baseline)
    assert out.points.shape == (240, 320, 3) and out.colour.shape == (240, 320, 3)
    np.testing.assert_array_equal(np.isnan(out.points[..., 2]), np.isnan(out.depth))
    np.testing.assert_allclose(out.points, out.camera.depth_to_points(out.depth))
    # the colour is rectified like the disparity: it matches the undistorted left image
    assert np.abs(out.colour[40:200, 40:280].astype(int) - f.left_rgb[40:200, 40:280]).mean() < 6
    assert set(out.timing) == {'prepare', 'match', 'outputs', 'match_cpu'}
    # the same chain, same backend as the plain matcher on an already rectified pair
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    direct = chain.process(L, R, (s.stereo.left, s.stereo.right), confidence=False, depth=False)
    ref = StereoMatcher(StereoParams(disparity_range=64)).compute(L, R)
    np.testing.assert_array_equal(direct.disparity, ref.disparity)
    assert direct.confidence is None and direct.depth is None and direct.points is None
    with pytest.raises(CalibrationError, match='calibration is for'):
        chain.process(L[:200], R[:200], (s.stereo.left, s.stereo.right))
    with pytest.raises(ValueError, match='differ in size'):
        chain.process(L, R[:200])
    chain.close()


class _TruthBackend(StereoBackend):
    """A backend that knows the answer (tests the interface, not a matcher)."""
    name = 'truth'

    def __init__(self, params=None, threads=2, disparity=None, shape_error=False):
        super().__init__(params)
        self.disparity, self.shape_error, self.calls = disparity, shape_error, []

    def compute(self, left, right, confidence=True):
        self.calls.append((left.shape, left.dtype, confidence))
        return self.disparity[:10] if self.shape_error else self.disparity.copy()


def test_a_backend_plugs_into_the_chain_by_instance_or_name(rig):
    s, f = rig
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    truth = _TruthBackend(disparity=f.disparity_gt)
    out = StereoPipeline(truth).process(L, R, (s.stereo.left, s.stereo.right))
    assert truth.calls == [((240, 320), np.uint8, True)]
    ok = np.isfinite(out.depth) & np.isfinite(f.depth_gt)
    assert ok.sum() > 0.95 * np.isfinite(f.depth_gt).sum()
    assert np.nanmax(np.abs(out.depth[ok] - f.depth_gt[ok]) / f.depth_gt[ok]) < 1e-3
    # no confidence from the backend: the texture term, 0 where invalid
    assert out.confidence is not None and (out.confidence[~np.isfinite(out.disparity)] == 0).all()
    assert out.valid_window == (0, 0, 320, 240)
    with pytest.raises(ValueError, match='returned a'):
        StereoPipeline(_TruthBackend(disparity=f.disparity_gt, shape_error=True)).process(L, R)
    register_backend('truth_test', lambda params, threads, **kw: _TruthBackend(params, threads, **kw))
    assert 'truth_test' in backend_names() and 'opencv' in backend_names()
    named = create_backend('truth_test', StereoParams(disparity_range=64), disparity=f.disparity_gt)
    assert named.params.disparity_range == 64 and named.max_disparity == 63
    with pytest.raises(ValueError, match='known: opencv'):
        create_backend('no_such_backend')


def test_chain_with_focal_and_baseline_only(rig):
    s, f = rig
    lcam, rcam = cameras_from_focal_baseline(320, 240, s.stereo.focal, s.stereo.baseline)
    assert StereoCamera(lcam, rcam).baseline == pytest.approx(s.stereo.baseline) and lcam.is_rectified
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    out = StereoPipeline(params=StereoParams(disparity_range=64)).process(L, R, (lcam, rcam))
    assert disparity_metrics(out.disparity, f.disparity_gt)['bad2'] < 0.03
    ok = np.isfinite(out.depth) & np.isfinite(f.depth_gt)
    assert np.median(np.abs(out.depth[ok] - f.depth_gt[ok])) < 0.05
    with pytest.raises(CalibrationError):
        cameras_from_focal_baseline(320, 240, 300.0, 0.0)


def test_point_cloud_layouts():
    pts = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    pts[1, 2] = np.nan
    rgb = np.full((4, 5, 3), 7, np.uint8)
    org = points_cloud(pts, rgb, layout='organized')
    assert (org.height, org.width, org.is_dense, org.row_step) == (4, 5, False, 5 * 16)
    back = cloud_to_array(org, flatten=False)
    assert back.shape == (4, 5) and np.isnan(back['x'][1, 2]) and back['z'][3, 4] == pts[3, 4, 2]
    dense = points_cloud(pts, rgb, layout='dense')
    assert (dense.height, dense.width, dense.is_dense) == (1, 19, True)
    np.testing.assert_array_equal(cloud_to_array(dense)['y'], pts[np.isfinite(pts).all(2)][:, 1])
    with pytest.raises(ValueError, match='layout'):
        points_cloud(pts, rgb, layout='unorganised')


@pytest.mark.dds
def test_stereo_node_points_organised_by_default_dense_by_parameter(probe, rig):
    s, f = rig
    node, pubs = start_stereo_node(probe, disparity_range=64)
    points = probe.subscribe(PointCloud2, 'stereo/points', node.output_qos())
    probe.spin_until(lambda: node.pub_points.get_subscription_count() > 0, 5)

    def one_cloud():
        points.clear()
        for _ in range(20):
            stamp = node.get_clock().now().to_msg()
            for p, m in zip(pubs, (numpy_to_image(f.left_rgb, 'rgb8'), info_from_camera(s.stereo.left),
                                   numpy_to_image(f.right_rgb, 'rgb8'), info_from_camera(s.stereo.right))):
                m.header.stamp = stamp
                p.publish(m)
            if probe.spin_until(lambda: points, 0.5):
                return points[-1]
        raise AssertionError('no stereo/points')

    org = one_cloud()
    assert (org.height, org.width, org.is_dense) == (240, 320, False)
    arr = cloud_to_array(org, flatten=False)
    valid = np.isfinite(arr['z'])
    assert 0.5 < valid.mean() < 1
    ok = valid & np.isfinite(f.depth_gt)
    assert np.median(np.abs(arr['z'][ok] - f.depth_gt[ok])) < 0.05  # pixel (v, u) holds the point of (v, u)
    assert node.set_parameters([Parameter('points_layout', value='dense')])[0].successful
    assert not node.set_parameters([Parameter('points_layout', value='sparse')])[0].successful
    dense = one_cloud()
    assert dense.height == 1 and dense.is_dense and abs(dense.width - valid.sum()) < 0.05 * valid.sum()
    assert np.isfinite(cloud_to_array(dense)['z']).all()
    # the backend is switched at run time; an unknown one is refused
    assert not node.set_parameters([Parameter('backend', value='no_such')])[0].successful
    assert node.set_parameters([Parameter('backend', value='opencv')])[0].successful
    assert node.chain.backend_name == 'opencv'
    z = cloud_to_array(one_cloud())['z']
    # the full-size OpenCV matcher leaves the first disparity_range columns empty, the default fills them
    assert np.isfinite(z).all() and 0.5 * valid.sum() < len(z) < valid.sum()


@pytest.mark.dds
def test_fusion_node_points_organised_by_default(probe, rig):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    s, f = rig
    sweep = s.render_lidar(0.0)
    node = DepthFusionNode(parameter_overrides=[Parameter('completion', value='classical')])
    probe.add_node(node)
    pub_img, pub_info = probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info')
    pub_cloud = probe.publisher(PointCloud2, 'lidar/points')
    points = probe.subscribe(PointCloud2, 'fusion/points', node.output_qos())
    for p in (pub_img, pub_info, pub_cloud):
        assert probe.wait_for_subscribers(p)
    probe.spin_until(lambda: node.pub_points.get_subscription_count() > 0, 5)
    for _ in range(20):
        stamp = node.get_clock().now().to_msg()
        img = numpy_to_image(f.left_rgb, 'rgb8')
        img.header.stamp, img.header.frame_id = stamp, 'left_camera_optical_frame'
        cloud = array_to_cloud(sweep)
        cloud.header.stamp, cloud.header.frame_id = stamp, 'lidar_link'
        pub_cloud.publish(cloud)
        probe.spin_for(0.05)
        pub_img.publish(img)
        pub_info.publish(info_from_camera(s.stereo.left, img.header))
        if probe.spin_until(lambda: points, 0.5):
            break
    assert points, 'no fusion/points'
    c = points[-1]
    assert (c.height, c.width) == (240, 320) and {x.name for x in c.fields} == {'x', 'y', 'z', 'rgb'}
    z = cloud_to_array(c, flatten=False)['z']
    ok = np.isfinite(z) & np.isfinite(f.depth_gt)
    assert ok.mean() > 0.6 and np.median(np.abs(z[ok] - f.depth_gt[ok])) < 0.1


def test_coarse_to_fine_backend_matches_the_full_size_matcher_on_the_rig(rig):
    from depthmarks_ros.core.stereo.coarse_to_fine import CoarseToFineBackend, half_params, refine
    s, f = rig
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    p = StereoParams(disparity_range=64)
    assert half_params(p).disparity_range == 32 and half_params(p.replace(disparity_range=80)).disparity_range == 48
    full = disparity_metrics(StereoMatcher(p).compute(L, R).disparity, f.disparity_gt)
    c2f = create_backend('coarse_to_fine', p)
    disp, conf = c2f.compute(L, R)
    m = disparity_metrics(disp, f.disparity_gt)
    assert m['bad2'] < full['bad2'] + 0.01 and m['density'] > full['density'] - 0.05 and m['epe'] < 0.6
    assert conf.shape == disp.shape and (conf[np.isnan(disp)] == 0).all() and conf.max() <= 1
    assert c2f.compute(L, R, confidence=False)[1] is None
    # odd sizes: the half-size pair is padded, the result keeps the input's size
    d_odd, _ = c2f.compute(np.ascontiguousarray(L[:239, :317]), np.ascontiguousarray(R[:239, :317]))
    assert d_odd.shape == (239, 317) and np.nanmax(np.abs(d_odd - disp[:239, :317])) < 20
    # refinement: a pixel takes a neighbour's value, never a new one; all-invalid stays invalid
    half = np.full((120, 160), np.nan, np.float32)
    half[:, :80] = 10.0
    half[:, 80:] = 20.0
    out = refine(L, R, half)
    assert set(np.unique(out[np.isfinite(out)])) <= {20.0, 40.0} and np.isnan(refine(L, R, half * np.nan)).all()
    with pytest.raises(ValueError):
        create_backend('coarse_to_fine', p, neighbourhood=4)
    c2f.set_params(p.replace(disparity_range=96))
    assert c2f.coarse.params.disparity_range == 48 and c2f.max_disparity == 95
    # through the chain, by name, as the node does
    out = StereoPipeline('coarse_to_fine', p).process(L, R, (s.stereo.left, s.stereo.right))
    assert out.delta_d == 1 / 8 and np.isfinite(out.depth).mean() > 0.6


def test_coarse_to_fine_sgm_refines_a_prior_within_its_residual_range(rig):
    from depthmarks_ros.core.stereo.coarse_to_fine_sgm import fill_rows, fine_params, prior, refine
    s, f = rig
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    p = StereoParams(disparity_range=64)
    full = disparity_metrics(StereoMatcher(p).compute(L, R).disparity, f.disparity_gt)
    b = create_backend('coarse_to_fine_sgm', p)
    disp, conf = b.compute(L, R)
    m = disparity_metrics(disp, f.disparity_gt)
    # (on this small rig frame: 2 % bad-2 vs the full-size matcher's 1 %; thin edges are lost at half size)
    assert m['bad2'] < full['bad2'] + 0.02 and m['density'] > full['density'] - 0.05 and m['epe'] < 0.6
    assert conf.shape == disp.shape and (conf[np.isnan(disp)] == 0).all() and b.delta_d == 1 / 16
    assert np.nanmin(disp) >= 0 and np.nanmax(disp) <= 63          # inside the configured range
    d_odd, _ = b.compute(np.ascontiguousarray(L[:239, :317]), np.ascontiguousarray(R[:239, :317]))
    assert d_odd.shape == (239, 317)
    # the fine search reaches the truth from a prior off by up to the residual, not from farther
    gt = f.disparity_gt
    fine = create_opencv_matcher(fine_params(p))
    ok = np.isfinite(gt)
    for off, reachable in ((-6.0, True), (9.0, True), (40.0, False)):
        d0 = np.rint(np.where(ok, gt, np.nanmedian(gt)) + off).astype(np.float32)
        out = refine(L, R, d0, fine, p)
        hit = np.abs(out - gt)[ok & np.isfinite(out)] <= 1
        assert (hit.mean() > 0.9) if reachable else (hit.mean() < 0.2), (off, hit.mean())
    # no prior in a row: that row stays invalid; halving keeps rows with a coarse value
    d0 = np.rint(np.where(ok, gt, 0)).astype(np.float32)
    d0[10:20] = np.nan
    assert np.isnan(refine(L, R, d0, fine, p)[10:20]).all()
    half = np.full((120, 160), np.nan, np.float32)
    half[5, 7] = 3.0
    assert (prior(half, (240, 320))[10:12] == 6.0).all() and np.isnan(prior(half, (240, 320))[:10]).all()
    with pytest.raises(ValueError, match='residual'):
        create_backend('coarse_to_fine_sgm', p, residual=12)
    with pytest.raises(ValueError, match='rows'):
        create_backend('coarse_to_fine_sgm', p, rows=3)
    # every row searched (rows=1) agrees with every other row searched + the rest picked (default)
    every = create_backend('coarse_to_fine_sgm', p, rows=1).compute(L, R, confidence=False)[0]
    both = np.isfinite(every) & np.isfinite(disp)
    assert both.mean() > 0.6 and np.mean(np.abs(every[both] - disp[both]) <= 1) > 0.95
    # odd rows take the neighbour row's value that matches; NaN above -> the one below
    even = np.where(ok, gt, np.nan)[::2].astype(np.float32)
    even[3, :] = np.nan
    rows = fill_rows(L, R, even)
    assert np.array_equal(rows[::2], even, equal_nan=True)
    assert np.array_equal(rows[7], even[4], equal_nan=True)          # row 7: above (row 6) is NaN
    odd = ok[1::2] & np.isfinite(rows[1::2])
    assert np.mean(np.abs(rows[1::2] - gt[1::2])[odd] <= 1) > 0.95
    b.set_params(p.replace(disparity_range=96, P1=100.0))
    assert b.coarse.params.disparity_range == 48 and b.max_disparity == 95
    out = StereoPipeline('coarse_to_fine_sgm', p).process(L, R, (s.stereo.left, s.stereo.right))
    assert np.isfinite(out.depth).mean() > 0.6


def test_coarse_to_fine_census_backend_matches_the_full_size_matcher_and_fills_the_first_columns(rig):
    from depthmarks_ros.core.stereo.coarse_to_fine_census import census, choose, coarse_candidates
    s, f = rig
    L, R = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (f.left_rgb, f.right_rgb))
    p = StereoParams(disparity_range=64)
    full = StereoMatcher(p).compute(L, R).disparity
    b = create_backend('coarse_to_fine_census', p)
    disp, conf = b.compute(L, R)
    gt = f.disparity_gt
    m, mf = disparity_metrics(disp[:, 64:], gt[:, 64:]), disparity_metrics(full[:, 64:], gt[:, 64:])
    assert m['bad2'] < mf['bad2'] + 0.01 and m['density'] > mf['density'] - 0.05 and m['epe'] < 0.6
    assert conf.shape == disp.shape and (conf[np.isnan(disp)] == 0).all() and conf.max() <= 1
    assert b.compute(L, R, confidence=False)[1] is None and b.delta_d == 1 / 8
    assert np.nanmin(disp) >= 0 and np.nanmax(disp) <= 63                  # inside the configured range
    # the left-padded half-size pair gives the first disparity_range columns a disparity, OpenCV none,
    # except where the match falls left of the right image's column 4 (out of view)
    first, truth = disp[:, :64], gt[:, :64]
    cols = np.arange(64)[None, :]
    in_view = np.isfinite(truth) & (cols - truth >= 6)
    assert np.isnan(full[:, :64]).all() and np.isfinite(first[in_view]).mean() > 0.9
    assert np.mean(np.abs(first - truth)[in_view & np.isfinite(first)] <= 2) > 0.8
    assert not (cols - first < 4).any()
    assert b.valid_window(320, 240) == (0, 0, 320, 240)
    unpadded = create_backend('coarse_to_fine_census', p, pad=False)
    assert np.isfinite(unpadded.compute(L, R, confidence=False)[0][:, :40]).mean() < 0.05
    # bands in parallel threads give exactly the single-band result
    one = create_backend('coarse_to_fine_census', p, threads=1).compute(L, R, confidence=False)[0]
    three = create_backend('coarse_to_fine_census', p, threads=3).compute(L, R, confidence=False)[0]
    assert np.array_equal(one, disp, equal_nan=True) and np.array_equal(three, disp, equal_nan=True)
    d_odd, c_odd = b.compute(np.ascontiguousarray(L[:239, :317]), np.ascontiguousarray(R[:239, :317]))
    assert d_odd.shape == c_odd.shape == (239, 317)
    # the choice: the right image is the left shifted by 6 px; of 0, 6 and 12 (and NaN) it takes 6
    tex = cv2.resize(np.random.default_rng(0).integers(0, 255, (30, 40), np.uint8), (160, 120),
                     interpolation=cv2.INTER_NEAREST)
    right = np.ascontiguousarray(np.roll(tex, -6, axis=1))
    c = [np.full(tex.shape, v, np.float32) for v in (0.0, np.nan, 6.0, 12.0)]
    got = choose(census(tex), census(right), c)
    assert (got[10:-10, 20:-20] == 6.0).all()
    got2 = choose(census(tex[::2].copy(), 2), census(right[::2].copy(), 2), [x[::2] for x in c], (11, 5))
    assert (got2[5:-5, 20:-20] == 6.0).all()
    assert np.array_equal(census(tex[::2].copy(), 2)[1:-1], census(tex)[::2][1:-1])   # same bits on the even rows
    assert np.isnan(choose(census(tex), census(right), [c[1], c[1]])).all()
    # candidates: holes filled along rows (background side), min <= own <= max over 3 x 3, doubled
    half = np.full((6, 8), 5.0, np.float32)
    half[:, 4:] = 9.0
    half[2, 3:5] = np.nan
    half[4] = np.nan
    centre, lo, hi, holes = coarse_candidates(half)
    assert centre[2, 3] == centre[2, 4] == 10.0 and lo[1, 4] == 10.0 and hi[1, 3] == 18.0
    assert np.isnan(centre[4]).all() and holes[2, 3] and holes[4].all() and not holes[0].any()
    assert (lo[:4] <= centre[:4]).all() and (centre[:4] <= hi[:4]).all()
    with pytest.raises(ValueError, match='window'):
        create_backend('coarse_to_fine_census', p, window=4)
    with pytest.raises(ValueError, match='rows'):
        create_backend('coarse_to_fine_census', p, rows=3)
    # the choice on every row agrees with the default's on every other row (each taken by the next row)
    every = create_backend('coarse_to_fine_census', p, rows=1).compute(L, R, confidence=False)[0]
    both = np.isfinite(every) & np.isfinite(disp)
    assert both.mean() > 0.85 and np.mean(np.abs(every[both] - disp[both]) <= 1) > 0.97
    assert np.array_equal(disp[1::2], disp[0:-1:2], equal_nan=True)
    b.set_params(p.replace(disparity_range=96))
    assert b.coarse.params.disparity_range == 48 and b.max_disparity == 95 and b.coarse_pad() == 48
    out = StereoPipeline('coarse_to_fine_census', p).process(L, R, (s.stereo.left, s.stereo.right))
    assert np.isfinite(out.depth).mean() > 0.6 and out.valid_window == (0, 0, 320, 240)
    for x in (b, unpadded):
        x.close()


@pytest.mark.dds
def test_stereo_node_at_100_hz_drops_old_frames_and_holds_no_backlog(probe, rig):
    """Input far above what the node can take: old frames are dropped and counted in /diagnostics;
    nothing queues (when the input stops, at most the frame in hand comes out), memory stays bounded
    (one pending frame in the worker, bounded sync queues)."""
    from diagnostic_msgs.msg import DiagnosticArray
    s, f = rig
    node, pubs = start_stereo_node(probe, disparity_range=64, diagnostics_period=0.5)
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    diag = probe.subscribe(DiagnosticArray, '/diagnostics')
    msgs = (numpy_to_image(f.left_rgb, 'rgb8'), info_from_camera(s.stereo.left),
            numpy_to_image(f.right_rgb, 'rgb8'), info_from_camera(s.stereo.right))
    # the matcher's work made 8x longer than the input period, whatever the machine's speed
    slow = node.chain.backend.compute

    def compute(*a, **kw):
        import time as _t
        _t.sleep(0.08)
        return slow(*a, **kw)
    node.chain.backend.compute = compute
    for _ in range(120):  # ~100 Hz
        stamp = node.get_clock().now().to_msg()
        for p, m in zip(pubs, msgs):
            m.header.stamp = stamp
            p.publish(m)
        probe.spin_for(0.01)
        assert all(len(q) <= node.p.queue_size for q in node.inputs.sync.queues)
    assert node.worker.wait_idle(5)
    n_out = node.stats.frames_out
    probe.spin_for(0.5)
    assert node.stats.frames_out <= n_out + 1 and node.worker.wait_idle(0.1)  # no backlog after the burst
    assert depth
    assert node.stats.frames_out + node.worker.dropped == node.stats.frames_in  # each set: out or dropped
    assert node.worker.dropped > node.stats.frames_out > 0
    assert probe.spin_until(lambda: any(
        kv.key == 'dropped' and int(kv.value) >= node.worker.dropped > 0
        for a in diag for st in a.status if 'stereo_depth' in st.name for kv in st.values), 5)


@pytest.mark.parametrize('name', ['coarse_to_fine_census', 'coarse_to_fine_sgm'])
def test_coarse_backends_keep_negative_disparities(name):
    """A pair whose true disparity is -8 with min_disparity -16: the coarse-to-fine backends find it
    (their row filling must not take 0 and below for holes)."""
    import cv2
    from depthmarks_ros.core.stereo.backend import create_backend
    from depthmarks_ros.core.stereo.params import StereoParams
    rng = np.random.default_rng(0)
    left = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (3, 3), 0)
    right = np.roll(left, 8, axis=1)
    disp = create_backend(name, StereoParams().replace(min_disparity=-16, disparity_range=64)).compute(
        left, right, confidence=False)[0]
    assert np.isfinite(disp).mean() > 0.8 and abs(np.nanmedian(disp) + 8) < 0.5


@pytest.mark.parametrize('name', ['coarse_to_fine', 'coarse_to_fine_sgm'])
def test_coarse_backends_refuse_images_too_small_for_the_half_size_matcher(name):
    from depthmarks_ros.core.stereo.backend import create_backend
    from depthmarks_ros.core.stereo.params import StereoParams
    img = np.zeros((5, 101), np.uint8)
    with pytest.raises(ValueError, match='too small for the half-size matcher'):
        create_backend(name, StereoParams().replace(min_disparity=-32)).compute(img, img)
