"""Fitting the shipped face artefacts on annotated real faces (ROS-free): the 3D mean face for head
pose (from AFLW2000-3D's 3D landmarks), and helpers shared by ``depthmarks fit-face``."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from depthmarks_ros.core.face.artefacts import file_sha1
from depthmarks_ros.core.face.head_pose import folder_face_model, rotation_from_angles
from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from depthmarks_ros.core.split import fold_of, is_validation

OUTER_CANTHAL_M = 0.090   # metres between the outer eye corners of the mean face (typical adult)


def unrotate(points3d: np.ndarray, pose_deg: np.ndarray) -> np.ndarray:
    """AFLW2000-3D 3D landmarks (x, y px, z px away) -> the head frame at zero pose, centred, with the
    outer eye corners 1 apart."""
    R = rotation_from_angles(*pose_deg)
    X = (points3d - points3d.mean(axis=0)) @ R        # R^T applied to each row
    return X / np.linalg.norm(X[LEFT_EYE_OUTER] - X[RIGHT_EYE_OUTER])


def fit_mean_face(points3d: Sequence[np.ndarray], poses_deg: Sequence[np.ndarray],
                  n_modes: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean 68-point face in metres (head frame: x image-right, y down, z away from the camera at zero
    pose), its first ``n_modes`` PCA shape modes (n_modes, 68, 3) scaled by their standard deviation,
    and the per-point residual RMS (68,) in metres about the mean."""
    shapes = np.stack([unrotate(p, a) for p, a in zip(points3d, poses_deg)]) * OUTER_CANTHAL_M
    mean = shapes.mean(axis=0)
    mean -= mean.mean(axis=0)
    d = (shapes - mean).reshape(len(shapes), -1)
    resid = np.sqrt(np.mean(np.sum((shapes - mean) ** 2, axis=2), axis=0))
    if n_modes:
        _, s, vt = np.linalg.svd(d - d.mean(axis=0), full_matrices=False)
        modes = (vt[:n_modes] * (s[:n_modes, None] / np.sqrt(len(shapes)))).reshape(n_modes, 68, 3)
    else:
        modes = np.zeros((0, 68, 3))
    return mean, modes, resid


# ---------------------------------------------------------------------------------------------
# running a backend over annotated images (fit-face and benchmarks/bench_face.py)

def camera_for(sample, image_size) -> np.ndarray:
    """The pinhole camera assumed for an annotated image without intrinsics: principal point at the
    centre, f = AFLW_FOCAL_PX for AFLW2000-3D (its labels come from a weak-perspective fit), else
    the image width."""
    from depthmarks_ros.core.face.datasets import AFLW_FOCAL_PX
    from depthmarks_ros.core.camera import assumed_K
    w, h = image_size
    return assumed_K(w, h, AFLW_FOCAL_PX if sample.dataset == 'aflw2000_3d' else float(w))


# The fits run the landmarkers with all_views=False: they use the annotated face only, and the every-view
# detector search (detection.py detect_all) finds it in 1 more of the 1176 fit-split images at ~4x the time.


def run_on_sample(landmarker, sample, rgb=None) -> dict:
    """The face nearest the annotation (or None), the seconds the landmarker took, and the image."""
    import time
    rgb = sample.load_rgb() if rgb is None else rgb
    h, w = rgb.shape[:2]
    K = camera_for(sample, (w, h))
    landmarker.tracker = type(landmarker.tracker)()
    t0 = time.perf_counter()
    faces = landmarker.process(rgb, K)
    dt = time.perf_counter() - t0
    gt = sample.landmarks68
    size = max(np.ptp(gt, axis=0))
    best = None
    for f in faces:
        d = np.linalg.norm(f.landmarks68.mean(axis=0) - gt.mean(axis=0))
        if d < 0.5 * size and (best is None or d < best[0]):
            best = (d, f)
    return {'face': best[1] if best else None, 'seconds': dt, 'K': K, 'n_faces': len(faces)}


_validation = is_validation     # a validation part inside the fit split (choosing the ridge weight)


