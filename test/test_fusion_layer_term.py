"""The LiDAR sigma's layer term and its features (core.fusion.uncertainty, learned.fit_lidar_layer): model
file versions, the fit's constraints, one expression for node and fit, the validity rule of the returns,
the cropped (band of rows) paths against plain references."""
import json
import warnings

import numpy as np
import pytest

from depthmarks_ros.core.fusion import learned
from depthmarks_ros.core.fusion.completion import MIN_RETURN_DEPTH, complete, distance_to_measurement
from depthmarks_ros.core.fusion.learned import fit_lidar_layer, fit_lidar_layer_details, load_model, save_model
from depthmarks_ros.core.fusion.pipeline import FusionSettings, fuse_sparse
from depthmarks_ros.core.fusion.real_data import lidar_holdout_sample
from depthmarks_ros.core.fusion.uncertainty import (RESID_MAX_GAP, RESID_WINDOW, SigmaModel, interpolation_residual,
                                                   layer_gap, layer_probability, lidar_features, lidar_sigma,
                                                   lidar_sigma_expr, lidar_sigma_of_input, row_gap)

LAYER = {'lidar_layer': 0.4, 'lidar_layer_bias': -1.0, 'lidar_layer_slope': 2.0}
BASE = SigmaModel(lidar_s0=0.03, lidar_a=0.0, lidar_b=0.0, lidar_c=0.0, lidar_k=0.2, lidar_base_pow=0.9,
                  lidar_gap_pow=0.5, sigma_scale=1.0)


