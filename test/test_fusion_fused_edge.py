"""The fused-edge term of the fused sigma (sqrt(sigma^2 + (fused_edge * 9x9 range of the fused
depth)^2), uncertainty.fused_sigma_expr): only the sigma of a fusion of two sources changes, a model
file without the term has none, the band-rule fit (learned.fit_fused_edge) widens only as far as the
1-sigma bound allows, and the node uses the built-in model's term. Synthetic data only."""
from dataclasses import replace

import numpy as np
import pytest

from depthmarks_ros.core.fusion.learned import BAND_ONE_SIGMA_MAX, fit_fused_edge, load_model, save_model
from depthmarks_ros.core.fusion.pipeline import FusionSettings, StereoInput, fuse_sparse
from depthmarks_ros.core.fusion.uncertainty import FUSED_EDGE_SIM, SigmaModel, local_range


def test_fused_edge_widens_only_the_fused_sigma_at_depth_edges(fusion_scene):
    sim, f, sweep, pts, sparse = fusion_scene
    stereo = StereoInput(f.depth_gt + np.float32(0.02), sim.stereo.focal, sim.stereo.baseline,
                         np.full(f.depth_gt.shape, 0.8, np.float32))
    off, on = SigmaModel(fused_edge=0.0), SigmaModel(fused_edge=0.05)
    a = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', off), stereo=stereo)
    b = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', on), stereo=stereo)
    np.testing.assert_array_equal(a.depth, b.depth)                  # the depth is not touched
    np.testing.assert_array_equal(a.lidar_sigma, b.lidar_sigma)
    rng = local_range(a.depth, 9)
    ok = np.isfinite(a.sigma)
    np.testing.assert_allclose(b.sigma[ok], np.sqrt(a.sigma[ok] ** 2 + (0.05 * rng[ok]) ** 2), rtol=1e-5)
    flat, edge = ok & (rng < 0.05), ok & (rng > 1.0)
    assert flat.any() and edge.any()
    assert np.all(b.sigma[flat] - a.sigma[flat] <= 0.05 * 0.05 + 1e-6)   # off edges: next to nothing
    assert np.all(b.sigma[edge] > a.sigma[edge])
    np.testing.assert_array_equal(np.isnan(a.sigma), np.isnan(b.sigma))
    # LiDAR alone: no fusion, no term
    c = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', on))
    d = fuse_sparse(sparse, f.left_rgb, FusionSettings('classical', off))
    np.testing.assert_array_equal(c.sigma, d.sigma)


def test_a_model_file_without_the_term_has_none(tmp_path):
    assert SigmaModel().fused_edge == FUSED_EDGE_SIM > 0
    path = str(tmp_path / 'm.json')
    save_model(SigmaModel(), path)
    assert load_model(path) == SigmaModel()                          # saved with it: kept
    doc = SigmaModel().to_dict()
    del doc['fused_edge']
    assert SigmaModel.from_dict(doc).fused_edge == 0.0               # written before the term: none


def _edge_samples(seed, edge_scale):
    """Two planes (2 m | 6 m) with a fused sigma of 0.1 m everywhere; errors N(0, 0.1) off the edge,
    N(0, edge_scale * 0.1) within 4 px of it."""
    r = np.random.default_rng(seed)
    fused = np.full((120, 160), 2.0, np.float32)
    fused[:, 80:] = 6.0
    near = np.zeros(fused.shape, bool)
    near[:, 76:84] = True
    noise = r.normal(0, 0.1, fused.shape) * np.where(near, edge_scale, 1.0)
    return [{'gt': (fused + noise).astype(np.float32), 'fused': fused, 'fused_sigma': np.full(fused.shape, 0.1, np.float32)}]


def _shares(samples, c):
    smp = samples[0]
    s = np.sqrt(smp['fused_sigma'] ** 2 + (c * local_range(smp['fused'], 9)) ** 2)
    r = np.abs(smp['gt'] - smp['fused']) / s
    return np.mean(r <= 1), np.mean(r <= 2)


def test_fit_fused_edge_follows_the_band_rule():
    calibrated = _edge_samples(0, 1.0)                  # sigma right everywhere: nothing to widen
    assert fit_fused_edge(calibrated) == pytest.approx(0.0, abs=1e-3)
    tail = _edge_samples(1, 8.0)                        # errors 8x the sigma at the edge
    c = fit_fused_edge(tail)
    assert c > 0
    one, two = _shares(tail, c)
    assert one <= BAND_ONE_SIGMA_MAX + 1e-3 and two > _shares(tail, 0.0)[1]
    # the 2-sigma target reached at c, or the 1-sigma bound stops it there
    assert two >= 0.9545 - 1e-3 or _shares(tail, c * 1.05)[0] > BAND_ONE_SIGMA_MAX


def test_node_defaults_use_the_built_in_term(rclpy_context):
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    node = DepthFusionNode()
    try:
        assert node.model == SigmaModel() and node.model.fused_edge == FUSED_EDGE_SIM
    finally:
        node.destroy_node()