def fit_box_map(samples) -> tuple:
    """Median (dx, dy, scale) from MediaPipe's short-range detector box to dlib HOG's box on the faces
    both find (the box convention dlib's shape predictor was trained with)."""
    import cv2
    import dlib
    from depthmarks_ros.core.face.detection import FaceDetector
    det = FaceDetector(fallback_hog=False, full=False)
    hog = dlib.get_frontal_face_detector()
    rows = []
    for s in samples:
        rgb = s.load_rgb()
        mp = [d for d in det.detect(rgb) if d.source == 'mp_short']
        rects, scores, _ = hog.run(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 0, 0.0)
        if not mp or not len(rects):
            continue
        b = mp[0].box
        r = rects[int(np.argmax(scores))]
        size = max(b[2] - b[0], b[3] - b[1])
        hc = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        d = (hc - [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) / size
        if np.abs(d).max() < 0.5:
            rows.append((d[0], d[1], max(r.right() - r.left(), r.bottom() - r.top()) / size))
    det.close()
    med = np.median(np.array(rows), axis=0) if rows else np.array([0.0, 0.0, 1.0])
    return tuple(float(v) for v in med), len(rows)


def fit_landmark_artefacts(aflw, w300, output: str, parts, command: str, cache: str = '', convention: str = '2d'):
    """Fit the box map, mesh -> 68 map, sigma models and head-pose calibration into ``output``;
    yields progress lines. ``cache``: a folder for the sigma models' error records
    (core/face/sigma_fit.py; ``depthmarks fit-face --parts sigma-cached`` refits from them alone).
    ``convention`` (core/face/convention.py): the files of a convention's own artefacts (the mesh map, the
    hybrid's blend and sigma model) are written under its names (``artefact_name``); the caller passes the
    convention's sets (CONVENTION_SETS: '3d' AFLW2000-3D alone, ``w300`` empty)."""
    import json
    import os
    from depthmarks_ros.core.face.convention import artefact_name
    from depthmarks_ros.core.face.datasets import SPLIT_RULE
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    from depthmarks_ros.core.face.mapping import MeshTo68
    from depthmarks_ros.core.face.pipeline import FaceLandmarker
    from depthmarks_ros.core.face.sigma_fit import error_records, fit_and_save
    samples = list(aflw) + list(w300)
    mean_face = folder_face_model(output)       # the folder's 3D mean face (the model part's, where it ran first)
    fit_path = os.path.join(output, 'face_fit.json')
    fit = {}
    existed = os.path.isfile(fit_path)
    if existed:
        with open(fit_path) as f:
            fit = json.load(f)
    old = fit.get('version')
    run_meta = {'split_rule': SPLIT_RULE, 'command': command,
                'fit_images': {'aflw2000_3d': len(aflw), '300w_lfpw_test': len(w300)}}
    if convention == '2d':
        fit.update(run_meta)
    else:                     # the shared file's own record stays the '2d' fit's; a convention's run beside it
        fit.setdefault('convention_runs', {})[convention] = run_meta

    def save_fit():
        with open(fit_path, 'w') as f:
            json.dump(fit, f, indent=1)
    if old != FIT_VERSION:      # a new file, or an older format: its angle factors go (the pose part refits them)
        _drop_old_pose_factors(fit)
        save_fit()
        if existed:
            yield (f'face_fit.json: version {old!r} -> {FIT_VERSION}; its head-pose angle factors dropped '
                   '(run the pose part to refit them)')
    if 'box' in parts:
        box, n = fit_box_map(samples)
        fit['box_map'] = {'mp': list(box), 'hog': [0.0, 0.0, 1.0]}
        fit['box_map_faces'] = n
        save_fit()
        yield f'box map (dx, dy, scale) = {np.round(box, 4).tolist()} from {n} faces'
    weights = np.array([1.0 / max(len(aflw), 1)] * len(aflw) + [1.0 / max(len(w300), 1)] * len(w300))
    if 'sigma' in parts:                 # every backend's sigma model (the hybrid's without refitting its blend)
        parts = list(parts) + ['sigma-mediapipe', 'sigma-dlib', 'sigma-dlib_hog', 'sigma-hybrid']
    if {'mapping', 'sigma-mediapipe', 'hybrid', 'sigma-hybrid', 'profile'} & set(parts):
        lm = FaceLandmarker('mediapipe', static=True, mapping='fixed', sigma='tta', data_dir=output, all_views=False)
        mesh_recs = []
        for s, wt in zip(samples, weights):
            r = run_on_sample(lm, s)
            if r['face'] is not None and 'mesh' in r['face'].extras:
                mesh_recs.append({'sample': s, 'mesh': r['face'].extras['mesh'][:468], 'weight': wt,
                                  'tta': [m[:468] for m in r['face'].extras['tta_meshes']]})
        lm.close()
        yield f'mesh found on {len(mesh_recs)} of {len(samples)} fit images'
        meshes = [r['mesh'] for r in mesh_recs]
        targets = [r['sample'].landmarks68 for r in mesh_recs]
        wts = [r['weight'] for r in mesh_recs]
        val = np.array([_validation(r['sample'].stem) for r in mesh_recs])
        best = None
        for ridge in (1e-3, 1e-2, 1e-1, 1.0):
            m = MeshTo68.fit([x for x, v in zip(meshes, val) if not v], [x for x, v in zip(targets, val) if not v],
                             ridge, [x for x, v in zip(wts, val) if not v])
            errs = {}
            for r, x in zip(mesh_recs, val):
                if x:
                    ds = r['sample'].dataset
                    d = np.linalg.norm(m.apply(r['mesh']) - r['sample'].landmarks68, axis=1).mean()
                    errs.setdefault(ds, []).append(d / _norm(r['sample']))
            score = np.mean([np.mean(v) for v in errs.values()])
            yield f'ridge {ridge:g}: validation NME ' + ', '.join(f'{k} {np.mean(v):.4f}' for k, v in errs.items())
            if best is None or score < best[0]:
                best = (score, ridge)
        ridge = best[1]
        meta = {'split_rule': SPLIT_RULE, 'command': command, 'ridge': ridge, 'faces': len(meshes),
                'vertices': 468, 'convention': convention,
                'data': _sets_text(aflw, w300)}
        mapping = MeshTo68.fit(meshes, targets, ridge, wts, meta)
        if 'mapping' in parts:
            mapping.save(os.path.join(output, artefact_name('face_mesh_to_68.npz', convention)))
            yield f'mesh -> 68 map: ridge {ridge:g}, {len(meshes)} faces'
    if 'sigma-mediapipe' in parts:
        # MediaPipe + learned map: errors of maps fitted without the face (5 folds by sha1 % 5 inside the fit split)
        fold = np.array([fold_of(r['sample'].stem) for r in mesh_recs])
        l68s, others = [None] * len(mesh_recs), [None] * len(mesh_recs)
        for k in range(5):
            tr = fold != k
            mk = MeshTo68.fit([x for x, t in zip(meshes, tr) if t], [x for x, t in zip(targets, tr) if t], ridge,
                              [x for x, t in zip(wts, tr) if t])
            for i in np.flatnonzero(~tr):
                l68s[i] = mk.apply(mesh_recs[i]['mesh'])
                others[i] = [mk.apply(m) for m in mesh_recs[i]['tta']]
        rec = error_records([r['sample'] for r in mesh_recs], l68s, others, camera_for, model=mean_face)
        yield from fit_and_save('mediapipe', rec, output, {'backend': 'mediapipe (learned map)', 'faces': len(rec['E']),
                                                           'split_rule': SPLIT_RULE, 'command': command,
                                                           'errors': 'cross-fitted mesh map (5 folds)'}, cache)
    # the hybrid's sigma model from its cross-fitted output: with the turned-face predictor where the
    # shipped hybrid has one (_fit_profile), else the blend alone (_fit_hybrid)
    profiled = 'profile' in parts or _has_profile(output, convention)
    if 'hybrid' in parts or ('sigma-hybrid' in parts and not profiled):
        yield from _fit_hybrid(samples, mesh_recs, meshes, targets, wts, ridge, output, command, cache,
                               write_blend='hybrid' in parts, convention=convention)
    if 'hybrid' in parts or 'hybrid-template' in parts:
        yield from _fit_hybrid_template(samples, output, command, convention)
    if 'profile' in parts or ('sigma-hybrid' in parts and profiled):
        yield from _fit_profile(aflw, samples, mesh_recs, meshes, targets, wts, ridge, output, command, cache,
                                write='profile' in parts, convention=convention)
    for detector, key in (('cascade', 'dlib'), ('hog', 'dlib_hog'), ('mmod', 'dlib_mmod')):   # mmod: not in 'sigma' (~1.2 s/image)
        if f'sigma-{key}' not in parts:
            continue
        lm = FaceLandmarker('dlib', static=True, sigma='tta', data_dir=output, dlib_detector=detector,
                            all_views=False)
        found, l68s, others, scores = [], [], [], []
        for s in samples:
            r = run_on_sample(lm, s)
            if r['face'] is not None:
                found.append(s)
                l68s.append(r['face'].landmarks68)
                others.append(r['face'].extras['others68'])
                scores.append(r['face'].extras['det_score'])    # NaN: not a BlazeFace detection (no model here)
        lm.close()
        # the score only for the cascade (BlazeFace's, what the det_score input means); HOG's and MMOD's
        # faces never carry a BlazeFace score, so their records hold none (no all-NaN column, no score design)
        rec = error_records(found, l68s, others, camera_for, det_scores=scores if detector == 'cascade' else None,
                            model=mean_face)
        yield from fit_and_save(key, rec, output, {'backend': f'dlib (detector {detector})', 'faces': len(found),
                                                   'split_rule': SPLIT_RULE, 'command': command}, cache)
    if 'visibility' in parts:
        from depthmarks_ros.core.face.visibility import VisibilityModel, self_occlusion, triangulation
        vis_aflw = [s for s in aflw if np.all(np.abs(s.pose_deg) <= 99)]
        tri = triangulation(mean_face)
        hidden = np.array([self_occlusion(s.points3d, tri=tri) for s in vis_aflw])
        poses = np.array([s.pose_deg for s in vis_aflw])
        vm = VisibilityModel.fit(poses[:, 0], poses[:, 1], hidden, meta={
            'what': 'P(landmark not hidden by the face itself | yaw, pitch), per landmark',
            'labels': 'AFLW2000-3D pt3d_68 self-occlusion (core/face/visibility.py self_occlusion)',
            'faces': len(vis_aflw), 'hidden_share': round(float(hidden.mean()), 4),
            'split_rule': SPLIT_RULE, 'command': command})
        vm.save(os.path.join(output, 'face_visibility.json'))
        yield f'visibility: {len(vis_aflw)} AFLW faces, {hidden.mean() * 100:.1f} % of points self-occluded'
    pose_keys = [k for k in POSE_KEYS if 'pose' in parts or f'pose-{k}' in parts]
    if convention != '2d':      # the convention's own hybrid factors ('hybrid_3d'), from its records only
        from depthmarks_ros.core.face.convention import sigma_key
        pose_keys = [sigma_key(k, convention) for k in pose_keys if k == 'hybrid']
        why = convention_pose_missing(cache, output, convention, parts) if pose_keys else ''
        if why:
            raise FileNotFoundError(why)
    if pose_keys:
        yield from _fit_pose_scales(aflw, output, command, fit, pose_keys, save_fit, cache)


# the backends whose head-pose covariance is calibrated per angle: sigma key -> (backend, dlib detector)
POSE_BACKENDS = {'hybrid': ('hybrid', 'hog'), 'mediapipe': ('mediapipe', 'hog'), 'dlib': ('dlib', 'cascade'),
                 'dlib_hog': ('dlib', 'hog')}
# every path with angle factors of its own (FaceLandmarker.pose_key): the backends, and the hybrid's keypoint
# path (faces its mesh does not follow; its dlib-only faces take the cascade dlib's, 'dlib')
POSE_KEYS = tuple(POSE_BACKENDS) + ('hybrid_box68',)
PLAIN_POSE_FIT_KEYS = ('model_residual_m',)     # what the uncalibrated (factor-free) pose uses of face_fit.json


def convention_pose_missing(cache: str, output: str, convention: str, parts=(), seeded: bool = True) -> str:
    """Why a landmark convention's pose-hybrid part cannot fit ('' if it can): its factors come from the
    convention's cross-fitted hybrid records alone (``sigma_<key>.npz`` in ``cache``, with their pose points,
    and the sigma model ``face_sigma_<key>.json`` in ``output``), so ``cache`` is required, and, where
    ``parts`` does not write them first (profile, sigma-hybrid), the files (the sigma model only where
    ``output`` is ``seeded``: fit-face checks before it copies the shipped files there)."""
    import os
    from depthmarks_ros.core.face.convention import sigma_key
    key = sigma_key('hybrid', convention)
    if not cache:
        return (f'--convention {convention} --parts pose-hybrid fits from the records sigma_{key}.npz in '
                f'--cache DIR (written by --convention {convention} --parts profile --cache DIR): give --cache')
    if {'profile', 'sigma-hybrid'} & set(parts):
        return ''
    return _convention_pose_missing(key, os.path.join(cache, f'sigma_{key}.npz'), output, seeded)


def _convention_pose_missing(key: str, path: str, output: str, seeded: bool = True) -> str:
    """convention_pose_missing's check of the files: records ``path`` with pose points, sigma model in
    ``output`` (where ``seeded``)."""
    import os
    from depthmarks_ros.core.face.sigma_fit import fit_face_command, records_redo
    redo = 'write them with ' + fit_face_command(output, records_redo(key), os.path.dirname(path) or 'DIR')
    if not path or not os.path.isfile(path):
        return f"the {key} head-pose factors fit from the records {path or f'sigma_{key}.npz in --cache DIR'}: {redo}"
    try:
        with np.load(path, allow_pickle=False) as z:
            if 'P' not in z.files:
                return f'{path}: no pose points (P) for the {key} head-pose factors; {redo}'
    except (OSError, ValueError, EOFError) as exc:     # not an .npz of records (truncated, pickled, another file)
        return f'{path} is not readable as records ({type(exc).__name__}: {exc}); {redo}'
    sm = os.path.join(output, f'face_sigma_{key}.json')
    if seeded and not os.path.isfile(sm):
        return f'{sm} missing: the {key} head-pose factors solve with its covariances; {redo}'
    return ''


def pose_z(lm, samples):
    """((N, 3) |angle error| / sigma (yaw, pitch, roll), (N,) estimated yaw deg, (N,) the face's path
    (FaceLandmarker.pose_key)) of a landmarker's head pose on annotated faces (|angles| <= 99 deg),
    sigma from its 6x6 covariance before any calibration factor."""
    from depthmarks_ros.core.face.head_pose import angle_z
    lm.fit = dict(lm.fit)
    lm.fit['head_pose'] = {k: v for k, v in lm.fit.get('head_pose', {}).items() if k in PLAIN_POSE_FIT_KEYS}
    z, keys = [], []
    for s in samples:
        if np.any(np.abs(s.pose_deg) > 99):
            continue
        r = run_on_sample(lm, s)
        hp = r['face'].head_pose if r['face'] is not None else None
        if hp is not None:
            z.append(list(angle_z(hp, s.pose_deg)) + [hp.yaw])
            keys.append(lm.pose_key(r['face'].layout))
    z = np.array(z).reshape(-1, 4)
    return z[:, :3], z[:, 3], np.array(keys, dtype=str)


def pose_z_records(rec, sigma_model, pose_fit: dict, samples, model=None) -> np.ndarray:
    """pose_z from a backend's error records (core/face/sigma_fit.py) instead of running it: the
    node's weighted head pose (head_pose.py weighted_head_pose, no angle factor) on the records'
    pose points (``P``: the hybrid's mesh points; else the landmarks ``L``) with the covariances of
    ``sigma_model`` (or the records' own ``C`` (F, 68, 2, 2) where ``sigma_model`` is None: the
    hybrid's keypoint-path faces), on the AFLW2000-3D faces of ``samples`` (by stem) with every
    |angle| <= 99 deg. The records of the backends with a fitted stage are cross-fitted (each face
    predicted by maps, blends and predictors fitted without it), so the factors do not learn the fit
    faces' in-sample errors, which are smaller than a new face's. ``model``: the 3D mean face the pose is
    solved on (the fitted folder's; None = the shipped one)."""
    from depthmarks_ros.core.face.head_pose import angle_z, weighted_head_pose
    by_stem = {s.stem: s for s in samples if s.pose_deg is not None}
    plain = {k: v for k, v in pose_fit.items() if k in PLAIN_POSE_FIT_KEYS}
    P = rec['P'] if 'P' in rec else rec['L']
    covs = rec['C'] if sigma_model is None else sigma_model.covariances_records(rec)
    z = []
    for stem, p68, cov in zip(rec['stem'], P, covs):
        s = by_stem.get(str(stem))
        if s is None or np.any(np.abs(s.pose_deg) > 99):
            continue
        hp = weighted_head_pose(p68, camera_for(s, s.load_rgb().shape[1::-1]), cov, plain, model=model)
        if hp is not None:
            z.append(list(angle_z(hp, s.pose_deg)) + [hp.yaw])
    z = np.array(z).reshape(-1, 4)
    return z[:, :3], z[:, 3]


def _drop_old_pose_factors(fit: dict) -> None:
    """A face_fit.json dict of an older format made version head_pose.FIT_VERSION: its angle factors
    (no |yaw| range, one pooled covariance_scale) dropped, the rest kept."""
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    for k in ('angle_scales', 'angle_scale_yaw_slopes', 'angle_scale_yaw_range', 'angle_scales_from',
              'covariance_scale', 'note', 'angle_scales_made_by'):
        fit.get('head_pose', {}).pop(k, None)
    fit['version'] = FIT_VERSION


BOX68_POSE_RECORDS = 'pose_hybrid_box68.npz'     # in --cache: the hybrid's keypoint-path faces (_fit_profile)
# check_records_model's words for them: what of them comes from the writing run's mean face, what rewrites them
BOX68_RECORDS_COMPUTED = 'points come from turned-face predictors trained on faces chosen by the yaws of a run'
BOX68_RECORDS_REDO = '--parts profile --cache {cache}'
STACK_RECORDS = 'hybrid_stack_inputs.npz'      # in --cache: the hybrid's cross-fitted m, d, e per mesh face (_fit_profile)


def stack_records_name(convention: str = '2d') -> str:
    """STACK_RECORDS of a convention ('3d': hybrid_stack_inputs_3d.npz)."""
    from depthmarks_ros.core.face.convention import convention_name
    return convention_name(STACK_RECORDS, convention)


def records_convention(path: str) -> str:
    """The landmark convention of the run that wrote the --cache records ``path`` (its ``.json``'s
    records_made_by: 'convention', else the --convention of its command; '2d' where neither says)."""
    import json
    import os
    import shlex
    made = path[:-4] + '.json'
    if not os.path.isfile(made):
        return '2d'
    try:
        with open(made) as f:
            by = json.load(f).get('records_made_by', {})
    except (OSError, ValueError, AttributeError):
        return '2d'          # check_records_model names an unreadable file
    if 'convention' in by:
        return str(by['convention'])
    cmd = shlex.split(str(by.get('command', '')))
    return cmd[cmd.index('--convention') + 1] if '--convention' in cmd[:-1] else '2d'


def check_box68_records(path: str) -> None:
    """A StaleRecordsError where the keypoint path's pose records ``path`` (BOX68_POSE_RECORDS) were written
    by a run of a landmark convention other than '2d' (its hybrid_box68 factors are the '2d' fit's, shared:
    they are fitted from '2d' records only)."""
    import os
    from depthmarks_ros.core.face.sigma_fit import StaleRecordsError
    made = records_convention(path)
    if made != '2d':
        raise StaleRecordsError(
            f"{path}: written by a --convention {made} run; the keypoint path's head-pose factors (hybrid_box68, "
            "shared by the conventions) are fitted from '2d' records only: rewrite them with depthmarks fit-face "
            f"--data DATA -o DIR {BOX68_RECORDS_REDO.format(cache=os.path.dirname(path) or '.')}")


def _fit_pose_scales(aflw, output, command, fit, keys, save_fit, cache=''):
    """Per path (POSE_KEYS) and angle: the factors on sigma, of the pose's |yaw| within the fit faces'
    |yaw| range, that put 68.3 % of the fit split's AFLW2000-3D angle errors within 1 sigma
    (face_fit.json head_pose.angle_scales, angle_scale_yaw_slopes, angle_scale_yaw_range), each fitted
    on the faces of its own path; where every backend is fitted, the pooled factors (POOLED_KEY) for
    paths without their own, fitted on the union of the four backends' faces (each backend the same
    weight). With ``cache``, a path whose records are there (``sigma_<key>.npz``, the hybrid's only with
    its pose points; BOX68_POSE_RECORDS for the keypoint path) is scored on them (pose_z_records:
    cross-fitted points), else its backend is run on the images (the hybrid's faces split by path)."""
    import json
    import os
    from depthmarks_ros.core.face.datasets import SPLIT_RULE
    from depthmarks_ros.core.face.head_pose import FIT_VERSION, POOLED_KEY, fit_angle_factors
    from depthmarks_ros.core.face.pipeline import FaceLandmarker
    from depthmarks_ros.core.face.convention import DEFAULT_CONVENTION, split_key
    from depthmarks_ros.core.face.sigma_fit import check_records_model, load_records, records_redo
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel
    for key in keys:                # every cache file before anything runs: a refusal costs no backend run
        if key == 'hybrid_box68':
            path = os.path.join(cache, BOX68_POSE_RECORDS) if cache else ''
            if path and os.path.isfile(path):       # their points: from a '2d' run on this folder's mean face
                check_box68_records(path)
                check_records_model(path, output, BOX68_RECORDS_COMPUTED, BOX68_RECORDS_REDO)
            continue
        path = os.path.join(cache, f'sigma_{key}.npz') if cache else ''
        if path and os.path.isfile(path):           # their pose features: on this folder's mean face
            check_records_model(path, output, redo=records_redo(key))     # a convention's: its own part
        if split_key(key)[1] != DEFAULT_CONVENTION:     # a landmark convention's path ('hybrid_3d'): its records only
            why = _convention_pose_missing(key, path, output)
            if why:
                raise FileNotFoundError(why)
    if fit.get('version') != FIT_VERSION:       # factors of an older format: not kept beside new ones
        _drop_old_pose_factors(fit)
    hp = fit.setdefault('head_pose', {})
    with open(os.path.join(output, 'face_model_68.json')) as f:
        hp['model_residual_m'] = json.load(f)['residual_rms_m']
    scales = hp.setdefault('angle_scales', {})
    slopes = hp.setdefault('angle_scale_yaw_slopes', {})
    ranges = hp.setdefault('angle_scale_yaw_range', {})
    sources = hp.setdefault('angle_scales_from', {})
    hp.pop('covariance_scale', None)
    ran = {}                                  # backend -> its faces' (z, yaw, path) where run on the images
    zs = {}

    def run(backend_key):
        if backend_key not in ran:
            backend, detector = POSE_BACKENDS[backend_key]
            lm = FaceLandmarker(backend, static=True, data_dir=output, dlib_detector=detector, all_views=False)
            ran[backend_key] = pose_z(lm, aflw)
            lm.close()
        return ran[backend_key]
    for key in keys:
        if key == 'hybrid_box68':
            path = os.path.join(cache, BOX68_POSE_RECORDS) if cache else ''
            rec = load_records(path) if path and os.path.isfile(path) else None
            sm_path = ''
        else:
            path = os.path.join(cache, f'sigma_{key}.npz') if cache else ''
            rec = load_records(path) if path and os.path.isfile(path) else None
            sm_path = os.path.join(output, f'face_sigma_{key}.json')
            if rec is not None and ((split_key(key)[0] == 'hybrid' and 'P' not in rec) or not os.path.isfile(sm_path)):
                rec = None
        if rec is not None:
            z, yaw = pose_z_records(rec, LandmarkSigmaModel.load(sm_path) if sm_path else None, hp, aflw,
                                    folder_face_model(output))
            sources[key] = ('cross-fitted turned-face predictions of the fit faces the mesh does not follow '
                            '(fit-face --parts profile --cache)' if key == 'hybrid_box68' else
                            'error records (fit-face --cache; cross-fitted where a fitted stage makes the points)')
        else:
            z, yaw, path_of = run('hybrid' if key == 'hybrid_box68' else key)
            own = path_of == key
            z, yaw = z[own], yaw[own]
            sources[key] = 'the shipped backend run on the fit images, its faces on this path'
        ok = np.all(np.isfinite(z), axis=1)          # a face whose covariance gave no finite sigma
        z, yaw = z[ok], yaw[ok]
        if len(z) < 10:             # an earlier fit's factors of this path go too (pooled ones take its faces)
            for d in (scales, slopes, ranges, sources):
                d.pop(key, None)
            yield f'head pose {key}: only {len(z)} faces, not calibrated (earlier factors of this path dropped)'
            continue
        zs[key] = (z, yaw)
        scales[key], slopes[key], ranges[key] = fit_angle_factors(z, yaw)
        yield (f'head pose {key}: angle sigma factors (yaw, pitch, roll) {scales[key]} x exp({slopes[key]} |yaw| / 90), '
               f'|yaw| clamped to {ranges[key]} deg, from {len(z)} fit faces ({sources[key]})')
    if all(k in zs for k in POSE_BACKENDS):
        z = np.concatenate([zs[k][0] for k in POSE_BACKENDS])
        yaw = np.concatenate([zs[k][1] for k in POSE_BACKENDS])
        w = np.concatenate([np.full(len(zs[k][0]), 1.0 / len(zs[k][0])) for k in POSE_BACKENDS])
        scales[POOLED_KEY], slopes[POOLED_KEY], ranges[POOLED_KEY] = fit_angle_factors(z, yaw, weights=w)
        sources[POOLED_KEY] = 'the four backends\' fit faces together, each backend the same total weight'
        yield (f'head pose {POOLED_KEY}: {scales[POOLED_KEY]} x exp({slopes[POOLED_KEY]} |yaw| / 90), |yaw| clamped to '
               f'{ranges[POOLED_KEY]} deg, from {len(z)} faces of {len(POSE_BACKENDS)} backends')
    hp['note'] = ('angle_scales[path] x exp(angle_scale_yaw_slopes[path] |yaw| / 90), |yaw| clamped to '
                  'angle_scale_yaw_range[path] (the fit faces\' range) = (yaw, pitch, roll) factors on the angle '
                  'sigmas (core/face/head_pose.py angle_factors, scale_angle_covariance): 68.3 % of the fit split\'s '
                  'AFLW2000-3D angle errors (|angles| <= 99) within 1 sigma per path and angle, at every estimated '
                  '|yaw| (linear quantile regression, fit_angle_factors), each path fitted on its own faces '
                  '(FaceLandmarker.pose_key; angle_scales_from: on which points); ' + POOLED_KEY + ': for paths '
                  'without their own (fitted on the four backends\' faces together)')
    own = [k for k in keys if split_key(k)[1] != DEFAULT_CONVENTION]    # a landmark convention's paths ('hybrid_3d')
    if own:
        hp.setdefault('angle_scales_made_by_path', {}).update(
            {k: {'command': command, 'split_rule': SPLIT_RULE} for k in own})
    if len(own) < len(keys):
        hp['angle_scales_made_by'] = {'command': command, 'split_rule': SPLIT_RULE}
    save_fit()


def _norm(sample) -> float:
    """The NME normaliser of a sample's set (metrics.nme_norm)."""
    from depthmarks_ros.core.face.metrics import nme_norm
    return nme_norm(sample.landmarks68, sample.dataset)


def _cross_fitted_68(mesh_recs, meshes, targets, wts, ridge):
    """Each face's 68 points from a mesh map fitted without it (5 folds by sha1 // 5 % 5 inside the fit split)."""
    from depthmarks_ros.core.face.mapping import MeshTo68
    fold = np.array([fold_of(r['sample'].stem) for r in mesh_recs])
    maps = {}
    for k in range(5):
        tr = fold != k
        maps[k] = MeshTo68.fit([x for x, t in zip(meshes, tr) if t], [x for x, t in zip(targets, tr) if t], ridge,
                               [x for x, t in zip(wts, tr) if t])
    return [maps[k].apply(r['mesh']) for k, r in zip(fold, mesh_recs)], fold


def _sets_text(aflw, w300) -> str:
    """The artefacts' meta 'data': the sets a fit read (fit split)."""
    if aflw and w300:
        return 'AFLW2000-3D + 300-W LFPW test, fit split, weighted equally per set'
    return ('AFLW2000-3D' if aflw else '300-W LFPW test') + ' alone, fit split'


def _has_profile(output: str, convention: str = '2d') -> bool:
    """The hybrid in ``output`` has a turned-face predictor (face_profile_68.dat and its weights)."""
    import os
    from depthmarks_ros.core.face.convention import artefact_name
    from depthmarks_ros.core.face.hybrid import HybridBlend
    path = os.path.join(output, artefact_name('face_hybrid.json', convention))
    return os.path.isfile(path) and os.path.isfile(os.path.join(output, 'face_profile_68.dat')) \
        and HybridBlend.load(path).profile_weights is not None


def _fit_hybrid(samples, mesh_recs, meshes, targets, wts, ridge, output, command, cache='', write_blend=True,
                convention='2d'):
    """face_hybrid.json (dlib's box shape, blend weights; only with ``write_blend``) and
    face_sigma_hybrid.json, from cross-fitted mesh maps and blends (each face's points come from fits
    that did not see it)."""
    import functools
    import os
    import cv2
    import dlib
    from depthmarks_ros.core.face.backends import load_dlib_model, predict_on_box
    from depthmarks_ros.core.face.convention import artefact_name, sigma_key
    from depthmarks_ros.core.face.datasets import SPLIT_RULE
    from depthmarks_ros.core.face.hybrid import HybridBlend, box_from_landmarks, mean_box_shape, quick_yaw
    from depthmarks_ros.core.face.sigma_fit import error_records, fit_and_save
    hog = dlib.get_frontal_face_detector()
    predict = functools.partial(predict_on_box, load_dlib_model(dlib.shape_predictor,
                                                                'shape_predictor_68_face_landmarks.dat'))
    boxes, pts = [], []
    for s in samples:            # dlib's own convention: its points inside its HOG boxes
        rgb = s.load_rgb()
        rects, scores, _ = hog.run(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 0, 0.0)
        gc = s.landmarks68.mean(axis=0)
        near = [r for r in rects if np.hypot((r.left() + r.right()) / 2 - gc[0], (r.top() + r.bottom()) / 2 - gc[1])
                < 0.3 * max(np.ptp(s.landmarks68, axis=0))]
        if near:
            r = near[0]
            b = np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64)
            boxes.append(b)
            pts.append(predict(rgb, b))
    ref_box = mean_box_shape(boxes, pts)
    yield f'hybrid: dlib box shape from {len(boxes)} HOG faces'
    m68s, fold, d68s, yaws, norms = _hybrid_inputs(mesh_recs, meshes, targets, wts, ridge, ref_box, predict,
                                                     folder_face_model(output))
    meta = {'split_rule': SPLIT_RULE, 'command': command, 'faces': len(m68s), 'hog_faces': len(boxes),
            'convention': convention,
            'data': _sets_text(*(any(s.dataset == k for s in samples) for k in ('aflw2000_3d', '300w_lfpw_test')))
            + '; mesh points from cross-fitted maps (5 folds)'}
    blend = HybridBlend.fit(ref_box, d68s, m68s, targets, norms, yaws, wts, meta=meta)
    if write_blend:
        blend.save(os.path.join(output, artefact_name('face_hybrid.json', convention)))
    yield 'hybrid: blend weights by (|yaw|, disagreement) bin: ' + ', '.join(
        f'{w.mean():.2f}' for w in blend.weights)
    out68 = _cross_fitted_blends(ref_box, d68s, m68s, targets, norms, yaws, wts, fold)
    by_set = {}
    for r, o, n in zip(mesh_recs, out68, norms):
        by_set.setdefault(r['sample'].dataset, []).append(np.linalg.norm(o - r['sample'].landmarks68, axis=1).mean() / n)
    yield 'hybrid: cross-fitted NME ' + ', '.join(f'{k} {np.mean(v):.4f} ({len(v)})' for k, v in by_set.items())
    rec = error_records([r['sample'] for r in mesh_recs], out68, [[d, m] for d, m in zip(d68s, m68s)], camera_for,
                        pose68s=m68s, model=folder_face_model(output))
    yield from fit_and_save(sigma_key('hybrid', convention), rec, output, {'backend': 'hybrid (mesh + dlib predictor, blended)',
                                                    'faces': len(out68), 'convention': convention,
                                                    'split_rule': SPLIT_RULE, 'command': command,
                                                    'errors': 'cross-fitted mesh maps and blends (5 folds)'}, cache)


