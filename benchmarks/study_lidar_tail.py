#!/usr/bin/env python3
"""Can any cheap feature find the KITTI LiDAR hold-out's tail errors? (issue 19, docs/depth_fusion.md)

On the fit-split KITTI frames only (sha1 rule, core/fusion/real_data.SPLIT_RULE), several hold-out seeds:
hide 20 % of the projected returns, complete the rest with ``scanline``, and at the hidden returns
compare |error| with the shipped KITTI sigma (residual term ^ p x (1 + row gap) ^ q) and with
features it does not use:

* RGB image: Sobel gradient magnitude and |Laplacian| at the pixel, 5x5 Lab colour spread, the
  largest horizontal gradient and any Canny edge on the row between the pixel's nearest kept returns
  left and right (an image edge separating the pixel from the returns it is completed from);
* LiDAR-to-camera parallax: the nearest and the farthest kept return in 7x7 relative to the
  completed depth (a return seen past a nearer surface, or a nearer one in front of it);
* geometry: height relative to the camera (ground vs structure), image row, log depth, log(1 + pixel
  distance to the nearest kept return); the LiDAR reflectance spread of the kept returns in 7x7;
* completion: whether scanline's row pass left the pixel to the column pass and the fills
  (no kept return within ROW_GAP px on its row).

Prints (1) the rank correlation of each feature with log(|error| / sigma) (what the shipped sigma
leaves unexplained), over all hidden returns and over those off the ground whose row neighbours agree
(where the previous screen found most of the tail); (2) the tail shape: q92 / q73 of |error| within
deciles of the shipped sigma (both target bands, 63-73 % within 1 sigma and 92-97 % within 2, can be
met by one scale only where q92 <= 2 q73; Gaussian 1.60, Laplace 1.93); (3) the shipped sigma times
exp(w . f) for each feature alone and all together, w by Laplace NLL on one half of the frame
(columns < 621 or >= 621), scaled by learned.margin_scale on that half, scored on the other half;
with --mlp (4) a small MLP on every feature instead (nonlinear in the evidence).

    .venv/bin/python benchmarks/study_lidar_tail.py --data ../shared/data [--seeds 6] [--mlp]
"""
import argparse
import os
import sys

import cv2
import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.fusion import kitti  # noqa: E402
from depthmarks_ros.core.fusion import real_data as R  # noqa: E402
from depthmarks_ros.core.fusion.completion import (EDGE_ABS, EDGE_REL, ROW_GAP, _fill_rows, complete,  # noqa: E402
                                                   distance_to_measurement)
from depthmarks_ros.core.fusion.learned import SIGMA_BANDS, load_model, margin_scale  # noqa: E402
from depthmarks_ros.core.fusion.projection import project_points  # noqa: E402
from depthmarks_ros.core.fusion.uncertainty import interpolation_residual, lidar_sigma, row_gap  # noqa: E402
from depthmarks_ros.core.stereo.fill import row_neighbours  # noqa: E402
from depthmarks_ros.core.transforms import apply_transform  # noqa: E402

PATH_MAX = 16      # px: the row path to the nearest kept returns is looked at up to this far (scanline's ROW_GAP)


def winner_images(root, stem, per_point):
    """(sparse depth, RGB image, calib, camera, {name: (H, W) float32 image of ``per_point(velo)[name]``
    at the z-buffer's winning return of each pixel, NaN elsewhere}) of one KITTI frame."""
    sparse, rgb = R.kitti_object_frame(root, stem)
    calib = kitti.read_calib(os.path.join(root, 'calib', f'{stem}.txt'))
    velo = kitti.read_velodyne(os.path.join(root, 'velodyne', f'{stem}.bin'))
    cam, v2c = kitti.camera_and_extrinsics(calib, rgb.shape[1], rgb.shape[0])
    u, v, z, idx = project_points(apply_transform(v2c, velo[:, :3].astype(np.float32)), cam)
    flat = v * cam.width + u
    order = np.lexsort((z, flat))
    first = np.ones(order.size, bool)
    first[1:] = flat[order][1:] != flat[order][:-1]
    win = order[first]
    images = {}
    for name, values in per_point(velo).items():
        img = images[name] = np.full(sparse.shape, np.nan, np.float32)
        img.ravel()[flat[win]] = values[idx[win]]
    return sparse, rgb, calib, cam, images


def frame_arrays(root, stem):
    """Sparse depth, reflectance image (z-buffer winners), RGB image and fy, cy of one KITTI frame."""
    sparse, rgb, calib, _cam, img = winner_images(root, stem, lambda velo: {'refl': velo[:, 3]})
    P2 = calib['P2'].reshape(3, 4)
    return sparse, img['refl'], rgb, float(P2[1, 1]), float(P2[1, 2])


