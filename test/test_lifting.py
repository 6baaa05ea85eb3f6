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