def _hybrid_inputs(mesh_recs, meshes, targets, wts, ridge, ref_box, predict, model=None):
    """Per mesh-followed fit face: cross-fitted mesh 68 points, fold, dlib's points on the box from them,
    quick yaw (on the 3D mean face ``model``, the fitted folder's) and NME normaliser."""
    from depthmarks_ros.core.face.hybrid import dlib_on_mesh, quick_yaw
    m68s, fold = _cross_fitted_68(mesh_recs, meshes, targets, wts, ridge)
    d68s, yaws, norms = [], [], []
    for r, m68 in zip(mesh_recs, m68s):
        rgb = r['sample'].load_rgb()
        d68s.append(dlib_on_mesh(predict, rgb, ref_box, m68))      # upright on a leaning face, as at run time
        yaws.append(quick_yaw(m68, rgb.shape[1::-1], model))
        norms.append(_norm(r['sample']))
    return m68s, fold, d68s, yaws, norms


def _cross_fitted_blends(ref_box, d68s, m68s, targets, norms, yaws, wts, fold):
    """Each face blended by weights fitted on the other folds."""
    from depthmarks_ros.core.face.hybrid import HybridBlend
    out68 = [None] * len(m68s)
    for k in range(5):
        tr = fold != k
        bk = HybridBlend.fit(ref_box, [d for d, t in zip(d68s, tr) if t], [m for m, t in zip(m68s, tr) if t],
                             [g for g, t in zip(targets, tr) if t], [n for n, t in zip(norms, tr) if t],
                             [y for y, t in zip(yaws, tr) if t], [w for w, t in zip(wts, tr) if t])
        for i in np.flatnonzero(~tr):
            out68[i] = bk.blend(d68s[i], m68s[i], yaws[i])
    return out68


