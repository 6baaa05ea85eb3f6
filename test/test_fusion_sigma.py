"""Heteroscedastic LiDAR sigma: the interpolation-residual feature and its fit."""
import numpy as np
import pytest

from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
from depthmarks_ros.core.fusion.learned import REAL_LIDAR_FIXED, fit_per_source
from depthmarks_ros.core.fusion.metrics import sigma_calibration
from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_sparse
from depthmarks_ros.core.fusion.real_data import hold_out
from depthmarks_ros.core.fusion.uncertainty import SigmaModel, interpolation_residual, lidar_sigma, return_residuals


def _scan(seed, h=96, w=160):
    """A slanted wall scanned on every 3rd row, every column: 1 cm range noise on the left half,
    20 cm on the right."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    truth = 8.0 + 0.02 * xx + 0.01 * yy
    noise = np.where(xx < w // 2, 0.01, 0.2).astype(np.float32)
    sparse = np.full((h, w), np.nan, np.float32)
    rows = yy % 3 == 1
    sparse[rows] = (truth + rng.normal(0, 1, (h, w)).astype(np.float32) * noise)[rows]
    return sparse, xx < w // 2


def test_interpolation_residual_follows_the_local_noise():
    sparse, left = _scan(0)
    res = interpolation_residual(sparse)
    assert res.shape == sparse.shape and np.isfinite(res).all()
    inner = np.zeros_like(left)
    inner[10:-10, 10:-10] = True
    lo, hi = np.median(res[left & inner]), np.median(res[~left & inner])
    assert hi > 8 * lo, (lo, hi)
    assert (interpolation_residual(np.full((5, 5), np.nan, np.float32)) == 0).all()


def test_return_residuals_are_leave_one_out_along_the_row():
    nan = np.nan
    sparse = np.array([[2.0, nan, 4.0, 9.0, 6.0, nan],       # 4.0 between 2 and 9 two and one px away; 9.0 between 4 and 6
                       [1.0, 0.05, 1.0, 1.0, nan, nan],       # 0.05 m is no return (completion.measured)
                       [5.0, nan, nan, nan, nan, 5.0]], np.float32)
    at, res = return_residuals(sparse)
    # row 0: 4.0 vs 2 + (9 - 2) * 2/3, 9.0 vs (4 + 6) / 2; row 1: the middle 1.0 (neighbours 1.0, 1.0); row 2: none inside
    assert at.tolist() == [2, 3, 8]
    np.testing.assert_allclose(res, [abs(4.0 - (2.0 + 7.0 * 2 / 3)), 4.0, 0.0], atol=1e-5)
    assert return_residuals(sparse, max_gap=2)[0].tolist() == [3]      # the others' neighbours span 3 px
    assert return_residuals(np.full((3, 3), np.nan, np.float32))[0].size == 0
    far = np.array([[1.0, 100.0, 1.0]], np.float32)
    assert return_residuals(far)[1].tolist() == [5.0]                          # capped at 5 m


def test_fitted_residual_term_widens_sigma_where_the_lidar_is_noisy():
    samples = []
    for seed in range(3):
        sparse, left = _scan(seed)
        inp, mask = hold_out(sparse, seed=seed)
        samples.append({'gt': np.where(mask, sparse, np.nan).astype(np.float32), 'lidar': complete(inp, 'scanline'),
                        'lidar_dist': distance_to_measurement(inp), 'lidar_resid': interpolation_residual(inp)})
    model = fit_per_source(samples, steps=200, fixed=REAL_LIDAR_FIXED)
    assert model.lidar_k > 0 and (model.lidar_a, model.lidar_b, model.lidar_c) == (0.0, 0.0, 0.0)
    sparse, left = _scan(7)                                       # another frame
    inp, mask = hold_out(sparse, seed=7)
    r = fuse_sparse(inp, settings=FusionSettings('scanline', model))
    truth = np.where(mask, sparse, np.nan)
    assert np.nanmedian(r.lidar_sigma[~left]) > 5 * np.nanmedian(r.lidar_sigma[left])
    for half in (left, ~left):                                  # calibrated on each half, not only overall
        cal = sigma_calibration(r.lidar_depth, r.lidar_sigma, truth, half)
        assert 0.5 < cal['within_1sigma'] < 0.9 and cal['within_2sigma'] > 0.85, cal
    with pytest.raises(ValueError, match='interpolation residual'):
        lidar_sigma(r.lidar_depth, distance_to_measurement(inp), model)


def test_the_sim_model_has_no_residual_term():
    assert SigmaModel().lidar_k == 0.0


def _edges(seed, h=60, w=180, period=30):
    """Scan lines on every 5th row of a scene of vertical stripes 30 px wide alternating 6 m and 18 m
    (depth edges every 30 px, a little range noise): the returns around an edge lie on two layers."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.where((xx // period) % 2 == 0, 6.0, 18.0).astype(np.float32)
    sparse = np.full((h, w), np.nan, np.float32)
    rows = yy % 5 == 2
    sparse[rows] = (truth + rng.normal(0, 0.02, (h, w)).astype(np.float32))[rows]
    return sparse, _border_distance(w, period)[None, :].repeat(h, 0) <= 4      # within 4 px of a depth edge