def _stripes(seed, h=60, w=180, period=30, rows_from=0, rows_to=None, noise=0.02):
    """Scan lines on every 5th row (only rows_from..rows_to) of vertical stripes alternating 6 m and 18 m."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.where((xx // period) % 2 == 0, 6.0, 18.0).astype(np.float32)
    sparse = np.full((h, w), np.nan, np.float32)
    rows = (yy % 5 == 2) & (yy >= rows_from) & (yy < (h if rows_to is None else rows_to))
    sparse[rows] = (truth + rng.normal(0, noise, (h, w)).astype(np.float32))[rows]
    return sparse


# --- model file versions -------------------------------------------------------------------------

def test_a_model_with_the_layer_term_is_written_as_version_2_and_one_without_as_1(tmp_path):
    with_term, without = SigmaModel(**{**BASE.to_dict(), **LAYER}), BASE
    for m, version in ((with_term, 2), (without, 1)):
        path = tmp_path / f'v{version}.json'
        save_model(m, str(path))
        assert json.loads(path.read_text())['version'] == version
        assert load_model(str(path)) == m


def test_load_model_refuses_unknown_versions_and_parameters(tmp_path):
    path = tmp_path / 'm.json'
    save_model(SigmaModel(**{**BASE.to_dict(), **LAYER}), str(path))
    doc = json.loads(path.read_text())
    for bad, match in (({**doc, 'version': 3}, 'version 3 unknown'), ({**doc, 'version': None}, 'version None'),
                       ({**doc, 'version': 2.0}, 'version 2.0 unknown'), ({**doc, 'version': True}, 'version True'),
                       ({**doc, 'version': 1}, 'version 1 has no layer term'),
                       ({**doc, 'params': {**doc['params'], 'lidar_new_term': 1.0}}, 'lidar_new_term')):
        path.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=match):
            load_model(str(path))


def test_an_old_version_1_file_without_the_layer_keys_has_the_term_off(tmp_path):
    doc = {k: v for k, v in BASE.to_dict().items() if not k.startswith('lidar_layer')}
    path = tmp_path / 'old.json'
    path.write_text(json.dumps({'kind': 'depthmarks_fusion_sigma_model', 'version': 1, 'params': doc}))
    m = load_model(str(path))
    assert m.lidar_layer == 0.0 and m.lidar_k == BASE.lidar_k


def test_the_shipped_kitti_model_loads_and_states_its_version():
    from depthmarks_ros.core.fusion.real_data import SHIPPED_KITTI_MODEL
    with open(SHIPPED_KITTI_MODEL) as f:
        doc = json.load(f)
    m = load_model(SHIPPED_KITTI_MODEL)
    assert doc['version'] == learned.model_version(m)
    if m.lidar_layer:          # the shipped fit keeps P non-decreasing in the gap
        assert learned.LAYER_SLOPE_MIN <= m.lidar_layer_slope <= learned.LAYER_SLOPE_MAX


def test_the_shipped_kitti_models_layer_probability_is_1_so_its_term_is_the_plain_sqrt_form():
    """The shipped KITTI fit ended at the bias bound (w0 = LAYER_BIAS_MAX): P >= 1 / (1 + e^-10) at any
    depth and gap, so its layer term is sqrt(S^2 + (g G)^2) and its slope w1 changes nothing
    (docs/depth_fusion.md, the layer term). A refit that moves w0 off the bound fails here: then P
    gates the term and the doc's statement has to change with it."""
    from dataclasses import replace
    from depthmarks_ros.core.fusion.real_data import SHIPPED_KITTI_MODEL
    m = load_model(SHIPPED_KITTI_MODEL)
    assert m.lidar_layer > 0 and m.lidar_layer_bias == learned.LAYER_BIAS_MAX
    rng = np.random.default_rng(0)
    n = 20000
    z = np.exp(rng.uniform(np.log(0.5), np.log(100.0), n)).astype(np.float32)[None, :]
    G = np.where(rng.random(n) < 0.2, 0.0, z[0] * np.exp(rng.uniform(-8, 1, n))).astype(np.float32)[None, :]
    p = layer_probability(z, G, m.lidar_layer_bias, m.lidar_layer_slope)
    assert p.min() > 1 - 1e-4, p.min()
    feats = dict(resid=rng.uniform(0, 0.3, (1, n)).astype(np.float32),
                 gap=rng.uniform(0, 5, (1, n)).astype(np.float32), layer=G)
    dist = rng.uniform(0, 6, (1, n)).astype(np.float32)
    s = lidar_sigma(z, dist, m, **feats)
    S = lidar_sigma(z, dist, replace(m, lidar_layer=0.0), **feats)       # the model without the layer term
    plain = np.sqrt(S ** 2 + (m.sigma_scale * m.lidar_layer * G) ** 2)
    assert np.allclose(s, plain, rtol=1e-4) and (s > S * 1.5).mean() > 0.05     # the term matters, P does not
    assert np.allclose(lidar_sigma(z, dist, replace(m, lidar_layer_slope=0.0), **feats), s, rtol=1e-4)


# --- the fit ---------------------------------------------------------------------------------------

def _synthetic_layer_samples(seed, n=6000):
    """Fitting samples (single rows) whose errors are large where the layer gap is a few % of the depth
    and small where it is largest: an unconstrained slope would make P fall with the gap."""
    rng = np.random.default_rng(seed)
    z = np.full(n, 10.0, np.float32)
    rel = rng.choice([0.0, 0.02, 0.05, 0.5, 0.9], n).astype(np.float32)
    gap = rel * z
    scale = np.where((rel > 0) & (rel < 0.1), 0.8, 0.03).astype(np.float32)     # mid gaps: wrong layer
    gt = z + rng.laplace(0, 1, n).astype(np.float32) * scale
    row = lambda a: a[None, :].astype(np.float32)       # noqa: E731
    return {'gt': row(gt), 'lidar': row(z), 'lidar_dist': row(np.ones(n)), 'lidar_resid': row(np.full(n, 0.01)),
            'lidar_gap': row(np.zeros(n)), 'lidar_layer': row(gap)}


