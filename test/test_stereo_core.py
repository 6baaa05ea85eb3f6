"""Stereo core (ROS-free): accuracy on the simulated rig's truth, strips vs unsplit, post-filters, files, CLI."""
import cv2
import numpy as np
import pytest

from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
from depthmarks_ros.core.stereo.io import read_disparity_png, read_pfm, write_disparity_png, write_pfm
from depthmarks_ros.core.stereo.metrics import disparity_metrics, sparsify_to_density
from depthmarks_ros.core.stereo.parallel import strip_bounds
from depthmarks_ros.core.stereo.postfilter import lr_consistent, lr_difference
from depthmarks_ros.testing.scenes import grey as _grey   # the `sim` fixture is in conftest.py


def test_default_matcher_is_accurate_on_ground_truth(sim):
    s, f = sim
    r = StereoMatcher(StereoParams(disparity_range=64)).compute(_grey(f.left_rgb), _grey(f.right_rgb))
    m = disparity_metrics(r.disparity, f.disparity_gt)
    assert m['bad2'] < 0.03 and m['density'] > 0.7 and m['epe'] < 0.5
    assert r.confidence.dtype == np.float32 and 0 <= r.confidence.min() and r.confidence.max() <= 1
    assert (r.confidence[~np.isfinite(r.disparity)] == 0).all()


def test_local_std_is_the_grey_level_std_over_the_window():
    from depthmarks_ros.core.stereo.confidence import local_std
    img = np.random.default_rng(1).integers(0, 256, (40, 50), dtype=np.uint8)
    img[:20, :20] = 200                                               # a flat patch
    got = local_std(img, 5)
    windows = np.lib.stride_tricks.sliding_window_view(img.astype(np.float64), (5, 5))
    assert np.abs(got[2:-2, 2:-2] - windows.std(axis=(2, 3))).max() < 0.01
    assert (got[2:16, 2:16] == 0).all() and got.dtype == np.float32


def test_match_padded_pads_with_the_border_and_crops_every_output():
    """matching.match_padded: the matcher sees the pair with ``pad`` replicated first columns in front, and
    each output it returns (an array, or a tuple with None kept) comes back as its last W columns."""
    from depthmarks_ros.core.stereo.matching import match_padded
    rng = np.random.default_rng(3)
    left, right = (rng.integers(0, 256, (6, 9), dtype=np.uint8) for _ in range(2))
    seen = []

    def match(a, b):
        seen.append((a, b))
        cols = np.broadcast_to(np.arange(a.shape[1], dtype=np.float32), a.shape)
        return cols * 1, (a.astype(np.float32) - b), None

    cols, diff, none = match_padded(match, left, right, 4)
    a, b = seen[-1]
    assert a.shape == b.shape == (6, 13)
    assert (a[:, :4] == left[:, :1]).all() and (b[:, :4] == right[:, :1]).all()
    assert (a[:, 4:] == left).all() and (b[:, 4:] == right).all()
    assert (cols == np.arange(4, 13)).all() and cols.flags.c_contiguous and none is None
    np.testing.assert_array_equal(diff, left.astype(np.float32) - right)
    only = match_padded(lambda a, b: a, left, right, 2)                       # a single array
    assert only.shape == left.shape and (only == left).all()
    assert match_padded(match, left, right, 0)[0].shape == left.shape and seen[-1][0] is left   # no pad


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
    split = StereoMatcher(p.replace(strips=3)).compute_raw(L, R)
    bounds = strip_bounds(L.shape[0], 3, p.correlation_window_size)
    assert len(bounds) == 3 and bounds[0][2] == 0 and bounds[-1][3] == L.shape[0]
    assert all(a[3] == b[2] for a, b in zip(bounds, bounds[1:]))  # kept rows tile the image
    rows = np.ones(L.shape[0], bool)
    for _s0, _s1, k0, _k1 in bounds[1:]:
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
                       ({'P1': 500.0, 'P2': 400.0}, 'P2'), ({'uniqueness_ratio': 200.0}, 'above the maximum'),
                       ({'wls_sigma': -1.0}, 'wls_sigma: -1.0 is below')):
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
    from depthmarks_ros.core.stereo.backend import create_backend
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    backend = create_backend(StereoDepthParams().backend, StereoParams(disparity_range=64))   # the node's default
    core = backend.compute(cv2.imread(str(tmp_path / 'l.png'), cv2.IMREAD_GRAYSCALE),
                           cv2.imread(str(tmp_path / 'r.png'), cv2.IMREAD_GRAYSCALE), confidence=False)[0]
    backend.close()
    np.testing.assert_array_equal(disp, core)
    depth = np.load(tmp_path / 'out' / 'depth.npy')
    ok = np.isfinite(depth) & np.isfinite(f.depth_gt)
    assert np.median(np.abs(depth[ok] - f.depth_gt[ok])) < 0.05