_fold = fold_of


def turned_left(sample) -> bool:
    """The face looks towards image-left (its forward axis, -z of the head, points to -x in the image)."""
    from depthmarks_ros.core.face.head_pose import rotation_from_angles
    return bool((rotation_from_angles(*sample.pose_deg) @ [0.0, 0.0, -1.0])[0] < 0)


PROFILE_MIN_YAW = 35.0                 # deg: training faces of the turned-face predictor (|Pose_Para yaw|)
PROFILE_EDGES = (30.0, 45.0, 60.0, 360.0)   # |quick yaw| bins where it joins the blend
PROFILE_OPTIONS = dict(upright=True, rotation_deg=15.0)   # faces turned upright, then +-15 deg (fit split,
                                                          # cross-fitted: box-NME 0.112 vs 0.120 on faces without a mesh)
# the training boxes' jitter stays the trainer's N(0, 0.08) shift / exp(N(0, 0.15)) scaling of the face's size:
# 0.04 / 0.08 gave 0.04111 -> 0.04061-0.04062 box-NME on the 1049 fit AFLW2000-3D faces (5 folds, two seeds) but
# 0.0412 -> 0.0413 on the report split (docs/face_landmarks.md, fifth pass), so it was not shipped


def train_turned_face_predictor(turned, rgbs, meta=None):
    """The hybrid's turned-face predictor (core/face/profile.py train_profile_predictor) trained with
    PROFILE_OPTIONS on the AFLW2000-3D samples ``turned`` (their images in ``rgbs`` by stem), each
    mirrored to look towards image-right: _fit_profile's fold predictors and its final one."""
    from depthmarks_ros.core.face.profile import train_profile_predictor
    return train_profile_predictor([rgbs[s.stem] for s in turned], [s.landmarks68 for s in turned],
                                   [turned_left(s) for s in turned], **PROFILE_OPTIONS, meta=meta)


