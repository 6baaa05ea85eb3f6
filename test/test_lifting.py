"""Depth lookup and 3D lifting with covariance."""
import numpy as np
import pytest

from depthmarks_ros.core.lifting import lift, robust_depth


def test_robust_depth_prefers_foreground_cluster():
    depth = np.full((50, 50), 5.0, np.float32)   # wall
    depth[:, :26] = 2.0                          # person covering the left half
    depth[10, 10] = np.nan
    z, spread = robust_depth(depth, [[25, 20], [10, 10], [45, 20]], radius=3)
    assert z[0] == pytest.approx(2.0)            # edge pixel: takes the person, not the wall
    assert z[1] == pytest.approx(2.0)            # NaN centre: neighbours fill in
    assert z[2] == pytest.approx(5.0)
    z, _ = robust_depth(depth, [[-5, 3], [np.nan, 1]])
    assert np.isnan(z).all()


def _robust_depth_one_by_one(depth, uv, radius, gap, sigma_map):
    """The definition, one pixel at a time (the vectorised function must agree)."""
    h, w = depth.shape
    z, spread = np.full(len(uv), np.nan), np.full(len(uv), np.nan)
    for i, (u, v) in enumerate(uv):
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        iu, iv = int(round(u)), int(round(v))
        if not (0 <= iu < w and 0 <= iv < h):
            continue
        win = depth[max(iv - radius, 0):iv + radius + 1, max(iu - radius, 0):iu + radius + 1]
        sig = sigma_map[max(iv - radius, 0):iv + radius + 1, max(iu - radius, 0):iu + radius + 1]
        ok = np.isfinite(win) & (win > 0)
        if not ok.any():
            continue
        vals = win[ok]
        near = vals.min()
        sel = vals <= near + gap + 0.05 * near
        med = np.median(vals[sel])
        mad = np.median(np.abs(vals[sel] - med)) * 1.4826
        sw = sig[ok][sel]
        sw = sw[np.isfinite(sw)]
        z[i], spread[i] = med, max(mad, sw.mean()) if sw.size else mad
    return z, spread


def test_robust_depth_equals_its_pixel_by_pixel_definition():
    rng = np.random.default_rng(4)
    depth = rng.uniform(0.5, 6.0, (40, 60)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.nan
    depth[rng.random(depth.shape) < 0.05] = 0.0
    depth[rng.random(depth.shape) < 0.02] = np.inf
    depth[20:30, 30:40] = np.nan                                     # an empty window
    sigma = rng.uniform(0.0, 0.4, depth.shape).astype(np.float32)
    sigma[rng.random(depth.shape) < 0.2] = np.nan
    uv = np.c_[rng.uniform(-4, 64, 300), rng.uniform(-4, 44, 300)]
    uv[:5] = [[35, 25], [0, 0], [59.4, 39.6], [np.nan, 3], [2.5, 7.5]]
    for radius, smap in ((2, sigma), (3, None)):
        got_z, got_s = robust_depth(depth, uv, radius=radius, cluster_gap=0.15, sigma_map=smap)
        ref_z, ref_s = _robust_depth_one_by_one(depth, uv, radius, 0.15,
                                                sigma if smap is not None else np.full(depth.shape, np.nan))
        np.testing.assert_allclose(got_z, ref_z, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(got_s, ref_s, rtol=1e-5, atol=1e-7, equal_nan=True)
    assert np.isnan(got_z[0]) and np.isfinite(got_z).sum() > 100


def test_lift_matches_monte_carlo_covariance():
    rng = np.random.default_rng(0)
    fx = fy = 500.0
    cx, cy = 320.0, 240.0
    uv = np.array([[400.0, 300.0]])
    cov_uv = np.array([[[4.0, 1.0], [1.0, 2.0]]])
    sz = np.array([0.05])
    pts, cov = lift(uv, [2.0], fx, fy, cx, cy, cov_uv, sz)
    np.testing.assert_allclose(pts[0], [(80 * 2 / 500), (60 * 2 / 500), 2.0])
    samples_uv = rng.multivariate_normal(uv[0], cov_uv[0], 200000)
    samples_z = 2.0 + rng.standard_normal(200000) * 0.05
    p, _ = lift(samples_uv, samples_z, fx, fy, cx, cy)
    np.testing.assert_allclose(np.cov(p.T), cov[0], rtol=0.05, atol=1e-7)