def test_lr_difference_and_check_on_a_synthetic_occlusion():
    # left sees a 10-px-disparity plane everywhere; the right map agrees except in an occluded band
    h, w = 4, 40
    dl = np.full((h, w), 10.0, np.float32)
    dl[:, :10] = np.nan  # no match at the left border
    dr = np.full((h, w), 10.0, np.float32)
    dr[:, 20:25] = 3.0   # right pixels 20..24 belong to another surface: left 30..34 disagree
    diff = lr_difference(dl, dr)
    ok = lr_consistent(diff)
    assert np.isnan(diff[:, :10]).all() and not ok[:, :10].any()
    assert not ok[:, 30:35].any() and np.allclose(diff[:, 30:35], 7.0)
    assert ok[:, 10:30].all() and ok[:, 35:].all()


def test_metrics_on_known_errors():
    gt = np.array([[10.0, 10.0, 10.0, np.nan, 0.0]], np.float32)
    d = np.array([[10.5, 11.5, np.nan, 5.0, 3.0]], np.float32)
    m = disparity_metrics(d, gt)
    assert m['density'] == pytest.approx(2 / 3) and m['epe'] == pytest.approx(1.0)
    assert m['bad1'] == pytest.approx(0.5) and m['bad2'] == 0.0


def test_sparsify_to_density_keeps_the_most_confident_pixels():
    gt = np.array([[1.0, 2.0, 3.0, 4.0, np.nan]], np.float32)
    d = np.array([[1.0, 9.0, 3.0, 4.0, 5.0]], np.float32)
    conf = np.array([[0.9, 0.1, 0.8, 0.7, 1.0]], np.float32)
    out = sparsify_to_density(d, conf, gt, 0.5)
    m = disparity_metrics(out, gt)
    assert m['density'] == 0.5 and m['bad2'] == 0.0  # the unconfident outlier went first
    assert np.isfinite(out[0, [0, 2]]).all() and out[0, 4] == 5.0  # pixels without truth are untouched
    assert sparsify_to_density(d, conf, gt, 1.0) is d


def test_batch_command_with_a_rig_file_of_another_resolution(tmp_path, sim):
    from depthmarks_ros.cli.main import main
    from depthmarks_ros.core.calibration import default_rig_path, load_rig
    from depthmarks_ros.core.stereo.calib import fit_to_size
    s, f = sim
    for name, rgb in (('l.png', f.left_rgb), ('r.png', f.right_rgb)):
        cv2.imwrite(str(tmp_path / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    args = ['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(tmp_path / 'out'),
            '--disparity-range', '64']
    assert main(args + ['--calib', default_rig_path()]) == 0  # the rig file is 640x480, images 320x240
    depth = np.load(tmp_path / 'out' / 'depth.npy')
    ok = np.isfinite(depth) & np.isfinite(f.depth_gt)
    # default backend: 1/8 px steps from the half size leave 0.033 m at 2 m here (opencv: 0)
    assert ok.mean() > 0.6 and np.median(np.abs(depth[ok] - f.depth_gt[ok])) < 0.04
    rig = load_rig(default_rig_path())
    with pytest.raises(ValueError, match='aspect'):
        fit_to_size(rig.camera('left'), rig.camera('right'), 320, 320)
    assert main(args + ['--calib', str(tmp_path / 'missing.yaml')]) == 2


def test_the_sigma_fits_score_the_default_backend_through_the_matcher_call(sim):
    """fit_fusion.default_stereo_matcher (what fit-fusion and bench_fusion score): the stereo_depth
    spec's default backend, with StereoMatcher's call; for `opencv` the same arrays as StereoMatcher."""
    from depthmarks_ros.cli.fit_fusion import default_stereo_matcher
    from depthmarks_ros.core.stereo.backend import ResultMatcher
    from depthmarks_ros.params.stereo_depth import StereoDepthParams
    s, f = sim
    left, right = _grey(f.left_rgb), _grey(f.right_rgb)
    p = StereoParams(disparity_range=64)
    plain, wrapped = StereoMatcher(p), ResultMatcher('opencv', p)
    a, b = plain.compute(left, right), wrapped.compute(left, right)
    plain.close(), wrapped.close()
    np.testing.assert_array_equal(a.disparity, b.disparity)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    assert a.valid_window == b.valid_window
    m = default_stereo_matcher()
    assert m.name == StereoDepthParams().backend
    r = m.compute(left, right)
    m.close()
    assert r.disparity.shape == r.confidence.shape == left.shape
    assert (r.confidence[~np.isfinite(r.disparity)] == 0).all()
