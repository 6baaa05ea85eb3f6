"""The real-data stereo sigma terms (uncertainty.stereo_features, learned.fit_stereo_features,
band_calibration_scale) on small synthetic cases: no shared data, a fraction of a second each."""
import numpy as np
import pytest

from depthmarks_ros.core.fusion.learned import band_calibration_scale, fit_per_source
from depthmarks_ros.core.fusion.uncertainty import SigmaModel, stereo_features, stereo_sigma

FB = 400.0


def _scene(h=60, w=120):
    """A plane at 10 m (disparity 40) with a step to 5 m in the right third and a 9x9 hole."""
    z = np.full((h, w), 10.0, np.float32)
    z[:, 2 * w // 3:] = 5.0
    z[20:29, 20:29] = np.nan
    return z


def test_defaults_keep_sigma_d0_over_confidence():
    z = _scene()
    conf = np.random.default_rng(0).uniform(0.0, 1.0, z.shape).astype(np.float32)
    m = SigmaModel()
    want = z ** 2 / FB * m.stereo_sigma_d / np.maximum(conf, m.stereo_conf_min) * m.sigma_scale
    got = stereo_sigma(z, conf, FB, 1.0, m)
    assert np.allclose(got, want, rtol=1e-5, equal_nan=True)
    assert np.isnan(got[24, 24])


def test_features_flag_hole_borders_edges_and_islands():
    z = _scene()
    f = stereo_features(z, FB)
    assert f['hole'][24, 19] > f['hole'][24, 10] > f['hole'][45, 40] - 1e-6    # next to the hole > further
    assert f['range'][30, 80] > 1.0 and f['range'][45, 40] == 0.0             # disparity step 40 -> 80
    assert f['holeshare'][24, 19] > 0.2 and f['holeshare'][45, 40] == 0.0
    assert f['disparity'][45, 40] == pytest.approx(40.0) and f['disparity'][24, 24] == 1.0


def test_feature_weights_raise_sigma_where_the_features_say():
    z = _scene()
    conf = np.ones_like(z)
    m = SigmaModel(stereo_sigma_d=0.5, sigma_scale=1.0, stereo_hole=3.0, stereo_range=0.5, stereo_holeshare=2.0)
    s = stereo_sigma(z, conf, FB, 1.0, m)
    flat = s[45, 40]
    far_hole = stereo_features(z, FB)['hole'][45, 40]                  # 1 / distance: small, not 0
    assert far_hole < 0.06
    assert flat == pytest.approx(100 / FB * 0.5 * np.exp(3.0 * far_hole), rel=1e-5)   # range, holeshare 0
    assert s[24, 19] > 2 * s[24, 10] > 2 * flat * 0.99                  # hole border
    assert s[30, 79] > s[30, 40]                                        # depth edge (same depth side)
    q = SigmaModel(stereo_sigma_d=0.5, sigma_scale=1.0, stereo_disp_pow=1.0)
    assert stereo_sigma(z, conf, FB, 1.0, q)[45, 40] == pytest.approx(100 / FB * 0.5 * 40, rel=1e-5)


def test_band_calibration_meets_both_shares_on_heavy_tails():
    rng = np.random.default_rng(1)
    laplace = np.abs(rng.laplace(size=200_000))
    s = band_calibration_scale(laplace)                                       # the 1-sigma bound decides
    assert np.mean(laplace <= s) == pytest.approx(0.72, abs=0.005)
    assert np.mean(laplace <= 2 * s) > 0.915                                  # 68.3 % alone: 0.90
    assert np.mean(laplace <= 2 * np.quantile(laplace, 0.6827)) < 0.905
    gauss = np.abs(rng.normal(size=200_000))
    s = band_calibration_scale(gauss)                                         # a Gaussian: the 68.3 % scale
    assert np.mean(gauss <= s) == pytest.approx(0.683, abs=0.005) and np.mean(gauss <= 2 * s) > 0.95


def _samples(n=2, seed=0):
    """Stereo errors of 0.2 px, and gross ones (8 px) at hole borders: only the hole feature can tell."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        z = _scene(80, 160)
        z[50:60, 100:104] = np.nan
        disp = FB / z
        f = stereo_features(z, FB)
        sd = np.where(f['hole'] > 0.5, 8.0, 0.2)
        noisy = disp + rng.normal(size=z.shape) * sd
        out.append({'gt': z, 'stereo': (FB / np.maximum(noisy, 1.0)).astype(np.float32),
                    'stereo_conf': np.ones_like(z), 'fb': FB})
    return out


def test_fit_learns_the_hole_term_and_calibrates_to_the_bands():
    m = fit_per_source(_samples(), stereo_features=True)                     # the command's path
    assert m.stereo_hole > 2.0 and m.sigma_scale == 1.0
    r = []
    for smp in _samples(seed=5):                                              # fresh noise
        sig = stereo_sigma(smp['stereo'], smp['stereo_conf'], FB, 1.0, m)
        ok = np.isfinite(sig)
        r.append(np.abs(smp['stereo'] - smp['gt'])[ok] / sig[ok])
    r = np.concatenate(r)
    assert 0.63 <= np.mean(r <= 1) <= 0.73 and 0.92 <= np.mean(r <= 2) <= 0.97


def test_per_source_band_calibration_widens_a_heavy_tailed_source():
    """fit_per_source(band=True) (fit-fusion --kitti): each source's factor is the band rule's, which
    on heavy-tailed errors (Laplace) puts more within 2 sigma than the 68.3 % quantile does."""
    rng = np.random.default_rng(2)
    z = np.full((60, 80), 10.0, np.float32)
    smp = {'gt': z, 'stereo': (z + rng.laplace(scale=0.3, size=z.shape)).astype(np.float32),
           'stereo_conf': np.ones_like(z), 'fb': FB}
    shares = {}
    for band in (False, True):
        m = fit_per_source([smp], steps=50, band=band)
        r = np.abs(smp['stereo'] - z) / stereo_sigma(smp['stereo'], smp['stereo_conf'], FB, 1.0, m)
        shares[band] = (np.mean(r <= 1), np.mean(r <= 2))
    assert shares[False][0] == pytest.approx(0.683, abs=0.01) and shares[False][1] < 0.93
    assert shares[True][0] == pytest.approx(0.72, abs=0.01) and shares[True][1] > shares[False][1] + 0.01


def test_feature_sigma_on_empty_and_non_finite_stereo_depth():
    """All-NaN, all-valid and +inf pixels: the features stay finite, sigma is NaN exactly where the
    depth is not finite (NaN confidence counts as c_min), never NaN or 0 elsewhere."""
    m = SigmaModel(stereo_sigma_d=0.16, sigma_scale=1.0, stereo_conf_pow=0.2, stereo_hole=2.3, stereo_range=0.5,
                   stereo_holeshare=2.8, stereo_disp_pow=0.1)
    empty = np.full((20, 30), np.nan, np.float32)
    full = np.full((20, 30), 5.0, np.float32)
    holed = np.where(np.eye(20, 30) > 0, np.inf, full).astype(np.float32)
    for z in (empty, full, holed):
        assert all(np.isfinite(v).all() for v in stereo_features(z, FB).values())
        s = stereo_sigma(z, np.full(z.shape, np.nan, np.float32), FB, 1.0, m)
        assert np.array_equal(np.isfinite(s), np.isfinite(z)) and (s[np.isfinite(s)] > 0).all()
    s = stereo_sigma(holed, np.ones_like(holed), FB, 1.0, m)
    assert s[5, 6] > s[5, 20]                                   # next to an invalid pixel: wider


def test_row_gap_and_the_lidar_gap_term():
    """row_gap: |z_left - z_right| of the nearest returns on the row, 0 at returns and past the last
    one; lidar_gap_pow widens the LiDAR sigma only between disagreeing returns, and a model that
    needs the gap refuses to run without it."""
    from depthmarks_ros.core.fusion.uncertainty import lidar_sigma, row_gap
    sparse = np.full((3, 8), np.nan, np.float32)
    sparse[0, [1, 4]] = [5.0, 20.0]
    sparse[1, [2, 6]] = [7.0, 7.5]
    g = row_gap(sparse)
    assert g[0, 2] == g[0, 3] == pytest.approx(15.0) and g[0, 1] == g[0, 4] == 0.0
    assert g[0, 0] == 0.0 and g[0, 7] == 0.0 and (g[2] == 0).all()          # one side has no return
    assert g[1, 4] == pytest.approx(0.5)
    dense = np.full(sparse.shape, 10.0, np.float32)
    dist = np.ones(sparse.shape, np.float32)
    m = SigmaModel(lidar_s0=0.1, lidar_a=0.0, lidar_b=0.0, lidar_c=0.0, sigma_scale=1.0, lidar_gap_pow=1.0,
                   lidar_base_pow=1.0)
    s = lidar_sigma(dense, dist, m, gap=g)
    assert s[0, 3] == pytest.approx(0.1 * 16.0) and s[0, 4] == pytest.approx(0.1) and s[1, 4] == pytest.approx(0.15)
    with pytest.raises(ValueError, match='row gap'):
        lidar_sigma(dense, dist, m)


def test_row_gap_is_the_gap_of_stereo_fills_row_neighbours():
    """row_gap (runs laid out with np.repeat, 5x faster at KITTI size) gives what stereo.fill.row_neighbours
    gives for the returns (completion.measured): |left - right| of the nearest returns, 0 at a return and where
    a side has none; on random maps of NaN, 0, negative, the 0.1 m threshold itself, inf, float64, one row or column,
    rows without a return or all returns."""
    from depthmarks_ros.core.fusion.completion import MIN_RETURN_DEPTH, measured
    from depthmarks_ros.core.fusion.uncertainty import row_gap
    from depthmarks_ros.core.stereo.fill import row_neighbours
    rng = np.random.default_rng(7)
    specials = np.array([np.nan, 0.0, -3.0, MIN_RETURN_DEPTH, np.nextafter(np.float32(MIN_RETURN_DEPTH),
                                                                           np.float32(1)), np.inf, -np.inf])
    for case in range(200):
        h, w = (int(rng.integers(1, 12)), int(rng.integers(1, 40))) if case % 4 else ((1, 30), (25, 1),
                                                                                   (6, 9), (1, 1))[case // 4 % 4]
        z = rng.uniform(0.2, 80.0, (h, w))
        p_return = rng.choice([0.0, 0.05, 0.3, 0.9, 1.0])
        z[rng.random((h, w)) > p_return] = np.nan
        odd = rng.random((h, w)) < 0.1
        z[odd] = rng.choice(specials, int(odd.sum()))
        sparse = z if case % 2 else z.astype(np.float32)
        ok = measured(sparse)
        _li, _ri, left, right, _base = row_neighbours(np.asarray(sparse, np.float32), ok)
        with np.errstate(invalid='ignore'):                     # inf - inf: NaN in both (between two inf returns)
            want = np.where(ok | np.isnan(left) | np.isnan(right), np.float32(0), np.abs(left - right))
        with np.errstate(invalid='ignore'):
            got = row_gap(sparse)
        assert got.dtype == np.float32 and got.shape == (h, w)
        np.testing.assert_array_equal(got, want, err_msg=f'case {case}')
