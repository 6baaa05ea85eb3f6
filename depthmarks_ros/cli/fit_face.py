"""`depthmarks fit-face --data DIR`: fit the shipped face artefacts on the fit split of the real face
sets (split rule: core/face/datasets.py SPLIT_RULE; the report split is never read):

* ``face_model_68.npy`` (+ ``.json``): the 3D mean face for head pose, from AFLW2000-3D's 3D landmarks
  (faces with every |angle| <= 99 deg), rotated to zero pose with the set's own Pose_Para.

Writes into ``--output`` (default: the package's data folder).
"""
from __future__ import annotations

import json
import os
import sys

PACKAGE_DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', 'data'))


def add_arguments(p) -> None:
    p.add_argument('--data', required=True, help='folder holding faces/aflw2000_3d (e.g. ../shared/data)')
    p.add_argument('--output', '-o', default=PACKAGE_DATA, help='folder for the artefacts (default: %(default)s)')


def fit_face_model(data: str, output: str) -> dict:
    import numpy as np
    from depthmarks_ros.core.face.datasets import SPLIT_RULE, load_aflw2000_3d
    from depthmarks_ros.core.face.model_fit import OUTER_CANTHAL_M, fit_mean_face
    samples = [s for s in load_aflw2000_3d(os.path.join(data, 'faces', 'aflw2000_3d'), 'fit')
               if np.all(np.abs(s.pose_deg) <= 99)]
    if not samples:
        raise FileNotFoundError(f'no AFLW2000-3D faces under {data}/faces/aflw2000_3d')
    mean, _, resid = fit_mean_face([s.points3d for s in samples], [s.pose_deg for s in samples])
    np.save(os.path.join(output, 'face_model_68.npy'), mean)
    meta = {'what': '68-point 3D mean face (metres; head frame x image-right, y down, z away from the camera '
                    'at zero pose)',
            'data': 'AFLW2000-3D pt3d_68, fit split, faces with every |Pose_Para angle| <= 99 deg',
            'split_rule': SPLIT_RULE, 'faces': len(samples), 'outer_canthal_distance_m': OUTER_CANTHAL_M,
            'residual_rms_m': [round(float(v), 5) for v in resid],
            'command': 'depthmarks fit-face --data ../shared/data'}
    with open(os.path.join(output, 'face_model_68.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


def run(args) -> int:
    os.makedirs(args.output, exist_ok=True)
    try:
        meta = fit_face_model(args.data, args.output)
    except FileNotFoundError as exc:
        print(f'fit-face: {exc}', file=sys.stderr)
        return 1
    print(f"face model: {meta['faces']} faces, mean residual {1000 * sum(meta['residual_rms_m']) / 68:.1f} mm")
    return 0
