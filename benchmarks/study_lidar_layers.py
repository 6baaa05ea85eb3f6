#!/usr/bin/env python3
"""Issue 19, fifth pass: completion disagreement, layer-gap and row/column-distance features for the KITTI
LiDAR sigma (docs/depth_fusion.md, "fifth pass").

Split (core/split.py, sha1 rule): every form is fitted on the fit frame 000001 only (hold-out seeds
0-2 pooled) and scored on the report frame 000002 (seed 0, the benchmark's hold-out, and seeds 0-2
pooled). The report frame is never fitted on, but the table prints its column next to the fit frame's:
when the fifth pass chose its form from this table, the report figures were in view (docs/depth_fusion.md
says so), so they are not a clean held-out selection. Section (0) (--procedure-only: nothing else) never
reads the report frame: the shipped fit and its slope designs on the fit frame and its halves, which is
how the layer slope's bounds were chosen. Cross-validation inside the fit frame: each form fitted on one
half of 000001 (columns < 621 / >= 621) and scored on the other, both ways.

Features at each hidden return, all from the kept returns (deployable in the node):
* ensemble spread: |scanline - IP-Basic| (ipb), |scanline - nearest return| (nn) and max - min of the
  three completions at the pixel (ens);
* layer gap: the largest |kept return - completed depth| in a window around the pixel (the far or near
  layer the pixel may belong to; uncertainty.layer_gap), windows 3x9, 5x5, 5x9, 11x7, 9x15 (rows x cols;
  the HDL-64E's scan lines are ~5 px apart in the image), and its near and far halves alone;
* the share of the kept returns in 5x9 that lie on another layer than the completed depth (off share);
* row and column distance: px to the nearest kept return on the pixel's row and on its column.

Forms (each scaled on its training part by learned.margin_scale, or with --calibration band by
learned.band_calibration_scale, what fit-fusion ships; cells: within 1 / 2 sigma):
(L) the previous shipped sigma x exp(w . f), w by Laplace NLL;
(M) mixture variance: sigma^2 = (c0 s)^2 + sum_i p_i (g_i G_i)^2 with s that sigma, G_i a layer gap or a
    completion disagreement, p_i = sigmoid(w_i . [1, log(1 + 10 G_i / z), features]) with the features
    --p-features: rc (log(1 + row / column distance)), d (log(1 + pixel distance)) or none, all by Laplace
    NLL;
and for every form the largest 2-sigma share any single scale reaches with <= 0.73 within 1 sigma on the
scored part ("best": the form's shape, not its calibration). Section (0) runs the shipped fit itself
(learned.fit_per_source(band=True): the row-gap model, then the layer term, M with G = 5x9 layer gap and
--p-features none) on one half of 000001 and scores it on the other, with and without the layer term,
and with the layer slope w1 unconstrained, in [-2, 8] and in [0, 8] (the shipped bounds, learned.LAYER_SLOPE_MIN
/ MAX), and in [0, 8] with the mixture likelihood (learned.LAYER_LIKELIHOOD), each also on the whole fit frame, with the share within 2 sigma of the hidden returns whose error
is > 1 m where the 5x9 layer gap G is 30-100 % of the depth (edge errors of metres); and the layer term's
calibration by quantile stages (learned.LIDAR_SCALES: the scale of S and g, then also w0 and w1, then also
S's shape, refitted by the pinball losses at 68.3 % within 1 sigma and 95.4 % within 2), with, on the whole
fit frame, how far rescaling alone can go (two scales on S and the layer part, one scale per bin of
G / z, z or pixel distance: in-sample oracles).

    .venv/bin/python benchmarks/study_lidar_layers.py --data ../shared/data --procedure-only
    .venv/bin/python benchmarks/study_lidar_layers.py --data ../shared/data
    .venv/bin/python benchmarks/study_lidar_layers.py --data ../shared/data --p-features none --calibration band
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.fusion import real_data as R  # noqa: E402
from depthmarks_ros.core.fusion.completion import complete, distance_to_measurement  # noqa: E402
from depthmarks_ros.core.fusion.learned import (band_calibration_scale, load_model, margin_scale,  # noqa: E402
                                               minimise_laplace_nll)
from depthmarks_ros.core.fusion.uncertainty import interpolation_residual, lidar_sigma, row_gap  # noqa: E402
from depthmarks_ros.core.fusion.uncertainty import layer_gap as core_layer_gap  # noqa: E402
from depthmarks_ros.core.stereo.fill import row_neighbours  # noqa: E402

HALF_COL = 621


CALIBRATION = 'margin'


def calib(r):
    return band_calibration_scale(r) if CALIBRATION == 'band' else margin_scale(r)
WINDOWS = ((5, 9), (11, 7), (3, 9), (5, 5), (9, 15))


def nearest_fill(inp):
    import cv2
    none = (~np.isfinite(inp)).astype(np.uint8)
    _d, lab = cv2.distanceTransformWithLabels(none, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(none == 0)
    lut = np.zeros(lab.max() + 1, np.float32)
    lut[lab[ys, xs]] = inp[ys, xs]
    return lut[lab]


def layer_gap(inp, dense, rows, cols, side='both'):
    """uncertainty.layer_gap (side 'both'), or only its far (farthest return - z) or near (z - nearest) half."""
    import cv2
    if side == 'both':
        return core_layer_gap(inp, dense, rows, cols)
    k = np.ones((rows, cols), np.uint8)
    if side == 'far':
        g = cv2.dilate(np.nan_to_num(inp, nan=0.0).astype(np.float32), k) - dense
    else:
        g = dense - cv2.erode(np.nan_to_num(inp, nan=np.float32(1e6)).astype(np.float32), k)
    return np.where(np.isfinite(g), np.maximum(g, 0), 0).astype(np.float32)


def off_share(inp, dense, ys, xs, rows, cols):
    """Share of the kept returns in the window whose depth differs from the completed depth by more than
    scanline's rule (0.3 m + 5 % z): how many of the neighbours lie on another layer (study only: a loop)."""
    h, w = inp.shape
    z = dense[ys, xs]
    n = np.zeros(ys.size)
    off = np.zeros(ys.size)
    for dy in range(-(rows // 2), rows // 2 + 1):
        for dx in range(-(cols // 2), cols // 2 + 1):
            yy, xx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
            v = inp[yy, xx]
            ok = np.isfinite(v)
            n += ok
            off += ok & (np.abs(np.nan_to_num(v) - z) > 0.3 + 0.05 * z)
    return off / np.maximum(n, 1)


def row_col_distance(inp):
    kept = np.isfinite(inp)
    out = []
    for m in (kept, kept.T):
        w = m.shape[1]
        li, ri, _a, _b, _ = row_neighbours(np.ascontiguousarray(np.where(m, 1.0, np.nan), np.float32), m)
        x = np.arange(w)[None, :]
        dl = np.where(li >= 0, x - li, 999)
        dr = np.where(ri < w, ri - x, 999)
        out.append(np.minimum(dl, dr).astype(np.float32))
    return out[0], out[1].T


def samples(root, stem, seeds, model):
    sparse, _rgb = R.kitti_object_frame(root, stem)
    parts = []
    for seed in seeds:
        inp, mask = R.hold_out(sparse, seed=seed)
        dense = complete(inp, 'scanline')
        ipb = complete(inp, 'classical')
        nn = nearest_fill(inp)
        sig = lidar_sigma(dense, distance_to_measurement(inp), model, resid=interpolation_residual(inp),
                          gap=row_gap(inp))
        rd, cd = row_col_distance(inp)
        ys, xs = np.nonzero(mask & np.isfinite(dense) & np.isfinite(sig) & (sig > 0))
        z = dense[ys, xs].astype(np.float64)
        a, b = ipb[ys, xs].astype(np.float64), nn[ys, xs].astype(np.float64)
        a = np.where(np.isfinite(a), a, z)
        d = {'err': np.abs(z - sparse[ys, xs]), 'sigma': sig[ys, xs].astype(np.float64), 'z': z,
             'x': xs, 'edge9': None,
             'ipb': np.abs(z - a), 'nn': np.abs(z - b),
             'ens': np.maximum(np.maximum(z, a), b) - np.minimum(np.minimum(z, a), b),
             'gap': row_gap(inp)[ys, xs].astype(np.float64),
             'rowd': rd[ys, xs].astype(np.float64), 'cold': cd[ys, xs].astype(np.float64)}
        for r, c in WINDOWS:
            d[f'layer{r}x{c}'] = layer_gap(inp, dense, r, c)[ys, xs].astype(np.float64)
        for r, c in ((5, 5), (5, 9), (3, 3)):
            d[f'near{r}x{c}'] = layer_gap(inp, dense, r, c, 'near')[ys, xs].astype(np.float64)
            d[f'far{r}x{c}'] = layer_gap(inp, dense, r, c, 'far')[ys, xs].astype(np.float64)
        d['dist'] = distance_to_measurement(inp)[ys, xs].astype(np.float64)
        d['off5x9'] = off_share(inp, dense, ys, xs, 5, 9)
        from depthmarks_ros.core.fusion.uncertainty import local_range
        d['edge9'] = (local_range(sparse, 9) > 1.0)[ys, xs]
        parts.append(d)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, [len(p['err']) for p in parts]


def sub(d, m):
    return {k: v[m] for k, v in d.items()}


def rel(d, name):
    if name.startswith('off'):
        return d[name]
    return np.log1p(10 * d[name] / d['z'])


def log_linear_design(d, names):
    return np.stack([np.ones(d['err'].size)] + [rel(d, n) for n in names], 1)


MIX_P = 'rc'


def mix_design(d):
    if MIX_P == 'd':
        return np.stack([np.ones(d['err'].size), np.log1p(d['dist'].clip(0, 50))], 1)
    if MIX_P == 'none':
        return np.ones((d['err'].size, 1))
    return np.stack([np.ones(d['err'].size), np.log1p(d['rowd'].clip(0, 50)), np.log1p(d['cold'].clip(0, 50))], 1)


def fit(d, form):
    """Parameters of ``form`` ('L', names) or ('M', gapname) by Laplace NLL (L-BFGS) on ``d``."""
    import torch
    e = torch.tensor(d['err'])
    ls0 = torch.tensor(np.log(d['sigma']))
    kind, arg = form
    if kind == 'L':
        X = torch.tensor(log_linear_design(d, arg))
        w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)

        def scale(w):
            return torch.exp(ls0 + X @ w)
    else:
        Xs, Gs = mix_parts(d, arg)
        nx = Xs[0].shape[1]
        w = torch.tensor(([0.0] + sum(([-3.0] + [0.0] * (nx - 1) + [0.0] for _ in Gs), [])),
                         dtype=torch.float64, requires_grad=True)

        def scale(w):
            return mix_scale(ls0, Xs, Gs, w)
    minimise_laplace_nll(w, scale, e)
    wd = w.detach()
    return lambda dd: _apply(dd, form, wd)


def _apply(d, form, w):
    import torch
    with torch.no_grad():
        ls0 = torch.tensor(np.log(d['sigma']))
        kind, arg = form
        if kind == 'L':
            return torch.exp(ls0 + torch.tensor(log_linear_design(d, arg)) @ w).numpy()
        Xs, Gs = mix_parts(d, arg)
        return mix_scale(ls0, Xs, Gs, w).numpy()


def mix_parts(d, arg):
    import torch
    gaps, extra = arg if isinstance(arg, tuple) else ((arg,), ())
    base = [mix_design(d)] + [rel(d, n)[:, None] for n in extra]
    Xs = [torch.tensor(np.concatenate(base + [rel(d, g)[:, None]], 1)) for g in gaps]
    return Xs, [torch.tensor(d[g]) for g in gaps]


def mix_scale(ls0, Xs, Gs, w):
    import torch
    v = torch.exp(2 * (ls0 + w[0]))
    nx = Xs[0].shape[1]
    for i, (X, G) in enumerate(zip(Xs, Gs)):
        o = 1 + i * (nx + 1)
        v = v + torch.sigmoid(X @ w[o:o + nx]) * (torch.exp(w[o + nx]) * G) ** 2
    return torch.sqrt(v)


def best_two(r, one_max=0.73):
    """The largest share within 2 k for any k with share within k <= one_max."""
    r = np.sort(r)
    k = r[int(one_max * r.size) - 1]
    return float(np.mean(r <= 2 * k))


def cell(r, k=1.0):
    return f'{np.mean(r <= k):.3f} / {np.mean(r <= 2 * k):.3f} (best {best_two(r):.3f})'


FORMS = [('previous shipped sigma (scale only)', ('L', ())),
         ('L ipb', ('L', ('ipb',))), ('L nn', ('L', ('nn',))), ('L ens', ('L', ('ens',))),
         ('L layer5x9', ('L', ('layer5x9',))), ('L layer11x7', ('L', ('layer11x7',))),
         ('L rowd+cold', ('L', ('rowd', 'cold'))), ('L off share', ('L', ('off5x9',))),
         ('L ens+layer5x9+rowd+cold', ('L', ('ens', 'layer5x9', 'rowd', 'cold'))),
         ('M G=ipb', ('M', 'ipb')), ('M G=ens', ('M', 'ens')), ('M G=layer5x9', ('M', 'layer5x9')),
         ('M G=layer11x7', ('M', 'layer11x7')), ('M G=layer3x9', ('M', 'layer3x9')),
         ('M G=layer5x5', ('M', 'layer5x5')), ('M G=layer9x15', ('M', 'layer9x15')),
         ('M G=near5x5 + G=far5x9', ('M', (('near5x5', 'far5x9'), ()))),
         ('M G=far5x9 + G=ipb', ('M', (('far5x9', 'ipb'), ()))),
         ('M G=layer5x9, p + off share', ('M', (('layer5x9',), ('off5x9',)))),
         ('M G=layer5x9, p + row gap', ('M', (('layer5x9',), ('gap',)))),
         ('M G=layer5x9, p + ens', ('M', (('layer5x9',), ('ens',)))),
         ('M G=layer5x9 + G=ens', ('M', (('layer5x9', 'ens'), ()))),
         ('M G=layer5x9 + G=ipb', ('M', (('layer5x9', 'ipb'), ()))),
         ('M G=layer3x9 + G=ens', ('M', (('layer3x9', 'ens'), ()))),
         ('M G=layer5x9 + G=ens + G=row gap', ('M', (('layer5x9', 'ens', 'gap'), ()))),
         ('M G=layer5x9 + G=ens, p + off share', ('M', (('layer5x9', 'ens'), ('off5x9',))))]


def shipped_procedure_cv(root, stem, seeds=(0, 1, 2), only=()):
    """The fit the package ships (learned.fit_per_source(band=True): s0, k, p, q, then the layer term),
    fitted on one half of the fit frame (columns < HALF_COL or >= HALF_COL) and scored on the other, with
    and without the layer term (the samples without 'lidar_layer': the previous model's form)."""
    from depthmarks_ros.core.fusion.learned import REAL_LIDAR_FIXED, fit_per_source
    sparse, rgb = R.kitti_object_frame(root, stem)
    smps = [R.lidar_holdout_sample(sparse, rgb, 'scanline', seed) for seed in seeds]
    cols = np.arange(sparse.shape[1])[None, :]
    halves = (cols < HALF_COL, cols >= HALF_COL)
    print(f'(0) the shipped fit procedure (learned.fit_per_source(band=True), fit-fusion --kitti), on halves of '
          f'{stem}: cells within 1 / 2 sigma (best 2-sigma share at <= 0.73 within 1 sigma, any scale)')
    print('  ("edge > 1 m": within 2 sigma, the hidden returns with error > 1 m and G / z in [0.3, 1), G the 5x9 layer '
          'gap; n = their count)')
    from depthmarks_ros.core.fusion import learned
    slope_range = (learned.LAYER_SLOPE_MIN, learned.LAYER_SLOPE_MAX)
    designs = (('previous form (no layer term)', False, slope_range),
               ('layer term, w1 unconstrained (in [-50, 50]; shipped before)', True, (-50.0, 50.0)),
               ('layer term, w1 in [-2, 8] (P (g G)^2 non-decreasing in G, P may fall)', True, (-2.0, slope_range[1])),
               (f'layer term, w1 in [{slope_range[0]:g}, {slope_range[1]:g}] (P non-decreasing in G), band scale (one scale on the whole sigma)',
                True, slope_range),
               (f'layer term, w1 in [{slope_range[0]:g}, {slope_range[1]:g}], mixture likelihood', 'mixture', slope_range),
               (f'layer term, w1 in [{slope_range[0]:g}, {slope_range[1]:g}], quantile scales (S and g apart, pinball '
                'at 68.3 / 95.4 %)', 'quantile', slope_range),
               (f'layer term, w1 in [{slope_range[0]:g}, {slope_range[1]:g}], quantile stage on S\'s scale, g, w0, w1',
                'quantile-layer', slope_range),
               (f'layer term, w1 in [{slope_range[0]:g}, {slope_range[1]:g}], quantile stage on S\'s scale and shape '
                '(k / s0, p, q), g, w0, w1', 'quantile-all', slope_range))
    if only:
        designs = tuple(d for i, d in enumerate(designs) if i in only)
    likelihood, stage = learned.LAYER_LIKELIHOOD, learned.LIDAR_SCALE_STAGE

    def set_design(keep_layer, lo, hi):
        learned.LAYER_SLOPE_MIN, learned.LAYER_SLOPE_MAX = lo, hi
        learned.LAYER_LIKELIHOOD = 'mixture' if keep_layer == 'mixture' else 'laplace'
        learned.LIDAR_SCALE_STAGE = keep_layer if keep_layer in learned.LIDAR_SCALES else stage

    for label, keep_layer, (lo, hi) in designs:
        set_design(keep_layer, lo, hi)
        out = []
        for tr, te in (halves, halves[::-1]):
            train = [{**{k: v for k, v in smp.items() if keep_layer or k != 'lidar_layer'},
                      'gt': np.where(tr, smp['gt'], np.nan).astype(np.float32)} for smp in smps]
            m = fit_per_source(train, steps=300, fixed=REAL_LIDAR_FIXED, band=True)
            for part, mask in (('train', tr), ('test', te)):
                r, hard = [], []
                for smp in smps:
                    sig = lidar_sigma(smp['lidar'], smp['lidar_dist'], m, resid=smp['lidar_resid'],
                                      gap=smp['lidar_gap'], layer=smp['lidar_layer'])
                    ok = mask & np.isfinite(smp['gt']) & np.isfinite(sig) & (sig > 0)
                    e = np.abs(smp['lidar'] - smp['gt'])
                    r.append(e[ok] / sig[ok])
                    rel = smp['lidar_layer'][ok] / smp['lidar'][ok]
                    hard.append((e[ok] / sig[ok])[(e[ok] > 1.0) & (rel >= 0.3) & (rel < 1.0)])
                r, hard = np.concatenate(r), np.concatenate(hard)
                if hard.size:
                    out.append(f'{part} {cell(r, 1.0)} edge > 1 m {np.mean(hard <= 2):.2f} (n {hard.size})')
                else:
                    out.append(f'{part} {cell(r, 1.0)}')
            if keep_layer:
                out[-1] += f' [w0 {m.lidar_layer_bias:.2f} w1 {m.lidar_layer_slope:.2f} g {m.lidar_layer:.3f}]'
        print(f'  {label}: A -> B: {out[0]}, {out[1]}; B -> A: {out[2]}, {out[3]}', flush=True)
    learned.LAYER_SLOPE_MIN, learned.LAYER_SLOPE_MAX = slope_range
    learned.LAYER_LIKELIHOOD, learned.LIDAR_SCALE_STAGE = likelihood, stage
    # the whole fit frame, every design: its own figure (fit-fusion's fit) and its > 1 m edge errors
    print(f'  whole {stem} (train = test, what fit-fusion fits):')
    for label, keep_layer, (lo, hi) in designs:
        set_design(keep_layer, lo, hi)
        train = [{k: v for k, v in smp.items() if keep_layer or k != 'lidar_layer'} for smp in smps]
        m = fit_per_source(train, steps=300, fixed=REAL_LIDAR_FIXED, band=True)
        r, hard = [], []
        for smp in smps:
            sig = lidar_sigma(smp['lidar'], smp['lidar_dist'], m, resid=smp['lidar_resid'],
                              gap=smp['lidar_gap'], layer=smp['lidar_layer'])
            ok = np.isfinite(smp['gt']) & np.isfinite(sig) & (sig > 0)
            e = np.abs(smp['lidar'] - smp['gt'])
            r.append(e[ok] / sig[ok])
            rel = smp['lidar_layer'][ok] / smp['lidar'][ok]
            hard.append((e[ok] / sig[ok])[(e[ok] > 1.0) & (rel >= 0.3) & (rel < 1.0)])
        r, hard = np.concatenate(r), np.concatenate(hard)
        extra = f' [w0 {m.lidar_layer_bias:.2f} w1 {m.lidar_layer_slope:.2f} g {m.lidar_layer:.3f}]' if keep_layer else ''
        print(f'    {label}: {cell(r, 1.0)} edge > 1 m {np.mean(hard <= 2):.2f} (n {hard.size}){extra}', flush=True)
    learned.LAYER_SLOPE_MIN, learned.LAYER_SLOPE_MAX = slope_range
    learned.LAYER_LIKELIHOOD, learned.LIDAR_SCALE_STAGE = likelihood, stage
    scale_frontier(smps, stem)


def scale_frontier(smps, stem):
    """In-sample bounds of rescaling alone on the whole fit frame: the shipped procedure's fit (band), then
    sigma^2 = (a S)^2 + (b L)^2 (L = sqrt(P) g G, its layer part) for b / a on a grid, and one scale per
    bin of G / z, of z or of the pixel distance (each bin's own 68.3 % scale, an oracle on the same
    errors): the best 2-sigma share any of them reaches at <= 0.73 within 1 sigma."""
    from depthmarks_ros.core.fusion.learned import REAL_LIDAR_FIXED, fit_per_source
    from depthmarks_ros.core.fusion.uncertainty import layer_probability
    m = fit_per_source(smps, steps=300, fixed=REAL_LIDAR_FIXED, band=True, lidar_scales='band')
    E, S, Z, G, D = [], [], [], [], []
    for smp in smps:
        sig = lidar_sigma(smp['lidar'], smp['lidar_dist'], m, resid=smp['lidar_resid'], gap=smp['lidar_gap'],
                          layer=smp['lidar_layer'])
        ok = np.isfinite(smp['gt']) & np.isfinite(sig) & (sig > 0)
        for acc, v in ((E, np.abs(smp['lidar'] - smp['gt'])), (S, sig), (Z, smp['lidar']), (G, smp['lidar_layer']),
                       (D, smp['lidar_dist'])):
            acc.append(v[ok].astype(np.float64))
    E, S, Z, G, D = (np.concatenate(a) for a in (E, S, Z, G, D))
    L = np.sqrt(layer_probability(Z, G, m.lidar_layer_bias, m.lidar_layer_slope)) * m.lidar_layer * G
    B = np.sqrt(np.maximum(S * S - L * L, 0.0))
    print(f'  rescaling alone, whole {stem} (in-sample; best 2-sigma share at <= 0.73 within 1 sigma, and the '
          '2-sigma share at 68.3 % within 1):')
    cells = []
    for ratio in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        r = E / np.sqrt(B * B + (ratio * L) ** 2)
        cells.append(f'b/a {ratio:g}: {best_two(r):.3f} ({np.mean(r <= 2 * np.quantile(r, 0.6827)):.3f})')
    print('    two scales, sigma^2 = (a S)^2 + (b L)^2: ' + '; '.join(cells))
    for name, x, edges in (('G / z', G / Z, (0, 0.005, 0.02, 0.05, 0.1, 0.3, 1, np.inf)),
                           ('z', Z, (0, 10, 20, 40, np.inf)), ('pixel distance', D, (0, 1, 2, 3, 5, np.inf))):
        s2 = S.copy()
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = (x >= lo) & (x < hi)
            if sel.any():
                s2[sel] *= np.quantile(E[sel] / S[sel], 0.6827)
        r = E / s2
        print(f'    one scale per {name} bin ({", ".join(f"{e:g}" for e in edges[1:-1])}): {best_two(r):.3f} '
              f'({np.mean(r <= 2):.3f})')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data'))
    ap.add_argument('--model', default=R.SHIPPED_KITTI_MODEL, help='base sigma (its layer term, if any, is left out)')
    ap.add_argument('--p-features', choices=('rc', 'd', 'none'), default='rc',
                    help="the layer probability's features besides log(1 + 10 G / z): row and column distance "
                         "(rc), pixel distance (d), none (the shipped form)")
    ap.add_argument('--calibration', choices=('margin', 'band'), default='margin',
                    help='learned.margin_scale, or learned.band_calibration_scale (what fit-fusion ships)')
    ap.add_argument('--only', default='', help="';'-separated form labels to run (default: all)")
    ap.add_argument('--no-procedure', action='store_true', help='skip section (0)')
    ap.add_argument('--procedure-only', action='store_true',
                    help='only section (0): the shipped fit on the fit frame and its halves (never the report frame)')
    ap.add_argument('--designs', default='',
                    help="section (0): ','-separated indices of the designs to run (default: all)")
    args = ap.parse_args()
    global MIX_P, CALIBRATION
    MIX_P, CALIBRATION = args.p_features, args.calibration
    import torch
    torch.set_num_threads(1)
    root = os.path.join(args.data, 'lidar', 'kitti_object')
    from dataclasses import replace
    model = replace(load_model(args.model), lidar_layer=0.0)
    fit_stem = R.split_stems(R.kitti_object_stems(root), 'fit')[0]
    rep_stem = R.split_stems(R.kitti_object_stems(root), 'report')[0]
    print(f'split: {R.SPLIT_RULE}; fit {fit_stem}, report {rep_stem}; hold-out seeds 0-2; scanline; '
          f'base: {os.path.relpath(args.model, ROOT)} without its layer term; p features {MIX_P}; '
          f'calibration {CALIBRATION}; load {os.getloadavg()[0]:.1f}')
    if not args.no_procedure:
        shipped_procedure_cv(root, fit_stem, only=tuple(int(i) for i in args.designs.split(',') if i))
    if args.procedure_only:
        return
    F, _ = samples(root, fit_stem, (0, 1, 2), model)
    P, nper = samples(root, rep_stem, (0, 1, 2), model)
    P0 = sub(P, np.arange(P['err'].size) < nper[0])
    print(f'hidden returns: fit {F["err"].size}, report seed 0 {P0["err"].size}, seeds 0-2 {P["err"].size}')
    forms = [(n, f) for n, f in FORMS if not args.only or n in args.only.split(';')]
    halves = (F['x'] < HALF_COL, F['x'] >= HALF_COL)
    print(f'cells: within 1 / 2 sigma at the training part\'s {CALIBRATION} scale (best 2-sigma share at <= 0.73 '
          'within 1 sigma, any scale)')
    print('| form | fit 000001 (train) | report 000002 seed 0 | report seeds 0-2 | CV: half B from A | CV: half A from B |')
    print('|---|---|---|---|---|---|')
    for label, form in forms:
        f = fit(F, form)
        s = f(F)
        k = calib(F['err'] / s)
        cells = [cell(F['err'] / s, k), cell(P0['err'] / f(P0), k), cell(P['err'] / f(P), k)]
        for tr, te in (halves, halves[::-1]):
            g = fit(sub(F, tr), form)
            kk = calib(F['err'][tr] / g(sub(F, tr)))
            cells.append(cell(F['err'][te] / g(sub(F, te)), kk))
        print(f'| {label} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()
