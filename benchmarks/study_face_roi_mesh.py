#!/usr/bin/env python3
"""Faces the mesh cannot follow: why, and what MediaPipe's landmark model on our own region gives there
(issue 18; FIT split only, the report split is bench_face.py's).

The default hybrid (core/face/hybrid.py) runs on every fit-split image; for each annotated face it
outputs from the keypoint path (layout box68: the detector found it, no crop mesh followed it) this
prints
  * why the crop mesh failed: the legacy Face Mesh on the same crop with its face-presence gate off
    (min_tracking_confidence 0): a mesh there means its detector found the face and the gate dropped it;
  * MediaPipe's face landmark model run directly on a region (core/body/mp_graphs.FaceMeshByRoi, no
    detector, no gate) placed from the detection (box + eye keypoints, face_roi), from the keypoint
    path's 68 points, and from the ground truth (an oracle): its presence score, box-NME of its 68
    points through the learned map (what the mediapipe backend would output) and through the hybrid's
    blend and turned-face predictor (HybridFace68.blend_mesh_face, what the hybrid would output),
    next to the keypoint path's box-NME (in-sample: the shipped predictor was trained on these faces);
  * the rule "the region's mesh where its presence >= t" for several t, and the cost of one run.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/study_face_roi_mesh.py --data /work/shared/data
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from depthmarks_ros.core.body.mp_graphs import FaceMeshByRoi, face_roi  # noqa: E402
from depthmarks_ros.core.body.roi import Roi, alignment_rotation  # noqa: E402
from depthmarks_ros.core.face.backends import FaceResult, _bbox  # noqa: E402
from depthmarks_ros.core.face.datasets import SPLIT_RULE, load_aflw2000_3d, load_pts_folder  # noqa: E402
from depthmarks_ros.core.face.metrics import bbox_size  # noqa: E402
from depthmarks_ros.core.face.model_fit import run_on_sample  # noqa: E402
from depthmarks_ros.core.face.pipeline import FaceLandmarker  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
SCALE_68 = 1.6          # region side / larger side of the 68 points' box (best of 1.3, 1.6, 2.0 on the oracle)


def roi_from_68(p: np.ndarray, scale: float = SCALE_68) -> Roi:
    """A region around 68 points as MediaPipe's tracking makes one around its mesh: the box, moved up
    by a tenth of its height (the mesh holds the forehead), ``scale`` x its larger side, turned so the
    chin -> nose-root line is up."""
    (x0, y0), (x1, y1) = p.min(axis=0), p.max(axis=0)
    r = alignment_rotation(p[8], p[27])
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + 0.1 * (y1 - y0) * np.array([np.sin(r), -np.cos(r)])
    return Roi(float(c[0]), float(c[1]), scale * max(x1 - x0, y1 - y0), float(r))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default=os.path.normpath(os.path.join(ROOT, '..', 'shared', 'data')))
    ap.add_argument('--limit', type=int, default=0, help='first N images per set (0: all)')
    args = ap.parse_args()
    print(f'split: fit ({SPLIT_RULE}); load average {os.getloadavg()}')
    from depthmarks_ros.core.mediapipe_env import import_mediapipe
    mp = import_mediapipe()
    faces = os.path.join(args.data, 'faces')
    sets = [('AFLW2000-3D', load_aflw2000_3d(os.path.join(faces, 'aflw2000_3d'), 'fit')),
            ('300-W', load_pts_folder(os.path.join(faces, '300w_lfpw_test'), 'fit'))]
    lm = FaceLandmarker('hybrid', static=True)
    hy = lm.backend
    nogate = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, min_detection_confidence=0.3,
                                             min_tracking_confidence=0.0)
    roi_mesh = FaceMeshByRoi()
    costs = []
    for set_name, samples in sets:
        samples = samples[:args.limit] if args.limit else samples
        rows, t0, n_found = [], time.time(), 0
        for s in samples:
            rgb = s.load_rgb()
            f = run_on_sample(lm, s, rgb)['face']
            n_found += f is not None
            if f is None or f.layout != 'box68' or not hy.mesh.unmeshed:
                continue
            c = f.landmarks68.mean(axis=0)
            det = min(hy.mesh.unmeshed, key=lambda d: np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - c))
            gt, norm = s.landmarks68, bbox_size(s.landmarks68)

            def nme(p):
                return float(np.linalg.norm(p - gt, axis=1).mean() / norm)

            row = dict(stem=s.stem, yaw=float(s.pose_deg[0]) if s.pose_deg is not None else float('nan'),
                       kp=nme(f.landmarks68))
            crop_mesh, hy.mesh._crop_mesh = hy.mesh._crop_mesh, nogate     # the same crop, gate off
            try:
                row['gate'] = hy.mesh._mesh_in_box(rgb, det.box, det.angle) is not None
            finally:
                hy.mesh._crop_mesh = crop_mesh
            for name, roi in (('detection', face_roi(det.box, det.keypoints)),
                              ('keypoint path', roi_from_68(f.landmarks68)), ('oracle: truth', roi_from_68(gt))):
                t = time.perf_counter()
                m = roi_mesh(rgb, roi)
                costs.append(time.perf_counter() - t)
                if m is None:
                    continue
                r = FaceResult(m.points[:, :2], hy.to68(m.points), _bbox(m.points[:, :2]), 1.0, hy.layout, m.points[:, 2])
                mapped = nme(r.landmarks68)
                hy.blend_mesh_face(rgb, r)
                row[name] = (m.presence, mapped, nme(r.landmarks68))
            rows.append(row)
            print(f"  {s.stem} yaw {row['yaw']:5.0f}  keypoint path {row['kp']:.3f}  gate dropped it: "
                  f"{'yes' if row['gate'] else 'no '}  " + '  '.join(
                      f'{k}: p {v[0]:.2f} map {v[1]:.3f} hybrid {v[2]:.3f}' for k, v in row.items()
                      if isinstance(v, tuple)), flush=True)
        print(f'{set_name}: {len(samples)} fit images, {n_found} faces found, {len(rows)} from the keypoint path '
              f'({time.time() - t0:.0f} s)')
        if not rows:
            continue
        kp = np.array([r['kp'] for r in rows])
        print(f"  the crop mesh's detector found the face and the presence gate (0.5) dropped it: "
              f"{sum(r['gate'] for r in rows)} of {len(rows)}; keypoint path box-NME {kp.mean():.4f}")
        for name in ('detection', 'keypoint path', 'oracle: truth'):
            ok = [r for r in rows if name in r]
            if not ok:
                continue
            p, mapped, hyb, k = (np.array([r[name][0] for r in ok]), np.array([r[name][1] for r in ok]),
                                 np.array([r[name][2] for r in ok]), np.array([r['kp'] for r in ok]))
            print(f'  region from the {name} ({len(ok)} faces, median presence {np.median(p):.3f}): always: '
                  f'map {mapped.mean():.4f}, hybrid {hyb.mean():.4f} (keypoint path {k.mean():.4f}; '
                  f'the region better on {int((hyb < k).sum())})')
            for t in THRESHOLDS:
                sel = p >= t
                if sel.any():
                    print(f'    presence >= {t}: {sel.sum():2d} faces: keypoint path {k[sel].mean():.4f} -> region '
                          f'{hyb[sel].mean():.4f} (map {mapped[sel].mean():.4f}); all {len(ok)}: {k.mean():.4f} -> '
                          f'{np.where(sel, hyb, k).mean():.4f}')
    if costs:
        print(f'cost of one region mesh (FaceMeshByRoi): median {np.median(costs) * 1e3:.1f} ms over {len(costs)} runs; '
              f'load average {os.getloadavg()}')
    lm.close()
    nogate.close()
    roi_mesh.close()


if __name__ == '__main__':
    main()