def _fit_profile(aflw, samples, mesh_recs, meshes, targets, wts, ridge, output, command, cache='', write=True,
                 convention='2d'):
    """The hybrid's turned-face predictor (core/face/profile.py, face_profile_68.dat) trained on the
    fit split's AFLW2000-3D faces with |yaw| >= PROFILE_MIN_YAW; its per-landmark weights against the
    blend on mesh-followed faces with |quick yaw| >= 30 deg, and its covariance on faces the mesh
    cannot follow, both from cross-fitted predictions (5 folds, sha1 // 5 % 5 inside the fit split);
    added to face_hybrid.json. The hybrid's cross-fitted output (blend, then the predictor on turned
    faces) gives the hybrid's sigma model (face_sigma_hybrid.json). ``write=False``: only that sigma
    model (face_hybrid.json and the predictor file untouched, the final predictor not trained). A
    ``convention`` other than '2d' never trains the final predictor (shared by the conventions, the '2d'
    fit's): its weights are fitted for the one in ``output`` (a missing one refused before anything trains),
    named by its sha1 (meta profile.predictor_sha1), and the keypoint path's pose records
    (BOX68_POSE_RECORDS, for the shared hybrid_box68 factors) are not written."""
    import functools
    import os
    import dlib
    from depthmarks_ros.core.face.backends import MediaPipeFaceMesh, load_dlib_model, predict_on_box
    from depthmarks_ros.core.face.convention import artefact_name, sigma_key
    from depthmarks_ros.core.face.datasets import SPLIT_RULE
    from depthmarks_ros.core.face.metrics import bbox_size
    from depthmarks_ros.core.face.hybrid import HybridBlend, refine_keypoint_guess
    path = os.path.join(output, artefact_name('face_hybrid.json', convention))
    sp_path = os.path.join(output, PROFILE_PREDICTOR)
    why = convention_profile_missing(output, convention) if write else ''
    if why:                 # before any fold predictor trains
        raise FileNotFoundError(why)
    blend = HybridBlend.load(path)
    predict = functools.partial(predict_on_box, load_dlib_model(dlib.shape_predictor,
                                                                'shape_predictor_68_face_landmarks.dat'))
    turned = [s for s in aflw if abs(s.pose_deg[0]) >= PROFILE_MIN_YAW]
    rgbs = {s.stem: s.load_rgb() for s in turned}
    yield f'profile: {len(turned)} fit-split AFLW faces with |yaw| >= {PROFILE_MIN_YAW:g} deg'
    # faces the mesh cannot follow: the keypoint regression's guess
    mesh = MediaPipeFaceMesh(static=True, fallback_detector=True, all_views=True, mmod=False)   # as at run time (MMOD off: _unmeshed_near)
    unmeshed = []
    for s in samples:
        if mesh.process(s.load_rgb()):
            continue
        near = [d for d in _unmeshed_near(mesh, s.landmarks68) if d.keypoints is not None]
        if near and blend.kp_map is not None:
            guess = blend.from_views(near[0].box, near[0].keypoints, near[0].view_keypoints)
            if guess is not None:
                unmeshed.append((s, guess, near[0].box, near[0].view_keypoints))
    mesh.close()
    scale = guess_scale([(k, s.landmarks68) for s, k, _, _ in unmeshed])
    m68s, fold, d68s, yaws, norms = _hybrid_inputs(mesh_recs, meshes, targets, wts, ridge, blend.ref_box, predict,
                                                     folder_face_model(output))
    blended = _cross_fitted_blends(blend.ref_box, d68s, m68s, targets, norms, yaws, wts, fold)
    use = [i for i, y in enumerate(yaws) if abs(y) >= PROFILE_EDGES[0]]
    e68 = {}
    un_pred = {}
    for k in range(5):
        tr = [s for s in turned if _fold(s.stem) != k]
        sp = train_turned_face_predictor(tr, rgbs)
        for i in use:
            if fold[i] == k:
                rgb = mesh_recs[i]['sample'].load_rgb()
                e68[i] = sp.predict_from(rgb, m68s[i], yaws[i] > 0)
        for j, (s, guess, box, views) in enumerate(unmeshed):      # as at run time (per-view median)
            if _fold(s.stem) == k:
                un_pred[j] = refine_keypoint_guess(sp, blend, s.load_rgb(), box, guess, views, scale)
        yield f'profile: fold {k + 1}/5 trained on {len(tr)} faces'
    edges = np.array(PROFILE_EDGES)
    v = HybridBlend.fit_profile_weights(edges, [e68[i] for i in use], [blended[i] for i in use],
                                        [targets[i] for i in use], [norms[i] for i in use], [yaws[i] for i in use],
                                        [wts[i] for i in use])
    # cross-fitted weights for the figure: each face weighted by bins fitted without its fold
    by_set = {}
    out68 = list(blended)           # the hybrid's cross-fitted output: the blend, the predictor joining on turned faces
    for k in range(5):
        idx = [i for i in use if fold[i] != k]
        vk = HybridBlend.fit_profile_weights(edges, [e68[i] for i in idx], [blended[i] for i in idx],
                                             [targets[i] for i in idx], [norms[i] for i in idx],
                                             [yaws[i] for i in idx], [wts[i] for i in idx])
        bk = HybridBlend(blend.ref_box, blend.yaw_edges, blend.dis_edges, blend.weights, profile_edges=edges,
                         profile_weights=vk)
        for i in use:
            if fold[i] == k:
                w = bk.profile_point_weights(yaws[i])[:, None]
                new = w * e68[i] + (1 - w) * blended[i]
                out68[i] = new
                d = by_set.setdefault(mesh_recs[i]['sample'].dataset, [[], []])
                d[0].append(np.linalg.norm(blended[i] - targets[i], axis=1).mean() / norms[i])
                d[1].append(np.linalg.norm(new - targets[i], axis=1).mean() / norms[i])
    yield 'profile: mesh-followed faces with |quick yaw| >= 30, cross-fitted NME blend -> with the predictor: ' + \
        ', '.join(f'{k} {np.mean(a):.4f} -> {np.mean(b):.4f} ({len(a)})' for k, (a, b) in by_set.items())
    if cache:       # the cross-fitted estimates of every mesh-followed face (benchmarks/study_face_stack.py)
        from depthmarks_ros.core.face.sigma_fit import save_made_records
        save_made_records(os.path.join(cache, stack_records_name(convention)), stack_records(
            [r['sample'] for r in mesh_recs], fold, m68s, d68s, e68, out68, yaws, norms),
            {'split_rule': SPLIT_RULE, 'command': command, 'faces': len(m68s), 'convention': convention,
             'points': 'cross-fitted mesh maps, dlib on their boxes, turned-face predictors, blend and turned-face '
                       'weights (5 folds)'}, output)
    res = []
    for j, (s, *_) in enumerate(unmeshed):
        res.append((un_pred[j] - s.landmarks68) / bbox_size(un_pred[j]))
    cov = (np.einsum('fni,fnj->nij', np.array(res), np.array(res)) / max(len(res) - 1, 1) + 1e-4 * np.eye(2)) \
        if res else None
    if unmeshed:
        kp_nme = np.mean([np.linalg.norm(k - s.landmarks68, axis=1).mean() / bbox_size(s.landmarks68)
                          for s, k, _, _ in unmeshed])
        pr_nme = np.mean([np.linalg.norm(un_pred[j] - s.landmarks68, axis=1).mean() / bbox_size(s.landmarks68)
                          for j, (s, *_) in enumerate(unmeshed)])
        yield (f'profile: {len(unmeshed)} faces the mesh cannot follow: box-NME keypoint map {kp_nme:.4f} (in-sample) -> '
               f'predictor {pr_nme:.4f} (cross-fitted)')
    if cache and res and cov is not None and convention == '2d':
        # the keypoint path's faces, for its head-pose factors (pose part; hybrid_box68's are shared by the
        # conventions, fitted from '2d' records only)
        from depthmarks_ros.core.face.sigma_fit import save_made_records
        preds = np.array([un_pred[j] for j in range(len(unmeshed))])
        save_made_records(os.path.join(cache, BOX68_POSE_RECORDS), {
            'stem': np.array([s.stem for s, *_ in unmeshed]), 'L': preds,
            'C': np.array([cov * bbox_size(p) ** 2 for p in preds])},      # as at run time (hybrid._from_keypoints)
            {'split_rule': SPLIT_RULE, 'command': command, 'faces': len(preds), 'convention': convention,
             'points': 'cross-fitted turned-face predictions of the fit faces the mesh does not follow (5 folds)'},
            output)
    from depthmarks_ros.core.face.sigma_fit import error_records, fit_and_save
    rec = error_records([r['sample'] for r in mesh_recs], out68, [[d, m] for d, m in zip(d68s, m68s)], camera_for,
                        pose68s=m68s, model=folder_face_model(output))
    yield from fit_and_save(sigma_key('hybrid', convention), rec, output, {
        'backend': 'hybrid (mesh + dlib predictor, blended, turned-face predictor)', 'faces': len(out68),
        'convention': convention,
        'split_rule': SPLIT_RULE, 'command': command,
        'errors': 'cross-fitted mesh maps, blends, turned-face predictors and their weights (5 folds)'}, cache)
    if not write:
        return
    profile_meta = {'faces': len(turned), 'mesh_faces_for_weights': len(use), 'unmeshed_faces': len(unmeshed),
                    'command': command, 'split_rule': SPLIT_RULE}
    if convention == '2d':
        sp = train_turned_face_predictor(turned, rgbs, meta={
            'split_rule': SPLIT_RULE, 'command': command,
            'data': f'AFLW2000-3D fit split, |yaw| >= {PROFILE_MIN_YAW:g} deg, mirrored to look towards image-right'})
        sp.save(sp_path)
    else:       # the shared predictor stays the '2d' fit's (the same faces): its weights here, named by its hash
        profile_meta['predictor_sha1'] = file_sha1(sp_path)
        yield f'profile: {PROFILE_PREDICTOR} (shared) kept, not retrained; its sha1 recorded'
    blend.profile_edges, blend.profile_weights, blend.profile_scale, blend.profile_cov = edges, v, scale, cov
    blend.meta['profile'] = profile_meta
    blend.save(path)
    yield 'profile: weights by |yaw| bin ' + ', '.join(f'{w.mean():.2f}' for w in v) + \
        f'; {PROFILE_PREDICTOR} {os.path.getsize(sp_path) / 1e6:.1f} MB'


