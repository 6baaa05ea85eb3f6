"""Heteroscedastic LiDAR sigma: the interpolation-residual feature and its fit."""
import numpy as np
import pytest

from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement
from depthmarks_ros.core.fusion.learned import REAL_LIDAR_FIXED, fit_per_source
from depthmarks_ros.core.fusion.metrics import sigma_calibration
from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_sparse
from depthmarks_ros.core.fusion.real_data import hold_out
from depthmarks_ros.core.fusion.uncertainty import SigmaModel, interpolation_residual, lidar_sigma


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