def test_the_fitted_slope_keeps_the_added_spread_growing_with_the_gap():
    samples = [_synthetic_layer_samples(s) for s in range(2)]
    out = fit_lidar_layer(BASE, samples)
    assert out and out['lidar_layer'] > 0
    assert learned.LAYER_SLOPE_MIN <= out['lidar_layer_slope'] <= learned.LAYER_SLOPE_MAX
    assert abs(out['lidar_layer_bias']) <= learned.LAYER_BIAS_MAX
    m = SigmaModel(**{**BASE.to_dict(), **out})
    g = np.linspace(0, 10, 201, dtype=np.float32)[None, :]
    z = np.full_like(g, 10.0)
    s = lidar_sigma(z, np.ones_like(g), m, resid=np.full_like(g, 0.01), gap=np.zeros_like(g), layer=g)
    assert np.all(np.diff(s[0]) >= -1e-6), s            # sigma never shrinks as the gap grows


def test_no_layer_term_without_a_second_layer():
    rng = np.random.default_rng(0)
    samples = []
    for seed in range(3):
        sp = np.full((60, 180), np.nan, np.float32)
        sp[2::5] = (10.0 + rng.normal(0, 0.03, (12, 180))).astype(np.float32)      # one flat wall
        samples.append(lidar_holdout_sample(sp, None, 'scanline', seed))
    assert max(float(s['lidar_layer'].max()) for s in samples) > 0      # noise gives a gap, not a layer
    assert fit_lidar_layer(BASE, samples) == {}


def test_the_fit_uses_the_nodes_sigma_expression():
    samples = [lidar_holdout_sample(_stripes(seed, period=20 + 4 * seed), None, 'scanline', seed) for seed in range(3)]
    out, fit_sigma, scale = fit_lidar_layer_details(BASE, samples, 'band')
    assert out and fit_sigma is not None and scale > 0
    m = SigmaModel(**{**BASE.to_dict(), **out})
    node = []
    for smp in samples:
        s = lidar_sigma(smp['lidar'], smp['lidar_dist'], m, resid=smp['lidar_resid'], gap=smp['lidar_gap'],
                        layer=smp['lidar_layer'])
        ok = np.isfinite(smp['gt']) & np.isfinite(smp['lidar']) & (smp['lidar'] > 0)
        node.append(s[ok])
    assert np.allclose(np.concatenate(node), fit_sigma * scale, rtol=1e-4)


def test_holdout_samples_carry_the_features_of_the_kept_returns_as_the_node_computes_them():
    """A fitting sample's features are those of the input with the hidden returns removed (not of the
    full sweep: that would leak the answer), and its sigma is the node's chain's on that input. The
    distance and row gap at the hidden returns are checked against values computed by hand here."""
    sparse = _stripes(3, h=30, w=90, period=15)
    smp = lidar_holdout_sample(sparse, None, 'scanline', 3)
    hidden = np.isfinite(smp['gt'])
    kept = np.isfinite(sparse) & ~hidden
    assert hidden.sum() >= 20 and np.array_equal(smp['gt'][hidden], sparse[hidden])
    # by hand: at a kept return distance and row gap are 0; at a hidden one the distance to the nearest
    # kept return (cv2's 3x3 L2 approximation: within 10 % of Euclidean) and |z_left - z_right| of the
    # nearest kept returns on its row (0 where a side has none)
    ky, kx = np.nonzero(kept)
    assert np.all(smp['lidar_dist'][kept] == 0) and np.all(smp['lidar_gap'][kept] == 0)
    for y, x in zip(*np.nonzero(hidden)):
        d = np.sqrt(((ky - y) ** 2 + (kx - x) ** 2).min())
        assert d >= 1 and abs(smp['lidar_dist'][y, x] - d) <= 0.1 * d, (y, x, d, smp['lidar_dist'][y, x])
        left, right = np.flatnonzero(kept[y, :x]), np.flatnonzero(kept[y, x + 1:])
        gap = abs(sparse[y, left[-1]] - sparse[y, x + 1 + right[0]]) if left.size and right.size else 0.0
        assert np.isclose(smp['lidar_gap'][y, x], gap, atol=1e-5), (y, x, gap, smp['lidar_gap'][y, x])
    # the node's chain on that input (every term of the sigma on) gives the sample's completion and sigma
    m = SigmaModel(**{**BASE.to_dict(), **LAYER})
    assert m.lidar_k > 0 and m.lidar_gap_pow != 0 and m.lidar_layer != 0
    r = fuse_sparse(np.where(hidden, np.nan, sparse), settings=FusionSettings('scanline', m))
    assert np.array_equal(r.lidar_depth, smp['lidar'], equal_nan=True)
    s = lidar_sigma(smp['lidar'], smp['lidar_dist'], m, resid=smp['lidar_resid'], gap=smp['lidar_gap'],
                    layer=smp['lidar_layer'])
    assert np.allclose(s, r.lidar_sigma, rtol=1e-6, equal_nan=True)