PROFILE_PREDICTOR = 'face_profile_68.dat'     # the hybrid's turned-face predictor, shared by the conventions


def convention_profile_missing(output: str, convention: str, seeded: bool = True) -> str:
    """Why a landmark convention's profile part cannot fit ('' if it can; always '' for '2d', whose profile
    part trains the predictor): it fits its weights for the shared turned-face predictor
    (PROFILE_PREDICTOR) in ``output``, so that file must be there (or, where ``output`` is not yet
    ``seeded``, in the shipped set it is seeded from)."""
    import os
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    if convention == '2d':
        return ''
    where = [output] if seeded else [output, DATA_DIR]
    if any(os.path.isfile(os.path.join(d, PROFILE_PREDICTOR)) for d in where):
        return ''
    from depthmarks_ros.core.face.sigma_fit import fit_face_command
    return (f'{os.path.join(output, PROFILE_PREDICTOR)} missing: --convention {convention} --parts profile fits '
            "its weights for the shared turned-face predictor, which the '2d' profile part trains "
            f"({fit_face_command(output, '--parts profile')})")


def stack_records(samples, fold, m68s, d68s, e68: dict, out68s, yaws, norms) -> dict:
    """The hybrid's cross-fitted estimates of its mesh-followed fit faces as arrays (STACK_RECORDS in
    --cache): per face its stem, set, fold, mesh points m68, dlib's d68, the turned-face predictor's
    e68 (``e68``: face index -> points; NaN where it did not run), the hybrid's output out68, the
    ground truth gt68, quick yaw and NME normaliser."""
    nan68 = np.full((68, 2), np.nan)
    return {'stem': np.array([s.stem for s in samples]), 'dataset': np.array([s.dataset for s in samples]),
            'fold': np.asarray(fold, int), 'm68': np.array(m68s, np.float64).reshape(-1, 68, 2),
            'd68': np.array(d68s, np.float64).reshape(-1, 68, 2),
            'e68': np.array([e68.get(i, nan68) for i in range(len(samples))], np.float64).reshape(-1, 68, 2),
            'out68': np.array(out68s, np.float64).reshape(-1, 68, 2),
            'gt68': np.array([s.landmarks68 for s in samples], np.float64).reshape(-1, 68, 2),
            'yaw': np.array(yaws, np.float64), 'norm': np.array(norms, np.float64)}