def box_std(img, k, weight=None):
    if weight is None:
        m1, m2 = cv2.blur(img, (k, k)), cv2.blur(img * img, (k, k))
    else:
        n = np.maximum(cv2.boxFilter(weight, -1, (k, k), normalize=False), 1)
        m1 = cv2.boxFilter(img * weight, -1, (k, k), normalize=False) / n
        m2 = cv2.boxFilter(img * img * weight, -1, (k, k), normalize=False) / n
    return np.sqrt(np.maximum(m2 - m1 * m1, 0))


def hidden_returns(root, stem, seeds, model):
    """Per hidden return of every seed: |error|, shipped sigma, column, and the features (module doc)."""
    sparse, refl, rgb, fy, cy = frame_arrays(root, stem)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.sqrt(gx * gx + gy * gy)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    colour = np.sqrt(sum(box_std(lab[..., c], 5) ** 2 for c in range(3)))
    canny = cv2.Canny(rgb, 50, 150) > 0
    cols = []
    for seed in seeds:
        inp, mask = R.hold_out(sparse, seed=seed)
        dense = complete(inp, 'scanline')
        sig = lidar_sigma(dense, distance_to_measurement(inp), model, resid=interpolation_residual(inp),
                          gap=row_gap(inp))
        ys, xs = np.nonzero(mask & np.isfinite(dense) & np.isfinite(sig))
        kept = np.isfinite(inp)
        li, ri, _zl, _zr, _ = row_neighbours(np.ascontiguousarray(inp, np.float32), kept)
        path_grad = np.zeros(ys.size, np.float32)
        path_edge = np.zeros(ys.size, np.float32)
        for j, (y, x) in enumerate(zip(ys, xs)):
            a, b = li[y, x], ri[y, x]
            a = max(x if a < 0 else a, x - PATH_MAX)
            b = min(x if b < 0 else b, x + PATH_MAX)
            path_grad[j] = np.abs(gx[y, a:b + 1]).max()
            path_edge[j] = canny[y, a:b + 1].any()
        nearest = cv2.erode(np.where(kept, inp, 1e6).astype(np.float32), np.ones((7, 7), np.uint8))
        farthest = cv2.dilate(np.where(kept, inp, 0).astype(np.float32), np.ones((7, 7), np.uint8))
        by_rows = np.isfinite(_fill_rows(inp.copy(), ROW_GAP, EDGE_REL, EDGE_ABS))   # scanline's row pass
        rspread = box_std(np.where(kept, refl, 0).astype(np.float32), 7, kept.astype(np.float32))
        z = dense[ys, xs].astype(np.float64)
        cols.append({
            'err': np.abs(z - sparse[ys, xs]), 'sigma': sig[ys, xs].astype(np.float64), 'x': xs,
            'gap': row_gap(inp)[ys, xs],
            'grad': np.log1p(grad[ys, xs] / 50), 'laplacian': np.log1p(lap[ys, xs] / 20),
            'colour_std': np.log1p(colour[ys, xs] / 10), 'path_grad': np.log1p(path_grad / 50),
            'path_edge': path_edge, 'parallax_near': np.log1p(10 * np.clip((z - nearest[ys, xs]) / z, 0, 5)),
            'parallax_far': np.log1p(10 * np.clip((farthest[ys, xs] - z) / z, 0, 5)),
            'height': -(ys - cy) * z / fy, 'row': ys / sparse.shape[0], 'log_z': np.log(z),
            'log_dist': np.log1p(distance_to_measurement(inp)[ys, xs]), 'refl_spread': rspread[ys, xs],
            'column_filled': (~by_rows[ys, xs]).astype(np.float64)})
    return {k: np.concatenate([c[k] for c in cols]).astype(np.float64) for k in cols[0]}


FEATURES = ('grad', 'laplacian', 'colour_std', 'path_grad', 'path_edge', 'parallax_near', 'parallax_far',
            'height', 'row', 'log_z', 'log_dist', 'refl_spread', 'column_filled')


def rank_corr(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit_log_linear(d, names, train):
    """w of sigma * exp(w0 + w . f) by Laplace NLL (L-BFGS) on the ``train`` returns."""
    import torch
    X = torch.tensor(np.stack([np.ones(int(train.sum()))] + [d[n][train] for n in names], 1))
    ls0 = torch.tensor(np.log(d['sigma'][train]))
    e = torch.tensor(d['err'][train])
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        ls = ls0 + X @ w
        loss = (ls + e / torch.exp(ls)).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()


def fit_mlp(d, train, hidden=16, steps=600, seed=0):
    """A small MLP (tanh, ``hidden`` x 2) on every feature and log sigma, its output added to log sigma,
    Laplace NLL (Adam, weight decay 1e-3) on the ``train`` returns: a nonlinear predictor of the scale.
    Returns the fitted sigma at every return."""
    import torch
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    X = np.stack([d[n] for n in FEATURES] + [np.log(d['sigma']), np.log1p(d['gap'])], 1)
    X = torch.tensor((X - X[train].mean(0)) / (X[train].std(0) + 1e-9), dtype=torch.float32)
    ls0 = torch.tensor(np.log(d['sigma']), dtype=torch.float32)
    e = torch.tensor(d['err'], dtype=torch.float32)
    t = torch.tensor(train)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden),
                              torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        ls = ls0[t] + net(X[t])[:, 0]
        loss = (ls + e[t] / torch.exp(ls)).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return np.exp((ls0 + net(X)[:, 0]).numpy().astype(np.float64))


