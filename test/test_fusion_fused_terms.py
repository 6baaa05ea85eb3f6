"""The fused terms of the sigma model (uncertainty.fused_sigma_expr, SigmaModel.stereo_fuse_factor,
fused_edge, fused_scale): only a fusion of two sources changes, the depth only through the stereo
weight, a model file without the terms has none, the fits (learned.fit_stereo_fuse_factor,
margin_scale) do what they say, and the node uses the built-in model's terms. Synthetic data only."""
from dataclasses import replace

import numpy as np
import pytest

from depthmarks_ros.core.fusion.learned import (SIGMA_BANDS, fit_fused_scale, fit_stereo_fuse_factor, load_model,
                                                margin_scale, save_model)
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_sparse
from depthmarks_ros.core.fusion.uncertainty import (FUSED_SCALE_SIM, STEREO_FUSE_FACTOR_SIM, SigmaModel,
                                                   local_range)

PLAIN = dict(stereo_fuse_factor=1.0, fused_edge=0.0, fused_scale=1.0)


def _stereo(sim, f):
    return StereoInput(f.depth_gt + np.float32(0.02), sim.stereo.focal, sim.stereo.baseline,
                       np.full(f.depth_gt.shape, 0.8, np.float32))


def test_fused_edge_and_scale_change_only_the_fused_sigma(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
    stereo = _stereo(sim, f)
    off, on = SigmaModel(**PLAIN), SigmaModel(**{**PLAIN, 'fused_edge': 0.05, 'fused_scale': 1.3})
    a = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', off), stereo=stereo)
    b = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', on), stereo=stereo)
    np.testing.assert_array_equal(a.depth, b.depth)                  # the depth is not touched
    np.testing.assert_array_equal(a.lidar_sigma, b.lidar_sigma)
    rng = local_range(a.depth, 9)
    ok = np.isfinite(a.sigma)
    np.testing.assert_allclose(b.sigma[ok], 1.3 * np.sqrt(a.sigma[ok] ** 2 + (0.05 * rng[ok]) ** 2), rtol=1e-5)
    flat, edge = ok & (rng < 0.05), ok & (rng > 1.0)
    assert flat.any() and edge.any()
    assert np.all(b.sigma[edge] / a.sigma[edge] > b.sigma[flat].max() / a.sigma[flat].max() - 1e-6)
    np.testing.assert_array_equal(np.isnan(a.sigma), np.isnan(b.sigma))
    # LiDAR alone: no fusion, no term
    c = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', on))
    d = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', off))
    np.testing.assert_array_equal(c.sigma, d.sigma)


def test_stereo_fuse_factor_moves_the_weight_towards_the_lidar(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
    stereo = _stereo(sim, f)
    a = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', SigmaModel(**PLAIN)), stereo=stereo)
    b = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', SigmaModel(**{**PLAIN, 'stereo_fuse_factor': 8.0})),
                    stereo=stereo)
    both = np.isfinite(a.lidar_depth) & np.isfinite(stereo.depth)
    np.testing.assert_array_equal(a.lidar_depth, b.lidar_depth)
    # the fused depth lies between the sources; with the stereo sigma 8x wider it moves towards the LiDAR
    gap_a = np.abs(a.depth - a.lidar_depth)[both]
    gap_b = np.abs(b.depth - b.lidar_depth)[both]
    assert np.all(gap_b <= gap_a + 1e-5) and np.mean(gap_b < gap_a - 1e-6) > 0.5


def test_a_model_file_without_the_terms_has_none(tmp_path):
    m = SigmaModel()
    assert m.stereo_fuse_factor == STEREO_FUSE_FACTOR_SIM > 1 and m.fused_scale == FUSED_SCALE_SIM != 1
    path = str(tmp_path / 'm.json')
    save_model(m, path)
    assert load_model(path) == m                                     # saved with them: kept
    doc = m.to_dict()
    for name in PLAIN:
        del doc[name]
    assert SigmaModel.from_dict(doc) == replace(m, **PLAIN)          # written before the terms: none


def _shares(r, k):
    return np.mean(r <= k), np.mean(r <= 2 * k)


@pytest.mark.parametrize('dist', ['gauss', 'heavy'])
def test_margin_scale_keeps_both_shares_inside_the_bands(dist):
    rng = np.random.default_rng(0)
    e = np.abs(rng.normal(size=200_000))
    if dist == 'heavy':                    # 12 % of the errors 2.2x wider: both bands still reachable
        e[:24_000] *= 2.2
    k = margin_scale(e)
    one, two = _shares(e, k)
    (lo1, hi1), (lo2, hi2) = SIGMA_BANDS
    assert lo1 < one < hi1 and lo2 < two < hi2
    margin = min(one - lo1, hi1 - one, two - lo2, hi2 - two)
    for other in (k * 0.97, k * 1.03):     # no nearby scale keeps them farther inside
        o1, o2 = _shares(e, other)
        assert min(o1 - lo1, hi1 - o1, o2 - lo2, hi2 - o2) <= margin + 1e-9
    if dist == 'gauss':
        assert k == pytest.approx(1.0, abs=0.05)
    smp = [{'gt': np.zeros(e.size, np.float32), 'fused': e.astype(np.float32), 'fused_sigma': np.ones(e.size, np.float32)}]
    assert fit_fused_scale(smp) == pytest.approx(k, rel=1e-3)


def test_fit_stereo_fuse_factor_takes_the_least_fused_rmse():
    """Two sources with known errors (LiDAR sigma 0.1, stereo 0.3): the fused RMSE is least at equal
    weights of the true variances, i.e. a stereo factor of 3 on a stereo sigma given as 0.1."""
    rng = np.random.default_rng(1)
    gt = np.full(50_000, 5.0)
    lidar, stereo = gt + rng.normal(0, 0.1, gt.size), gt + rng.normal(0, 0.3, gt.size)

    def samples(k):
        w_l, w_s = 1 / 0.1 ** 2, 1 / (0.1 * k) ** 2
        return [{'gt': gt, 'fused': (w_l * lidar + w_s * stereo) / (w_l + w_s)}]
    grid = tuple(2.0 ** (i / 4) for i in range(17))
    k = fit_stereo_fuse_factor(samples, grid)
    assert k == pytest.approx(3.0, rel=0.2)


def test_node_defaults_use_the_built_in_terms(rclpy_context):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    node = DepthFusionNode()
    try:
        assert node.model == SigmaModel() and node.model.stereo_fuse_factor == STEREO_FUSE_FACTOR_SIM
    finally:
        node.destroy_node()