# --- validity and edge cases of the expression -------------------------------------------------------

def test_returns_at_or_below_the_completion_threshold_are_no_returns():
    sparse = _stripes(1)
    holes = np.isnan(sparse)
    rng = np.random.default_rng(1)
    junk = sparse.copy()
    pick = holes & (rng.random(sparse.shape) < 0.1)
    junk[pick] = rng.choice(np.float32([0.0, -1.0, MIN_RETURN_DEPTH]), int(pick.sum()))
    rgb = np.full(sparse.shape + (3,), 120, np.uint8)
    for method in ('classical', 'guided', 'scanline'):     # every completion: the same rule for a return
        assert np.array_equal(complete(junk, method, rgb), complete(sparse, method, rgb), equal_nan=True), method
    dense = complete(sparse, 'scanline')
    m = SigmaModel(**{**BASE.to_dict(), **LAYER})
    for fn in (distance_to_measurement, row_gap, interpolation_residual):
        assert np.array_equal(fn(junk), fn(sparse)), fn.__name__
    assert np.array_equal(layer_gap(junk, dense), layer_gap(sparse, dense))
    assert np.array_equal(lidar_sigma_of_input(junk, dense, m), lidar_sigma_of_input(sparse, dense, m), equal_nan=True)


def test_the_layer_term_at_zero_negative_and_tiny_depth():
    m = SigmaModel(**{**BASE.to_dict(), **LAYER, 'lidar_layer_slope': -3.0})     # a negative slope overflows soonest
    z = np.float32([[0.0, -2.0, 1e-30, 1e-6, 5.0]])
    layer = np.float32([[0.0, 1.0, 1.0, 0.0, 1.0]])
    one = np.ones_like(z)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        s = lidar_sigma(z, one, m, resid=one * 0.01, gap=one * 0, layer=layer)
    assert np.isnan(s[0, :2]).all() and np.isfinite(s[0, 2:]).all() and (s[0, 2:] > 0).all()


# --- cropped (band of rows) paths against plain references --------------------------------------------

