#!/usr/bin/env python3
"""The hybrid's two landmark conventions on the FIT split (issue 18; the report split is bench_face.py's).

Reads two record files of the hybrid's cross-fitted estimates of its mesh-followed fit-split faces
(``hybrid_stack_inputs.npz`` / ``hybrid_stack_inputs_3d.npz``, written by ``depthmarks fit-face ... --parts
profile`` (or ``sigma-hybrid``) ``--cache DIR`` with ``--convention 2d`` / ``3d``: each face's output from
mesh maps, blends, turned-face predictors and their weights fitted without the face's fold, 5 folds by
sha1 // 5 % 5, core/split.py) and prints, on the faces both hold, each set's cross-fitted NME of the two,
by |yaw| band and landmark region, and the paired difference (3d - 2d) +- one standard error.

    nice -n 10 .venv/bin/python benchmarks/study_face_convention.py --records-2d DIR/hybrid_stack_inputs.npz \\
        --records-3d DIR3/hybrid_stack_inputs_3d.npz
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.face.datasets import SPLIT_RULE  # noqa: E402
from depthmarks_ros.core.face.ibug68 import REGIONS  # noqa: E402
from depthmarks_ros.core.face.metrics import YAW_BANDS  # noqa: E402


def load(path):
    from depthmarks_ros.core.face.sigma_fit import load_records
    return load_records(path)


def nme(r, idx, pts=slice(None)):
    return np.linalg.norm(r['out68'][idx][:, pts] - r['gt68'][idx][:, pts], axis=2).mean(axis=1) / r['norm'][idx]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--records-2d', required=True)
    ap.add_argument('--records-3d', required=True)
    args = ap.parse_args(argv)
    a, b = load(args.records_2d), load(args.records_3d)
    print(f'fit split only (split rule: {SPLIT_RULE}; the report split never read), cross-fitted '
          '(5 folds by sha1 // 5 % 5)')
    pos = {s: i for i, s in enumerate(b['stem'])}
    for ds in sorted(set(a['dataset']) | set(b['dataset'])):
        common = [s for s, d in zip(a['stem'], a['dataset']) if d == ds and s in pos]
        if not common:
            print(f'{ds}: no face in both record files (2d {np.sum(a["dataset"] == ds)}, 3d {np.sum(b["dataset"] == ds)})')
            continue
        ia = np.array([np.flatnonzero(a['stem'] == s)[0] for s in common])
        ib = np.array([pos[s] for s in common])
        e2, e3 = nme(a, ia), nme(b, ib)
        d = e3 - e2
        print(f'{ds}: {len(common)} faces, NME 2d {e2.mean():.4f}, 3d {e3.mean():.4f}, 3d - 2d {d.mean():+.4f} '
              f'+- {d.std(ddof=1) / np.sqrt(len(d)):.4f}; 3d better on {np.mean(d < 0) * 100:.0f} % of faces')
        yaw = np.abs(a['yaw'][ia])
        print('  |quick yaw| band: faces, 2d -> 3d')
        for lo, hi in zip(YAW_BANDS[:-1], YAW_BANDS[1:]):
            k = (yaw >= lo) & (yaw < hi)
            if k.any():
                print(f'    {lo}-{hi}: {k.sum()}, {e2[k].mean():.4f} -> {e3[k].mean():.4f}')
        print('  region: 2d -> 3d  ' + ', '.join(
            f'{n} {nme(a, ia, list(r)).mean():.4f} -> {nme(b, ib, list(r)).mean():.4f}' for n, r in REGIONS.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