def _border_distance(w, period):
    """px from each column to the nearest stripe border (between columns b - 1 and b, b = period, 2 period, ...)."""
    x = np.arange(w)[:, None]
    b = np.arange(period, w, period)[None, :]
    return np.minimum(np.abs(x - b), np.abs(x - (b - 1))).min(1)


def test_layer_gap_finds_the_other_layer_at_depth_edges():
    from depthmarks_ros.core.fusion.uncertainty import LAYER_COLS, layer_gap
    sparse, edge = _edges(0)
    dense = complete(sparse, 'scanline')
    g = layer_gap(sparse, dense)
    assert g.shape == sparse.shape and g.dtype == np.float32 and (g >= 0).all()
    inner = np.zeros_like(edge)
    inner[10:-10] = True
    dist = _border_distance(180, 30)[None, :]
    near = inner & (dist <= LAYER_COLS // 2 - 1)
    assert (g[near] > 11.0).all()                        # the other layer, 12 m away (one side or the other)
    far = inner & (dist > LAYER_COLS // 2 + 1)
    assert (g[far] < 0.2).all()                          # one surface: the noise only
    assert (layer_gap(np.full((5, 5), np.nan, np.float32), np.ones((5, 5), np.float32)) == 0).all()


def test_layer_term_widens_sigma_only_where_the_layer_gap_is_and_needs_it():
    from depthmarks_ros.core.fusion.uncertainty import LAYER_REL, layer_gap, lidar_sigma_of_input
    sparse, edge = _edges(1)
    dense = complete(sparse, 'scanline')
    base = SigmaModel(lidar_s0=0.05, lidar_a=0.0, lidar_b=0.0, lidar_c=0.0, sigma_scale=1.0)
    m = SigmaModel(**{**base.to_dict(), 'lidar_layer': 0.5, 'lidar_layer_bias': -1.0, 'lidar_layer_slope': 2.0})
    s0, s = lidar_sigma_of_input(sparse, dense, base), lidar_sigma_of_input(sparse, dense, m)
    g = layer_gap(sparse, dense)
    prob = 1 / (1 + np.exp(1.0) * (1 + LAYER_REL * g / dense) ** -2.0)
    want = np.sqrt(0.05 ** 2 + prob * (0.5 * g) ** 2)
    assert np.allclose(s, want, rtol=1e-4)
    assert np.median(s[edge]) > 20 * np.median(s[~edge]) and np.allclose(s[g == 0], s0[g == 0])
    with pytest.raises(ValueError, match='layer gap'):
        lidar_sigma(dense, distance_to_measurement(sparse), m)
    # the node's chain computes it when the model has the term (and not otherwise: the sim default)
    r = fuse_sparse(sparse, settings=FusionSettings('scanline', m))
    assert np.allclose(r.lidar_sigma, s, equal_nan=True)
    assert SigmaModel().lidar_layer == 0.0


def test_fit_lidar_layer_learns_the_term_where_the_base_sigma_misses_the_edges():
    from depthmarks_ros.core.fusion.learned import fit_lidar_layer
    from depthmarks_ros.core.fusion.real_data import lidar_holdout_sample
    base = SigmaModel(lidar_s0=0.03, lidar_a=0.0, lidar_b=0.0, lidar_c=0.0, sigma_scale=1.0)
    samples = []
    for seed in range(3):
        sparse, _edge = _edges(seed, period=20 + 4 * seed)
        samples.append(lidar_holdout_sample(sparse, None, 'scanline', seed))
    out = fit_lidar_layer(base, samples)
    assert out['lidar_layer'] > 0 and {'lidar_layer_bias', 'lidar_layer_slope', 'lidar_s0'} <= out.keys()
    m = SigmaModel(**{**base.to_dict(), **out})
    sparse, edge = _edges(9, period=26)                               # another scene
    inp, mask = hold_out(sparse, seed=9)
    r = fuse_sparse(inp, settings=FusionSettings('scanline', m))
    r0 = fuse_sparse(inp, settings=FusionSettings('scanline', base))
    truth = np.where(mask, sparse, np.nan)
    wrong = mask & (np.abs(r.lidar_depth - sparse) > 1.0)            # completed from the other layer
    assert wrong.sum() >= 5
    # at those hidden returns the layer term widens the sigma by far more than anywhere else
    widen = r.lidar_sigma / r0.lidar_sigma
    assert np.median(widen[wrong]) > 10 * np.median(widen[mask & ~wrong]), (widen[wrong], widen[mask & ~wrong])
    # and it stays calibrated overall (the band rule on the fitting errors)
    cal = sigma_calibration(r.lidar_depth, r.lidar_sigma, truth, mask)
    assert 0.6 < cal['within_1sigma'] < 0.76 and cal['within_2sigma'] > 0.88, cal