def shares(r):
    return float(np.mean(r <= 1)), float(np.mean(r <= 2)), float(np.mean(r <= 3))


def in_bands(one, two):
    (l1, h1), (l2, h2) = SIGMA_BANDS
    return l1 <= one <= h1 and l2 <= two <= h2


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=os.path.join(ROOT, '..', 'shared', 'data'))
    ap.add_argument('--seeds', type=int, default=6, help='hold-out seeds 0..N-1 per frame')
    ap.add_argument('--mlp', action='store_true', help='also (4): a small MLP on every feature (a few minutes)')
    args = ap.parse_args()
    root = os.path.join(args.data, 'lidar', 'kitti_object')
    model = load_model(R.SHIPPED_KITTI_MODEL)
    stems = R.split_stems(R.kitti_object_stems(root), 'fit')
    print(f'fit split only ({R.SPLIT_RULE}): {", ".join(stems)}; hold-out seeds 0-{args.seeds - 1}; shipped KITTI sigma')
    parts = [hidden_returns(root, s, range(args.seeds), model) for s in stems]
    d = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    resid = np.log(d['err'] + 1e-4) - np.log(d['sigma'])
    struct = (d['gap'] < 0.05) & (d['height'] > -1.2)
    r = d['err'] / d['sigma']
    print(f'{r.size} hidden returns; shipped sigma: within 1 / 2 / 3 sigma %.3f / %.3f / %.3f' % shares(r))
    print('\n(1) rank correlation with log(|error| / sigma): all returns | off the ground, row neighbours agree '
          f'({int(struct.sum())})')
    for n in FEATURES:
        print(f'  {n:14s} {rank_corr(d[n], resid):+.3f} | {rank_corr(d[n][struct], resid[struct]):+.3f}')
    print('\n(2) tail shape within deciles of the shipped sigma: q92 / q73 of |error| (<= 2 needed; Gaussian 1.60, Laplace 1.93)')
    edges = np.quantile(d['sigma'], np.linspace(0, 1, 11))
    for lo, hi in zip(edges[:-1], edges[1:]):
        b = (d['sigma'] >= lo) & (d['sigma'] <= hi)
        q73, q92 = np.quantile(d['err'][b], [0.73, 0.92])
        print(f'  sigma {lo:.3f}-{hi:.3f} m: q73 {q73:.3f} q92 {q92:.3f} m, ratio {q92 / q73:.2f}')
    q73, q92 = np.quantile(d['err'][struct], [0.73, 0.92])
    print(f'  off the ground, row neighbours agree: ratio {q92 / q73:.2f}')
    print('\n(3) sigma x exp(w . f), Laplace NLL + margin_scale on one half, scored on the other '
          '(test within 1 / 2 / 3 sigma; [training half 1 / 2])')
    half = d['x'] < 621
    for names in [()] + [(n,) for n in FEATURES] + [FEATURES]:
        cells, ok = [], True
        for train in (half, ~half):
            w = fit_log_linear(d, list(names), train)
            s = d['sigma'] * np.exp(np.stack([np.ones(r.size)] + [d[n] for n in names], 1) @ w)
            k = margin_scale(d['err'][train] / s[train])
            te, tr = shares(d['err'][~train] / (k * s[~train])), shares(d['err'][train] / (k * s[train]))
            ok &= in_bands(te[0], te[1])
            cells.append('%.3f / %.3f / %.3f [%.3f / %.3f]' % (te + tr[:2]))
        label = 'all features' if len(names) > 1 else (names[0] if names else 'scale only')
        print(f'  {label:14s} test B: {cells[0]}  test A: {cells[1]}  {"both halves in both bands" if ok else ""}')
    if args.mlp:
        print('\n(4) the same with a small MLP (16 x 2, every feature and log sigma, log row gap) instead of w . f')
        cells = []
        for train in (half, ~half):
            s = fit_mlp(d, train)
            k = margin_scale(d['err'][train] / s[train])
            te, tr = shares(d['err'][~train] / (k * s[~train])), shares(d['err'][train] / (k * s[train]))
            cells.append('%.3f / %.3f / %.3f [%.3f / %.3f]' % (te + tr[:2]))
        print(f'  MLP            test B: {cells[0]}  test A: {cells[1]}')


if __name__ == '__main__':
    main()
