"""Fitting the per-backend landmark covariance models on real errors (ROS-free), used by
``depthmarks fit-face``.

The errors of one backend on the fit split are kept as *records* (one row per found face: error,
landmarks, the raw run-time inputs of the sigma model, the face's set, its self-occlusion labels
where AFLW2000-3D gives them). Records are written to a cache (``--cache DIR``) so the sigma models
can be refitted without running the backends again (``--parts sigma-cached``).

The fit (:func:`fit_sigma`) weights every face so that each set (AFLW2000-3D, 300-W) has the same
total weight: AFLW has 8x the faces of 300-W in the fit split, and the two sets' errors differ
(box-normalised error, label convention: AFLW's points come from a fitted 3D model, 300-W's are
human clicks). The set name is never a feature: at run time it is unknown.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np

from depthmarks_ros.core.split import fold_of as _fold_of

RAW_KEYS = ('E', 'L', 'P', 'spread68', 'yaw0', 'pitch0', 'reproj68', 'blur', 'dark', 'sharp', 'contrast', 'hidden',
            'has_hidden', 'dataset', 'stem')


def error_records(samples, l68s, others, K_of, pose68s=None, det_scores=None, model=None) -> Dict[str, np.ndarray]:
    """Records of the found faces: samples (FaceSample per face), l68s (68, 2) the backend's points,
    others the backend's other passes (TTA, or the hybrid's two inputs), K_of(sample, (w, h)) the
    camera, pose68s the points its head pose is solved on where not l68s (``P``; the hybrid: the
    mesh's), det_scores the detector's score of each face where the run gives it (``det_score``).
    Self-occlusion labels from the 3D landmarks where the sample has them. ``model``: the 3D mean face
    (head_pose.face_model_68 of the fitted folder; None = the shipped one) of the pose features and the
    self-occlusion triangulation."""
    import cv2
    from depthmarks_ros.core.face.pipeline import face_features
    from depthmarks_ros.core.face.visibility import self_occlusion, triangulation
    tri = triangulation(model)
    rows: Dict[str, list] = {k: [] for k in RAW_KEYS}
    pose68s = l68s if pose68s is None else pose68s
    for s, l68, o68, p68 in zip(samples, l68s, others, pose68s):
        grey = cv2.cvtColor(s.load_rgb(), cv2.COLOR_RGB2GRAY)
        h, w = grey.shape
        ft = face_features(grey, l68, o68, K_of(s, (w, h)), (w, h), model=model)
        pose0 = ft['pose0']
        rows['E'].append(l68 - s.landmarks68)
        rows['L'].append(np.asarray(l68, np.float64))
        rows['P'].append(np.asarray(p68, np.float64))
        rows['spread68'].append(ft['spread68'])
        rows['yaw0'].append(ft['yaw0'])
        rows['pitch0'].append(pose0.pitch if pose0 is not None else 0.0)
        rows['reproj68'].append(ft['reproj68'])
        rows['blur'].append(ft['blur'])
        rows['dark'].append(ft['dark'])
        rows['sharp'].append(ft['sharp'])
        rows['contrast'].append(ft['contrast'])
        has = s.points3d is not None
        rows['hidden'].append(self_occlusion(s.points3d, tri=tri) if has else np.zeros(68, bool))
        rows['has_hidden'].append(has)
        rows['dataset'].append(s.dataset)
        rows['stem'].append(s.stem)
    out = {k: np.array(v) for k, v in rows.items()}
    if det_scores is not None:
        out['det_score'] = np.asarray(det_scores, np.float64).reshape(-1)
    if not len(out['E']):
        out['E'] = out['L'] = out['P'] = np.zeros((0, 68, 2))
    return out


def add_image_quality(rec: Dict[str, np.ndarray], samples) -> Dict[str, np.ndarray]:
    """Records written before ``sharp`` / ``contrast`` existed: both computed from the images
    (``samples``: FaceSample by stem), nothing else changes."""
    if 'sharp' in rec and 'contrast' in rec:
        return rec
    import cv2
    from depthmarks_ros.core.face.sigma_model import image_quality
    by_stem = {s.stem: s for s in samples}
    q = []
    for stem, l68 in zip(rec['stem'], rec['L']):
        s = by_stem.get(str(stem))
        if s is None:
            raise FileNotFoundError(f'record {stem}: no image to compute its sharpness from')
        q.append(image_quality(cv2.cvtColor(s.load_rgb(), cv2.COLOR_RGB2GRAY), l68))
    q = np.array(q).reshape(-1, 2)
    return dict(rec, sharp=q[:, 0], contrast=q[:, 1])


def subset(rec: Dict[str, np.ndarray], mask) -> Dict[str, np.ndarray]:
    return {k: v[mask] for k, v in rec.items()}


# in <cache>/sigma_<key>.json (and pose_hybrid_box68.json, model_fit.BOX68_POSE_RECORDS): a short hash of the
# values of the 3D mean face (head_pose.model_digest: sha1 of its float64 values, not of the file's bytes; the
# key keeps its old name) the records were computed on (the sigma records' pose features yaw0, pitch0, reproj68
# and self-occlusion labels; the keypoint path's points, from turned-face predictors trained on faces chosen by
# that model's yaws)
RECORDS_MODEL_KEY = 'face_model_68_sha1'


class StaleRecordsError(ValueError):
    """Cached error records computed on another 3D mean face than the output folder's."""


SIGMA_RECORDS_COMPUTED = 'pose features (yaw0, pitch0, reproj68) and self-occlusion labels were computed'
# the '2d' records of mediapipe, dlib, dlib_hog and hybrid ('sigma' = those sigma-<key> parts); dlib_mmod's
# need --parts sigma-dlib_mmod (records_redo)
SIGMA_RECORDS_REDO = '--parts sigma --cache {cache}'


def fit_face_command(output: str, options: str, cache: str = 'DIR') -> str:
    """The ``depthmarks fit-face`` command line that messages quote (DATA left for the user to fill):
    output folder ``output``, then ``options`` (e.g. :data:`SIGMA_RECORDS_REDO`, :func:`records_redo`)
    with its ``{cache}`` filled by ``cache``; both paths shell-quoted, so a path with spaces or quotes
    can be pasted as it is."""
    import shlex
    return f'depthmarks fit-face --data DATA -o {shlex.quote(output)} ' + options.format(cache=shlex.quote(cache))


def check_records_model(path: str, output: str, computed: str = SIGMA_RECORDS_COMPUTED,
                        redo: str = SIGMA_RECORDS_REDO) -> None:
    """A StaleRecordsError where the records ``path`` (``<cache>/<name>.npz``, their model in
    ``<cache>/<name>.json``: RECORDS_MODEL_KEY, written by :func:`save_made_records`) name a 3D mean face
    other than folder ``output``'s (a model refit since they were written): their features would mix two
    models. The message says what of them was ``computed`` on it and the fit-face options that rewrite
    them (``redo``, its ``{cache}`` the records' folder; default: the sigma records'). Records that name
    none (written before the hash was kept) pass."""
    import json
    import os
    from depthmarks_ros.core.face.head_pose import folder_face_model, model_digest
    made = path[:-4] + '.json'
    if not os.path.isfile(made):
        return
    redo = 'rewrite the records with ' + fit_face_command(output, redo, os.path.dirname(path) or '.')
    try:
        with open(made) as f:
            digest = json.load(f).get(RECORDS_MODEL_KEY)
    except (OSError, ValueError, AttributeError) as exc:     # unreadable, not JSON, not an object
        raise StaleRecordsError(f'{made}: unreadable ({exc}); {redo}') from exc
    now = model_digest(folder_face_model(output))
    if digest is not None and digest != now:
        raise StaleRecordsError(
            f'{path}: its {computed} on a 3D mean face (values hash {digest}) other than '
            f'{os.path.join(output, "face_model_68.npy")} (values hash {now}, refit since?); {redo}')


def save_records(path: str, rec: Dict[str, np.ndarray]) -> None:
    np.savez_compressed(path, **rec)


def save_made_records(path: str, rec: Dict[str, np.ndarray], meta: dict, output: str) -> None:
    """Records ``path`` (.npz) computed on folder ``output``'s 3D mean face, and beside them
    (``<name>.json``) how they were made (``meta``: records_made_by) and that model's values hash
    (RECORDS_MODEL_KEY), which :func:`check_records_model` reads."""
    import json
    import os
    from depthmarks_ros.core.face.head_pose import folder_face_model, model_digest
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    save_records(path, rec)
    with open(path[:-4] + '.json', 'w') as f:
        json.dump({'records_made_by': meta, RECORDS_MODEL_KEY: model_digest(folder_face_model(output))}, f, indent=1)


def load_records(path: str) -> Dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def set_weights(datasets: Iterable[str]) -> np.ndarray:
    """Per-face weights, each set summing to the same total (mean weight 1)."""
    d = np.asarray(list(datasets))
    names = sorted(set(d.tolist()))
    w = np.zeros(len(d))
    for n in names:
        m = d == n
        w[m] = len(d) / (len(names) * m.sum())
    return w


def fold_of(stems) -> np.ndarray:
    """5 folds inside the fit split (core/split.py fold_of: sha1 // 5 % 5; the split itself is sha1 % 5)."""
    return np.array([_fold_of(s) for s in stems])


def fit_sigma(rec: Dict[str, np.ndarray], meta: Optional[dict] = None, steps: int = 300, features=None,
              quantile: bool = False):
    """The covariance model of one backend from its records (sets weighted equally, LUVLi
    visibility from the self-occlusion labels where the records have them)."""
    from depthmarks_ros.core.face.sigma_model import FIT_FEATURES, LandmarkSigmaModel
    w = set_weights(rec['dataset'])
    meta = dict(meta or {})
    meta['faces_per_set'] = {str(n): int(np.sum(rec['dataset'] == n)) for n in sorted(set(rec['dataset'].tolist()))}
    meta['set_weighting'] = 'each set the same total weight in the NLL and the share scale'
    if has_scores(rec):   # all NaN: no score to fall back on
        from depthmarks_ros.core.face.sigma_model import DET_SCORE_FALLBACK_QUANTILE, det_score_fallback
        meta['det_score_fallback'] = det_score_fallback(rec['det_score'])
        meta['det_score_fallback_note'] = (
            f'the det_score input of a face no BlazeFace view detected (records: NaN; run time: any other source): '
            f'the {DET_SCORE_FALLBACK_QUANTILE:g} quantile of the fit faces\' BlazeFace scores clipped to 0-1')
    return LandmarkSigmaModel.fit_records(rec, steps=steps, meta=meta, face_weights=w,
                                          features=tuple(features or FIT_FEATURES), quantile=quantile)


def calibration_score(cal: Dict[str, dict]) -> tuple:
    """(shares more than SHARE_TOLERANCE off 39.3 / 86.5 % over the sets and radii, the largest miss):
    smaller is better, compared in that order (the share scale's aim, sigma_model.py)."""
    from depthmarks_ros.core.face.sigma_model import share_misses
    return share_misses([(c['within_1'], c['within_2']) for c in cal.values()])


def per_set_calibration(rec: Dict[str, np.ndarray], covs: np.ndarray) -> Dict[str, dict]:
    """Per set: share of errors within 1/2/3 sigma, Spearman(sigma, |error|), faces; covs (F, 68, 2, 2)."""
    from depthmarks_ros.core.learning.calibration import calibration_2d
    out = {}
    for n in sorted(set(rec['dataset'].tolist())):
        m = rec['dataset'] == n
        out[n] = calibration_2d(rec['E'][m].reshape(-1, 2), covs[m].reshape(-1, 2, 2))
        out[n]['faces'] = int(m.sum())
    return out


def evaluate(model, rec: Dict[str, np.ndarray]) -> Dict[str, dict]:
    """Per set calibration of a model on records."""
    return per_set_calibration(rec, model.covariances_records(rec))


def cross_validate(rec: Dict[str, np.ndarray], steps: int = 300, features=None, quantile: bool = False) -> Dict[str, dict]:
    """5-fold cross-validated calibration inside the fit split (each fold's faces scored by a model
    fitted without them), per set."""
    fold = fold_of(rec['stem'])
    covs = np.zeros(rec['E'].shape + (2,))
    for k in range(5):
        m = fit_sigma(subset(rec, fold != k), steps=steps, features=features, quantile=quantile)
        covs[fold == k] = m.covariances_records(subset(rec, fold == k))
    return per_set_calibration(rec, covs)


def format_calibration(cal: Dict[str, dict]) -> str:
    return '; '.join(f"{n} ({c['faces']}): {c['within_1'] * 100:.1f} / {c['within_2'] * 100:.1f} %, "
                     f"Spearman {c['spearman_sigma_error']:.2f}" for n, c in cal.items())


def has_scores(rec: Dict[str, np.ndarray]) -> bool:
    """Whether the records hold a detector score for at least one face (an all-NaN column is none)."""
    return 'det_score' in rec and bool(np.isfinite(rec['det_score']).any())


def candidate_designs(rec: Dict[str, np.ndarray]):
    """The sigma designs the cross-validation compares: FIT_DESIGNS, and the detector-score design
    where the records hold scores."""
    from depthmarks_ros.core.face.sigma_model import FIT_DESIGNS, SCORE_DESIGN
    return FIT_DESIGNS + ((SCORE_DESIGN,) if has_scores(rec) else ())


def fit_and_save(key: str, rec: Dict[str, np.ndarray], output: str, meta: dict, cache: str = '',
                 cross_check: bool = True, steps: int = 300) -> List[str]:
    """Fit ``face_sigma_<key>.json`` into ``output`` (records cached as ``<cache>/sigma_<key>.npz``
    when ``cache``); returns progress lines."""
    import os
    if cache:           # the records' model: output's (error_records)
        save_made_records(os.path.join(cache, f'sigma_{key}.npz'), rec, meta, output)
    from depthmarks_ros.core.face.sigma_model import FIT_DESIGNS
    lines = []
    meta = dict(meta)
    designs = candidate_designs(rec)
    features, quantile = FIT_DESIGNS[0]
    if cross_check:           # the design with the fewest shares off, then the smallest largest miss
        best = None
        meta['cross_validated_shares'] = {}
        for fs, q in designs:
            cv = cross_validate(rec, steps, fs, quantile=q)
            score = calibration_score(cv)
            miss = score[1]
            name = ' '.join(fs) + (' (quantile stage)' if q else '')
            meta['cross_validated_shares'][name] = {
                n: [round(c['within_1'], 4), round(c['within_2'], 4), round(c['spearman_sigma_error'], 3), c['faces']]
                for n, c in cv.items()}
            lines.append(f"sigma model {key}: 5-fold cross-validated on the fit split, features {'+'.join(fs)}"
                         f"{', quantile stage' if q else ''}: {format_calibration(cv)}; {score[0]} shares off by > 5 "
                         f'points, largest miss {miss * 100:.1f}')
            if best is None or score[0] < best[0][0] or (score[0] == best[0][0] and miss < best[0][1] - 1e-9):
                best = (score, fs, q)
        features, quantile = best[1], best[2]
        meta['features_chosen_by'] = ('the fewest 1/2-sigma shares more than 5 points off over both sets, then the '
                                      'smallest largest miss, in the 5-fold cross-validation on the fit split '
                                      '(cross_validated_shares), among FIT_DESIGNS (features; with or without the '
                                      'quantile stage), and SCORE_DESIGN where the records hold the detector score')
    meta['fit_loss'] = ('Gaussian NLL (+ LUVLi BCE), then the scale terms refitted by the pinball losses of the radii at '
                        'the 1- and 2-sigma shares (quantile stage)') if quantile else 'Gaussian NLL (+ LUVLi BCE)'
    sm = fit_sigma(rec, meta, steps, features, quantile)
    sm.save(os.path.join(output, f'face_sigma_{key}.json'))
    lines.append(f"sigma model {key}: {len(rec['E'])} faces, NLL stage loss {sm.meta['nll_stage_loss']:.3f}, 1/2-sigma "
                 f"shares on its fit errors {sm.meta.get('shares_before_scale')} -> x{sm.scale:.2f} "
                 f"{sm.meta.get('shares_fit')}")
    return lines


SIGMA_KEYS = ('hybrid', 'mediapipe', 'dlib', 'dlib_hog', 'dlib_mmod')


def sigma_keys(convention: str = '2d') -> tuple:
    """The sigma model keys of landmark convention ``convention`` (core/face/convention.py): SIGMA_KEYS for
    '2d'; another convention's own (``sigma_key``: 'hybrid_3d'), for the backends it has artefacts for."""
    from depthmarks_ros.core.face.convention import CONVENTION_BACKENDS, DEFAULT_CONVENTION, sigma_key
    if convention == DEFAULT_CONVENTION:
        return SIGMA_KEYS
    return tuple(sigma_key(k, convention) for k in SIGMA_KEYS if k in CONVENTION_BACKENDS[convention])


def records_redo(key: str) -> str:
    """The fit-face options (check_records_model's ``redo``, ``{cache}`` left to fill) that rewrite the
    records sigma_<key>.npz of sigma key ``key`` (its backend and landmark convention: convention.py
    split_key): a '2d' backend's sigma part (``--parts sigma-<key>``); a landmark convention's hybrid
    ('hybrid_3d'): that convention's own profile part, which leaves the '2d' records alone (a sigma part
    would write those). ValueError for a key no fit-face part writes sigma records of (mediapipe_fixed,
    hybrid_box68: its pose records are BOX68_POSE_RECORDS, core/face/model_fit.py)."""
    from depthmarks_ros.core.face.convention import DEFAULT_CONVENTION, split_key
    backend, convention = split_key(key)
    if backend not in SIGMA_KEYS:
        raise ValueError(f'no fit-face part writes sigma records sigma_{key}.npz (sigma keys: {", ".join(SIGMA_KEYS)}, '
                         'and a landmark convention\'s own: convention.py sigma_key)')
    if convention == DEFAULT_CONVENTION:
        return f'--parts sigma-{backend} --cache {{cache}}'
    return f'--convention {convention} --parts profile --cache {{cache}}'


def cached_records(cache: str, output: str, convention: str = '2d') -> Dict[str, str]:
    """The records ``<cache>/sigma_<key>.npz`` of ``convention``'s keys (:func:`sigma_keys`; '2d' never
    reads another convention's, nor the reverse) that exist, by key; a FileNotFoundError saying which
    run writes them where there is no cache folder or none of them."""
    import os
    keys = sigma_keys(convention)
    if convention == '2d':
        options, also = SIGMA_RECORDS_REDO, ' (and --parts sigma-dlib_mmod for dlib_mmod\'s)'
        want = 'sigma_<backend>.npz records'
    else:
        options, also = records_redo(keys[0]), ''
        want = ', '.join(f'sigma_{k}.npz' for k in keys) + f' (the {convention} convention\'s records)'
    if not cache or not os.path.isdir(cache):
        raise FileNotFoundError(f'no sigma record cache {cache!r}: run {fit_face_command(output, options)}{also} first')
    paths = {key: os.path.join(cache, f'sigma_{key}.npz') for key in keys}
    paths = {key: path for key, path in paths.items() if os.path.isfile(path)}
    if not paths:
        raise FileNotFoundError(f'no {want} in {cache}: write them with {fit_face_command(output, options, cache)}{also}')
    return paths


def refit_cached(cache: str, output: str, command: str, steps: int = 300, samples=None, convention: str = '2d'):
    """Refit every sigma model of landmark convention ``convention`` whose records are in ``cache``
    (``<cache>/sigma_<key>.npz``, :func:`cached_records`, written by an earlier fit with the same ``--cache``)
    without running the backends; yields progress lines. ``samples`` (a callable giving the fit split's
    FaceSamples): for records written before the image-quality features, which are then computed from the
    images and written back to the cache."""
    import os
    from depthmarks_ros.core.face.datasets import SPLIT_RULE
    paths = cached_records(cache, output, convention)
    for key, path in paths.items():         # every file before any fit: a refusal writes no face_sigma_*.json
        check_records_model(path, output, redo=records_redo(key))
    for key, path in paths.items():
        rec = load_records(path)
        if ('sharp' not in rec or 'contrast' not in rec) and samples is not None:
            rec = add_image_quality(rec, samples())
            save_records(path, rec)
            yield f'sigma records {key}: image-quality features added from the images'
        meta = {'split_rule': SPLIT_RULE, 'command': command, 'faces': len(rec['E']), 'convention': convention}
        made = path[:-4] + '.json'
        if os.path.isfile(made):          # how the records were made (the run that wrote them)
            import json
            with open(made) as f:
                prev = json.load(f).get('records_made_by', {})
            meta.update({k: prev[k] for k in ('backend', 'errors') if k in prev})
            meta['records_made_by'] = prev.get('command', '')
        yield from fit_and_save(key, rec, output, meta, steps=steps)