def guess_scale(pairs) -> float:
    """The turned-face predictor's box scale for guesses of faces without a mesh: the geometric mean of
    the true points' size over the guess's (metrics.bbox_size); 1 without pairs."""
    from depthmarks_ros.core.face.metrics import bbox_size
    return float(np.exp(np.mean([np.log(bbox_size(g) / bbox_size(k)) for k, g in pairs]))) if pairs else 1.0


def _shares(sm) -> str:
    return (f"1/2-sigma shares on its fit errors {sm.meta.get('shares_before_scale')} -> x{sm.scale:.2f} "
            f"{sm.meta.get('shares_fit')}")


# the fit's mesh runs without MMOD (~1-3 s an image), so where no view finds a face the oversized view and the
# pose head run in its place; at run time MMOD comes before them, so their detections are no fit faces
FIT_SKIPPED_SOURCES = ('hog_pad', 'pose_head')


def _unmeshed_near(mesh, gt68) -> list:
    """The detections the mesh could not follow (``mesh.unmeshed``) whose box centre lies within half the
    annotation's size of its centre, those of FIT_SKIPPED_SOURCES left out."""
    c, size = gt68.mean(axis=0), max(np.ptp(gt68, axis=0))
    return [d for d in mesh.unmeshed if not d.source.startswith(FIT_SKIPPED_SOURCES)      # pose_head_back too
            and np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - c) < 0.5 * size]


