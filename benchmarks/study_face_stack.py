#!/usr/bin/env python3
"""A stacked linear refinement of the hybrid's output (issue 18, AFLW2000-3D box-NME; FIT split only, the
report split is bench_face.py's).

Reads the hybrid's cross-fitted estimates of its mesh-followed fit-split faces (``hybrid_stack_inputs.npz``,
written by ``depthmarks fit-face ... --parts profile`` or ``--parts sigma-hybrid`` with ``--cache DIR``:
each face's mesh points m from mesh maps, dlib's d on the box from them, the turned-face predictor's e
(|quick yaw| >= 30) from predictors, and the blend / turned-face weights of the output, all fitted
without the face's fold) and prints

  * the hybrid's cross-fitted NME by |yaw| band and landmark region, each set's, next to m's and d's;
  * 5-fold cross-validated (folds sha1 // 5 % 5, core/split.py) stacked refinements: each face mirrored to
    look one way and aligned by a 2D similarity of its output onto the mean output shape (a canonical
    frame, as core/face/mapping.py aligns the mesh); a ridge regression (squared-NME weights, the two sets
    weighted equally, ridge weight lam x the mean feature variance) predicts the ground truth's offset from
    the output there from the offsets of m, d and e (zero where e did not run) from it (and the output's own
    offset from the mean shape: ``out``), mapped back. Global (every point from every point), or local (each
    point from its own three offsets, 6 numbers; jaw points ``r`` neighbours either side too); with or
    without an intercept (a mean offset: the bias correction of the fifth pass), one copy of the slopes per
    |yaw| band, or fitted and applied only at |yaw| >= a bound;
  * the decision: the design with the largest AFLW gain among those whose paired AFLW gain exceeds 2
    standard errors while 300-W gets worse by at most 0.0005 (none: nothing to adopt).

    nice -n 10 .venv/bin/python benchmarks/study_face_stack.py --records DIR/hybrid_stack_inputs.npz
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.face.datasets import SPLIT_RULE  # noqa: E402
from depthmarks_ros.core.face.ibug68 import REGIONS, mirror_68  # noqa: E402
from depthmarks_ros.core.face.mapping import align, mean_shape, unalign  # noqa: E402
from depthmarks_ros.core.face.metrics import YAW_BANDS  # noqa: E402

LAMS = (0.01, 0.1, 1, 3, 10, 30, 100, 300)
MAX_300W_LOSS = 0.0005


class Records:
    def __init__(self, path):
        from depthmarks_ros.core.face.sigma_fit import load_records
        self.__dict__.update(load_records(path))
        self.n = len(self.yaw)
        self.aflw = self.dataset == 'aflw2000_3d'
        self.w = np.where(self.aflw, 1.0 / max(self.aflw.sum(), 1), 1.0 / max((~self.aflw).sum(), 1))
        self.has_e = np.isfinite(self.e68[:, 0, 0])
        left = self.yaw < 0           # every face looks one way: the model of the side turned away is one model
        o = {k: np.where(left[:, None, None], mirror_68(getattr(self, k + '68')), getattr(self, k + '68'))
             for k in ('out', 'm', 'd', 'gt')}
        o['e'] = np.where(left[:, None, None], mirror_68(np.nan_to_num(self.e68)), self.e68)
        ref = mean_shape(o['out'], o['out'][0] - o['out'][0].mean(axis=0), unit_rms=False)   # the mean output shape
        self.T = [align(x, ref)[1] for x in o['out']]
        self.al = {k: np.array([v[i] @ (s * R).T + t for i, (s, R, t) in enumerate(self.T)]) for k, v in o.items()}
        self.al['e'][~self.has_e] = self.al['out'][~self.has_e]
        self.ref = ref
        self.c = self.w / np.array([(s * n) ** 2 for (s, _, _), n in zip(self.T, self.norm)])   # squared NME

    def nme(self, i, p):
        return float(np.linalg.norm(p - self.gt68[i], axis=1).mean() / self.norm[i])

    def back(self, i, aligned):
        p = unalign(aligned, self.T[i])
        return mirror_68(p) if self.yaw[i] < 0 else p


def ridge_cv(rec, F, Y, on, lam, intercept):
    """Cross-fitted predictions (rows of ``on``; zeros elsewhere) of Y from F, ridge lam x mean variance."""
    P = np.zeros_like(Y)
    for k in range(5):
        tr, te = (rec.fold != k) & on, (rec.fold == k) & on
        c = rec.c[tr][:, None]
        mu = (c * F[tr]).sum(0) / c.sum()
        my = (c * Y[tr]).sum(0) / c.sum() if intercept else np.zeros(Y.shape[1])
        X = F[tr] - mu
        G = X.T @ (c * X)
        W = np.linalg.solve(G + lam * np.trace(G) / len(G) * np.eye(len(G)), X.T @ (c * (Y[tr] - my)))
        P[te] = (F[te] - mu) @ W + my
    return P


def band_copies(F, yaw, bands):
    if bands is None:
        return F
    b = np.clip(np.searchsorted(bands, np.abs(yaw), side='right') - 1, 0, len(bands) - 2)
    oh = np.eye(len(bands) - 1)[b]
    return np.concatenate([F, (oh[:, :, None] * F[:, None, :]).reshape(len(F), -1), oh], axis=1)


def global_design(rec, keys, bands, intercept, min_yaw, lam):
    off = {k: (rec.al[k] - rec.al['out']).reshape(rec.n, -1) for k in ('m', 'd', 'e')}
    parts = [(rec.al['out'] - rec.ref).reshape(rec.n, -1) if k == 'out' else off[k] for k in keys]
    F = band_copies(np.concatenate(parts + [np.abs(rec.yaw)[:, None] / 90.0], axis=1), rec.yaw, bands)
    Y = (rec.al['gt'] - rec.al['out']).reshape(rec.n, -1)
    on = np.abs(rec.yaw) >= min_yaw
    return rec.al['out'] + ridge_cv(rec, F, Y, on, lam, intercept).reshape(rec.n, 68, 2)


def local_design(rec, r, bands, intercept, min_yaw, lam):
    on = np.abs(rec.yaw) >= min_yaw
    out = rec.al['out'].copy()
    for i in range(68):
        nb = [j for j in range(i - r, i + r + 1) if 0 <= j <= 16] if i <= 16 else [i]
        F = np.concatenate([(rec.al[k][:, nb] - rec.al['out'][:, nb]).reshape(rec.n, -1) for k in ('m', 'd', 'e')],
                           axis=1)
        F = band_copies(F, rec.yaw, bands)
        out[:, i] += ridge_cv(rec, F, rec.al['gt'][:, i] - rec.al['out'][:, i], on, lam, intercept)
    return out


def score(rec, aligned):
    e0 = np.array([rec.nme(i, rec.out68[i]) for i in range(rec.n)])
    e1 = np.array([rec.nme(i, rec.back(i, aligned[i])) for i in range(rec.n)])
    res = {}
    for name, m in (('aflw', rec.aflw), ('300w', ~rec.aflw)):
        d = e1[m] - e0[m]
        res[name] = (e0[m].mean(), e1[m].mean(), d.mean(), d.std(ddof=1) / np.sqrt(m.sum()))
    return res


def breakdown(rec):
    print('hybrid cross-fitted NME by |yaw| band (quick yaw) and region; share = the band\'s part of its set\'s total;'
          ' m / d = the mesh\'s and dlib\'s points alone')
    for name, m in (('AFLW2000-3D box-NME', rec.aflw), ('300-W inter-ocular NME', ~rec.aflw)):
        pp = np.array([np.linalg.norm(rec.out68[i] - rec.gt68[i], axis=1) / rec.norm[i] for i in range(rec.n)])
        tot = pp[m].mean(axis=1).sum()
        print(f'  {name}: {m.sum()} faces, {pp[m].mean():.4f}')
        for lo, hi in zip(YAW_BANDS[:-1], YAW_BANDS[1:]):
            idx = np.flatnonzero(m & (np.abs(rec.yaw) >= lo) & (np.abs(rec.yaw) < hi))
            if not len(idx):
                continue
            alone = {k: np.mean([rec.nme(i, getattr(rec, k + '68')[i]) for i in idx]) for k in ('m', 'd')}
            print(f'    |yaw| {lo}-{hi}: {len(idx):4d} faces, {pp[idx].mean():.4f} (share {pp[idx].mean(1).sum() / tot:4.0%}); '
                  + ', '.join(f'{k} {pp[idx][:, list(r)].mean():.4f}' for k, r in REGIONS.items())
                  + f"; m {alone['m']:.4f}, d {alone['d']:.4f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--records', required=True, help='hybrid_stack_inputs.npz of a fit-face --cache folder')
    ap.add_argument('--lams', default=','.join(str(v) for v in LAMS))
    args = ap.parse_args(argv)
    rec = Records(args.records)
    lams = [float(v) for v in args.lams.split(',')]
    print(f'{rec.n} mesh-followed fit-split faces ({rec.aflw.sum()} AFLW2000-3D, {(~rec.aflw).sum()} 300-W), '
          f'{rec.has_e.sum()} with the turned-face predictor; split: {SPLIT_RULE} (the report split is not read)')
    breakdown(rec)
    designs = [('mean offset only (intercept, no slopes)',
                lambda lam: global_design(rec, ('out', 'm', 'd', 'e'), None, True, 0.0, 1e9))]
    for keys in (('out', 'm', 'd', 'e'), ('m', 'd', 'e')):
        for bands in (None, (0, 30, 360), (0, 15, 30, 45, 360)):
            for intercept in (True, False):
                designs.append((f"global {'+'.join(keys)} bands={bands} intercept={intercept}",
                                lambda lam, a=(keys, bands, intercept, 0.0): global_design(rec, *a, lam)))
    for min_yaw in (20.0, 30.0):
        for intercept in (True, False):
            designs.append((f'global out+m+d+e at |yaw| >= {min_yaw:g} intercept={intercept}',
                            lambda lam, a=(('out', 'm', 'd', 'e'), None, intercept, min_yaw): global_design(rec, *a, lam)))
    for r in (0, 2):
        for bands in (None, (0, 15, 30, 45, 360)):
            for intercept in (True, False):
                designs.append((f'local r={r} bands={bands} intercept={intercept}',
                                lambda lam, a=(r, bands, intercept, 0.0): local_design(rec, *a, lam)))
    designs.append(('local r=0 at |yaw| >= 30 intercept=True', lambda lam: local_design(rec, 0, None, True, 30.0, lam)))
    print('5-fold cross-validated stacked refinements (paired difference to the hybrid, +- one standard error):')
    best = None
    for name, fn in designs:
        for lam in (lams if name.startswith(('global', 'local')) else [1e9]):
            s = score(rec, fn(lam))
            a, w = s['aflw'], s['300w']
            ok = -a[2] > 2 * a[3] and w[2] <= MAX_300W_LOSS
            print(f'  {name} lam={lam:g}: AFLW {a[0]:.5f} -> {a[1]:.5f} ({a[2]:+.5f} +- {a[3]:.5f}), '
                  f'300-W {w[0]:.5f} -> {w[1]:.5f} ({w[2]:+.5f} +- {w[3]:.5f}){" *" if ok else ""}', flush=True)
            if ok and (best is None or a[2] < best[2]):
                best = (name, lam, a[2], w[2], a[2] / a[0], w[2] / w[0])
    if best is None:
        print(f'no design gains on AFLW beyond 2 standard errors with 300-W worse by <= {MAX_300W_LOSS}')
    else:
        print(f'best admissible (*): {best[0]} lam={best[1]:g}: AFLW {best[2]:+.5f} ({best[4]:+.1%}), '
              f'300-W {best[3]:+.5f} ({best[5]:+.1%})')


if __name__ == '__main__':
    main()