def _brute_layer_gap(sparse, dense, rows=5, cols=9):
    h, w = sparse.shape
    out = np.zeros((h, w), np.float32)
    ok = np.where(sparse > MIN_RETURN_DEPTH, sparse, np.nan)
    for y in range(h):
        for x in range(w):
            z = dense[y, x]
            if not np.isfinite(z):
                continue
            win = ok[max(y - rows // 2, 0):y + rows // 2 + 1, max(x - cols // 2, 0):x + cols // 2 + 1]
            v = win[np.isfinite(win)]
            if v.size:
                out[y, x] = max(v.max() - z, z - v.min(), 0.0)
    return out


def _plain_interpolation_residual(sparse, window=RESID_WINDOW):
    """interpolation_residual without its row crop: a loop over the returns and a full-image box sum."""
    h, w = sparse.shape
    total, count, res_all = np.zeros((h, w)), np.zeros((h, w)), []
    for y in range(h):
        xs = np.flatnonzero(sparse[y] > MIN_RETURN_DEPTH)
        for a, b, c in zip(xs[:-2], xs[1:-1], xs[2:]):
            if c - a > RESID_MAX_GAP:
                continue
            pred = sparse[y, a] + (sparse[y, c] - sparse[y, a]) * (b - a) / (c - a)
            r = min(abs(sparse[y, b] - pred), 5.0)
            res_all.append(r)
            total[y, b], count[y, b] = r, 1.0
    if not res_all:
        return np.zeros((h, w), np.float32)
    out = np.full((h, w), np.median(np.float32(res_all)), np.float64)
    k = window // 2
    for y in range(h):
        for x in range(w):
            n = count[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1].sum()
            if n > 0.5:
                out[y, x] = total[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1].sum() / n
    return out.astype(np.float32)


@pytest.mark.parametrize('band', [(0, 60), (20, 32), (50, 60), (0, 8)])
def test_features_and_sigma_with_returns_confined_to_a_band_of_rows(band):
    sparse = _stripes(5, h=60, w=90, rows_from=band[0], rows_to=band[1], noise=0.05)
    dense = complete(sparse, 'scanline')
    assert np.allclose(layer_gap(sparse, dense), _brute_layer_gap(sparse, dense), atol=1e-4)
    assert np.allclose(interpolation_residual(sparse), _plain_interpolation_residual(sparse), atol=1e-5)
    m = SigmaModel(**{**BASE.to_dict(), **LAYER})
    f = lidar_features(sparse, dense, m)
    with np.errstate(all='ignore'):
        want = lidar_sigma_expr(dense, f['dist'], 0.0, f['resid'], f['gap'], f['layer'], **m.to_dict())
    want = np.where(np.isfinite(dense), want, np.nan)
    assert np.allclose(lidar_sigma_of_input(sparse, dense, m), want, rtol=1e-5, equal_nan=True)


def test_layer_gap_matches_a_brute_force_reference_on_random_scenes():
    rng = np.random.default_rng(11)
    for h, w in ((1, 1), (1, 9), (3, 1), (7, 13), (20, 30), (31, 17)):
        for density in (0.0, 0.05, 0.3):
            sparse = np.full((h, w), np.nan, np.float32)
            m = rng.random((h, w)) < density
            sparse[m] = rng.choice(np.float32([0.0, -1.0, 1.0, 30.0, 60.0]), int(m.sum())) + \
                rng.uniform(0, 1, int(m.sum())).astype(np.float32)
            dense = rng.uniform(1, 60, (h, w)).astype(np.float32)
            dense[rng.random((h, w)) < 0.3] = np.nan
            dense[: h // 3] = np.nan                          # a band of rows without depth
            for rows, cols in ((5, 9), (3, 3)):
                assert np.allclose(layer_gap(sparse, dense, rows, cols), _brute_layer_gap(sparse, dense, rows, cols),
                                   atol=1e-4), (h, w, density, rows, cols)


def test_layer_probability_is_the_expressions():
    z, g = np.float32([10.0, 10.0]), np.float32([0.0, 2.0])
    p = layer_probability(z, g, -1.0, 2.0)
    assert np.allclose(p, 1 / (1 + np.exp(1.0) * (1 + 10 * g / z) ** -2.0))


def test_the_mixture_likelihood_fits_the_same_published_sigma(monkeypatch):
    monkeypatch.setattr(learned, 'LAYER_LIKELIHOOD', 'mixture')
    samples = [lidar_holdout_sample(_stripes(seed, period=20 + 4 * seed), None, 'scanline', seed) for seed in range(3)]
    out, fit_sigma, scale = fit_lidar_layer_details(BASE, samples, 'band')
    assert out and learned.LAYER_SLOPE_MIN <= out['lidar_layer_slope'] <= learned.LAYER_SLOPE_MAX
    m = SigmaModel(**{**BASE.to_dict(), **out})
    node = [lidar_sigma(s['lidar'], s['lidar_dist'], m, resid=s['lidar_resid'], gap=s['lidar_gap'],
                        layer=s['lidar_layer'])[np.isfinite(s['gt']) & np.isfinite(s['lidar'])] for s in samples]
    assert np.allclose(np.concatenate(node), fit_sigma * scale, rtol=1e-4)


# --- the quantile stage (learned.quantile_refit) -------------------------------------------------------

def _wrong_layer_samples(seed, n=8000):
    """Half the pixels between two layers (G 5-50 % of z), 5 % of those on the far one (error G), the rest
    with Gaussian noise: the Laplace NLL's sigma with one scale covers the bulk well and the tail badly."""
    rng = np.random.default_rng(seed)
    z = np.full(n, 10.0, np.float32)
    g = np.where(rng.random(n) < 0.5, rng.uniform(0.05, 0.5, n), 0.0) * z
    e = rng.normal(0, 0.05, n) + np.where((g > 0) & (rng.random(n) < 0.05), g * rng.choice([-1, 1], n), 0.0)
    row = lambda a: a[None, :].astype(np.float32)       # noqa: E731
    return {'gt': row(z + e), 'lidar': row(z), 'lidar_dist': row(np.ones(n)), 'lidar_resid': row(np.full(n, 0.01)),
            'lidar_gap': row(np.zeros(n)), 'lidar_layer': row(g)}


def _shares(m, samples):
    r = np.concatenate([(np.abs(s['lidar'] - s['gt']) / lidar_sigma(s['lidar'], s['lidar_dist'], m, resid=s['lidar_resid'],
                                                                     gap=s['lidar_gap'], layer=s['lidar_layer'])).ravel()
                        for s in samples])
    return float(np.mean(r <= 1)), float(np.mean(r <= 2))


def test_the_quantile_stage_puts_both_target_shares_in_their_bands_where_one_scale_does_not():
    fit, held = [_wrong_layer_samples(s) for s in (0, 1)], [_wrong_layer_samples(s) for s in (5, 6)]
    (lo1, hi1), (lo2, hi2) = learned.SIGMA_BANDS
    one, two = _shares(SigmaModel(**{**BASE.to_dict(), **fit_lidar_layer(BASE, fit, 'band')}), held)
    assert lo1 <= one <= hi1 and two < lo2                  # one scale: the tail under-covered
    one, two = _shares(SigmaModel(**{**BASE.to_dict(), **fit_lidar_layer(BASE, fit, 'quantile')}), held)
    assert lo1 <= one <= hi1 and lo2 <= two <= hi2, (one, two)


def test_the_quantile_stages_refit_only_their_groups():
    fit = [_wrong_layer_samples(s) for s in (0, 1)]
    band = fit_lidar_layer(BASE, fit, 'band')
    for stage, kept in (('quantile', ('lidar_layer_bias', 'lidar_layer_slope')), ('quantile-layer', ())):
        out = fit_lidar_layer(BASE, fit, stage)
        assert set(out) == set(band)             # S's powers p and q not refitted: not returned
        assert all(out[k] == band[k] for k in kept), stage
        # S's parameters move by one factor (its shape kept)
        assert out['lidar_k'] / out['lidar_s0'] == pytest.approx(band['lidar_k'] / band['lidar_s0'], rel=1e-9)
    with pytest.raises(ValueError, match='unknown LiDAR scale stage'):
        fit_lidar_layer(BASE, fit, 'pinball')


def test_a_diverged_quantile_stage_gives_no_layer_term_not_the_uncalibrated_start(monkeypatch):
    fit = [_wrong_layer_samples(s) for s in (0, 1)]
    real = learned.minimise_lbfgs
    calls = []

    def diverge_second(params, loss_fn, max_iter=300):    # the NLL fit runs; the pinball fit diverges
        calls.append(1)
        if len(calls) == 1:
            return real(params, loss_fn, max_iter)
        with torch.no_grad():
            for t in params:
                t.fill_(float('nan'))
    import torch
    monkeypatch.setattr(learned, 'minimise_lbfgs', diverge_second)
    assert fit_lidar_layer(BASE, fit, 'quantile') == {} and len(calls) == 2