def _fit_hybrid_template(samples, output, command, convention='2d'):
    """The hybrid's fallback for faces the detector cascade finds but the mesh cannot follow (mostly
    profiles): the mean ground truth in units of the detector box, mirrored by the detector's nose
    direction, and its residual covariance; added to face_hybrid.json (``convention``'s)."""
    import os
    from depthmarks_ros.core.face.backends import MediaPipeFaceMesh
    from depthmarks_ros.core.face.convention import artefact_name
    from depthmarks_ros.core.face.metrics import bbox_size
    from depthmarks_ros.core.face.hybrid import HybridBlend
    path = os.path.join(output, artefact_name('face_hybrid.json', convention))
    blend = HybridBlend.load(path)
    # every detector view, as on independent images at run time (the map is fitted on every view's
    # keypoints, HybridBlend.from_views averages them); MMOD off: its faces have no keypoints
    mesh = MediaPipeFaceMesh(static=True, fallback_detector=True, all_views=True, mmod=False)
    boxes, facings, gts, kps = [], [], [], []
    for s in samples:
        if mesh.process(s.load_rgb()):
            continue
        g = s.landmarks68
        near = _unmeshed_near(mesh, g)
        if near:
            boxes.append(near[0].box)
            facings.append(near[0].facing)
            gts.append(g)
            kps.append(near[0].view_keypoints or
                       (None if near[0].keypoints is None else [near[0].keypoints]))
    mesh.close()
    if not boxes:
        yield 'hybrid template: no fit face without a mesh; not fitted'
        return
    blend.fit_template(boxes, facings, gts)
    with_kp = [i for i, k in enumerate(kps) if k is not None]
    if len(with_kp) >= 10:
        cv = blend.fit_keypoint_map([boxes[i] for i in with_kp], [kps[i] for i in with_kp], [gts[i] for i in with_kp])
        yield (f'hybrid keypoint map: {len(with_kp)} faces ({sum(len(kps[i]) for i in with_kp)} views, + mirrored), '
               f'5-fold cross-validated box-NME {cv:.4f}')
        # the turned-face predictor's box scale of a guess stays (`--parts profile` refits it): with this map's
        # guesses the scale of that rule (1.098 -> 1.123) gave 0.1068 instead of 0.1060 box-NME after the
        # predictor on the 60 fit faces without a mesh (each face's fold predictor; a development check)
    blend.meta['template'] = {'faces': len(boxes), 'command': command, 'split_rule': blend.meta.get('split_rule')}
    blend.save(path)
    nme = [np.linalg.norm(blend.from_box(b, f) - g, axis=1).mean() / bbox_size(g) for b, f, g in zip(boxes, facings, gts)]
    yield f'hybrid template: {len(boxes)} fit faces without a mesh, box-NME of the template on them {np.mean(nme):.3f} (in-sample)'
