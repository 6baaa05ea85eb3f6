"""`depthmarks fit-face --data DATA -o DIR`: fit the shipped face artefacts on the fit split of the real face
sets (split rule: core/face/datasets.py SPLIT_RULE; the report split is never read):

* ``face_model_68.npy`` (+ ``.json``): the 3D mean face for head pose, from AFLW2000-3D's 3D landmarks
  (faces with every |angle| <= 99 deg), rotated to zero pose with the set's own Pose_Para;
* ``face_fit.json``: the MediaPipe-detector -> dlib-predictor box map (median relation to dlib's HOG
  boxes), the head-pose covariance factors per path and angle, of |yaw| within the fit faces' range
  (part ``pose``: every path and the pooled factors; ``pose-<path>`` one of hybrid, mediapipe, dlib,
  dlib_hog, hybrid_box68: 68.3 % of the fit faces' angle errors within 1 sigma; the file's ``version``
  is core/face/head_pose.py FIT_VERSION);
* ``face_mesh_to_68.npz``: the learned MediaPipe mesh -> iBUG-68 map (ridge; AFLW2000-3D and 300-W
  weighted equally; the ridge weight chosen on a validation part of the fit split);
* ``face_sigma_<backend>.json`` (part ``sigma``: every backend; ``sigma-<backend>`` one of them):
  per-landmark covariance models fitted by the Gaussian NLL (LUVLi visibility term from
  AFLW2000-3D's self-occlusion labels) on each backend's errors, the two sets weighted equally
  (the mesh map's and the hybrid's errors cross-fitted: each face predicted by maps, blends and
  turned-face predictors fitted without it; core/face/sigma_fit.py); part ``profile`` also refits
  the hybrid's sigma model; ``--cache DIR`` keeps the error records, and
  ``--parts sigma-cached --cache DIR`` refits from them in seconds;
* ``face_hybrid.json`` + ``face_sigma_hybrid.json`` (part ``hybrid``): the hybrid backend's dlib box
  shape and per-landmark blend weights, and its covariance model (core/face/hybrid.py);
* ``face_profile_68.dat`` (+ ``.json``; part ``profile``, after ``hybrid``): the hybrid's turned-face
  predictor (core/face/profile.py) and its weights and covariance in ``face_hybrid.json``;
* ``face_visibility.json`` (part ``visibility``): per-landmark self-occlusion model of yaw and pitch,
  from AFLW2000-3D's 3D landmarks (core/face/visibility.py).

``--convention 3d`` (the face_landmarks parameter landmark_convention, core/face/convention.py): the parts
mapping, hybrid, hybrid-template, profile and sigma-hybrid on AFLW2000-3D's fit split alone, into that
convention's own files (face_mesh_to_68_3d.npz, face_hybrid_3d.json, face_sigma_hybrid_3d.json; the
records in --cache: sigma_hybrid_3d.npz, hybrid_stack_inputs_3d.npz); its profile part fits the weights for
the shared turned-face predictor in -o (not retrained or rewritten; its sha1 recorded in the convention's
blend); pose-hybrid (from those records, --cache required, checked before -o is seeded) adds the
convention's head-pose angle factors to face_fit.json under 'hybrid_3d' (the '2d' keys and the file's own
record untouched); sigma-cached (--cache required) refits face_sigma_hybrid_3d.json from the records
sigma_hybrid_3d.npz alone (a '2d' sigma-cached run never reads them); the other artefacts are shared (a
'2d' refit of one leaves the convention's to refit).

Writes into ``--output`` / ``-o`` (required, as every fit and train command's; a folder the user owns,
never the installed package): a fit reads the artefacts it builds on from there (the profile part the
hybrid's, the sigma parts the box map and mesh map, every later part the model part's 3D mean face), so
each shipped face artefact missing there is first copied from the package (its face_* files) and the
folder is a complete set (--data, or --cache for sigma-cached, is checked first: a run that cannot start
copies nothing); the face_landmarks node and
``depthmarks face`` read it with ``fitted_data:=DIR`` / ``--fitted-data DIR``. To ship a refit, copy the
files into depthmarks_ros/data/ in a checkout. ``--parts`` picks a subset.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import sys

from depthmarks_ros.core.face.convention import CONVENTIONS, DEFAULT_CONVENTION

PARTS = ('model', 'box', 'mapping', 'sigma', 'pose', 'sigma-mediapipe', 'sigma-dlib', 'sigma-dlib_hog', 'sigma-hybrid', 'sigma-dlib_mmod',
         'sigma-cached', 'hybrid', 'hybrid-template', 'visibility', 'profile', 'pose-hybrid', 'pose-mediapipe',
         'pose-dlib', 'pose-dlib_hog', 'pose-hybrid_box68')
SIGMA_STEPS = 300
# the parts a convention other than '2d' fits (its own files: core/face/convention.py OWN_FILES)
CONVENTION_PARTS = ('mapping', 'hybrid', 'hybrid-template', 'profile', 'sigma-hybrid', 'pose-hybrid', 'sigma-cached')


def add_arguments(p) -> None:
    p.add_argument('--data', required=True, help='folder holding faces/aflw2000_3d and faces/300w_lfpw_test '
                   '(e.g. ../shared/data)')
    p.add_argument('--output', '-o', required=True, help='folder for the artefacts (files missing there start as '
                   'copies of the shipped ones; the node reads it with fitted_data:=DIR)')
    p.add_argument('--parts', default='model,box,mapping,sigma,hybrid,visibility,pose', help='comma-separated subset of ' + ','.join(PARTS))
    p.add_argument('--cache', default='', help='folder for the sigma models\' error records (written by the sigma '
                   'parts; --parts sigma-cached refits the sigma models from them without running the backends; '
                   'with --convention 3d the convention\'s records sigma_hybrid_3d.npz alone)')
    p.add_argument('--sigma-steps', type=int, default=SIGMA_STEPS, help='Adam steps of each sigma model fit (then L-BFGS)')
    p.add_argument('--convention', default=DEFAULT_CONVENTION, choices=CONVENTIONS,
                   help="landmark convention of the fitted artefacts (core/face/convention.py): '2d' both sets, "
                   "weighted equally (the shipped files); '3d' AFLW2000-3D alone (its fitted-3D-model points), "
                   "into the convention's own files (face_mesh_to_68_3d.npz, face_hybrid_3d.json, "
                   "face_sigma_hybrid_3d.json); parts " + ', '.join(CONVENTION_PARTS))
    p.add_argument('--limit', type=int, default=0, help='use the first N fit-split images per set (0: all; the '
                   'shipped files used 250 to bound the fit to ~7 min on the shared 2 cores)')


def _samples(data: str, limit: int = 0, convention: str = '2d'):
    """(AFLW2000-3D, 300-W) fit-split samples: the sets of ``convention`` (CONVENTION_SETS; a set it
    leaves out is empty)."""
    from depthmarks_ros.core.face.convention import CONVENTION_SETS
    from depthmarks_ros.core.face.datasets import load_aflw2000_3d, load_pts_folder
    sets = CONVENTION_SETS[convention]
    aflw = load_aflw2000_3d(os.path.join(data, 'faces', 'aflw2000_3d'), 'fit') if 'aflw2000_3d' in sets else []
    w300 = load_pts_folder(os.path.join(data, 'faces', '300w_lfpw_test'), 'fit') if '300w_lfpw_test' in sets else []
    if limit:
        aflw, w300 = aflw[:limit], w300[:limit]
    return aflw, w300


def recorded_command(args, parts, limit: bool = True) -> str:
    """The command line each artefact records (its meta 'command'): this run's options as given (paths as
    typed, the cache folder included: the error records it names are not shipped, but the line says
    which folder the sigma and pose parts read) and ``parts``, the parts of this run in the step that
    wrote the artefact (the landmark artefacts share one step: each records every part of this run but
    model and sigma-cached, whichever of them wrote it); --limit only where the step uses it
    (``limit``: not the model part, not sigma-cached), --sigma-steps only where not the default.
    Parsing it again gives that step's run."""
    cmd = ['depthmarks', 'fit-face', '--data', args.data, '-o', args.output, '--parts', ','.join(parts)]
    if args.limit and limit:
        cmd += ['--limit', str(args.limit)]
    if args.cache:
        cmd += ['--cache', args.cache]
    if args.sigma_steps != SIGMA_STEPS:
        cmd += ['--sigma-steps', str(args.sigma_steps)]
    if getattr(args, 'convention', '2d') != '2d':
        cmd += ['--convention', args.convention]
    return shlex.join(cmd)


def seed_output(output: str) -> list:
    """Copy each shipped face artefact (the package data folder's face_* files: those core/face/pipeline.py
    FaceLandmarker reads from its data_dir, and their metadata) missing in ``output`` from the package;
    returns the names copied."""
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    os.makedirs(output, exist_ok=True)
    copied = []
    for name in sorted(os.listdir(DATA_DIR)):
        src, dst = os.path.join(DATA_DIR, name), os.path.join(output, name)
        if name.startswith('face_') and os.path.isfile(src) and not os.path.exists(dst):
            shutil.copyfile(src, dst)
            copied.append(name)
    return copied


def fit_face_model(data: str, output: str, command: str) -> dict:
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
            'residual_rms_m': [round(float(v), 5) for v in resid], 'command': command}
    with open(os.path.join(output, 'face_model_68.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


def _missing_input(args, parts) -> str:
    """Why this run cannot start ('' if it can): checked before the output folder is seeded, so a run
    that cannot read its inputs leaves no copies behind. The parts that read images need --data's
    faces/ sets; sigma-cached needs its --cache folder; a landmark convention's profile part the shared
    turned-face predictor, its pose-hybrid part its records."""
    sets = [os.path.join(args.data, 'faces', s) for s in ('aflw2000_3d', '300w_lfpw_test')]
    if any(p != 'sigma-cached' for p in parts) and not any(os.path.isdir(s) for s in sets):
        return f'no face sets under {args.data}: expected {sets[0]} or {sets[1]}'
    convention = getattr(args, 'convention', '2d')
    if 'sigma-cached' in parts:            # the convention's records (a '3d' run reads sigma_hybrid_3d.npz alone)
        from depthmarks_ros.core.face.sigma_fit import cached_records
        try:
            cached_records(args.cache, args.output, convention)
        except FileNotFoundError as exc:
            return str(exc)
    if convention != '2d' and 'profile' in parts:           # its weights for the shared predictor
        from depthmarks_ros.core.face.model_fit import convention_profile_missing
        why = convention_profile_missing(args.output, convention, seeded=False)
        if why:
            return why
    if convention != '2d' and 'pose-hybrid' in parts:       # from the convention's records alone
        from depthmarks_ros.core.face.model_fit import convention_pose_missing
        return convention_pose_missing(args.cache, args.output, convention, parts, seeded=False)
    return ''


def run(args) -> int:
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.sigma_fit import StaleRecordsError
    parts = [p for p in args.parts.split(',') if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        print(f'fit-face: unknown part(s) {bad}; choose from {PARTS}', file=sys.stderr)
        return 2
    convention = getattr(args, 'convention', '2d')
    shared = [p for p in parts if p not in CONVENTION_PARTS]
    if convention != '2d' and shared:
        print(f'fit-face: --convention {convention} fits the parts {", ".join(CONVENTION_PARTS)} only (the other '
              f'artefacts are shared by the conventions); shared, not per convention: {",".join(shared)}',
              file=sys.stderr)
        return 2
    missing = _missing_input(args, parts)
    if missing:
        print(f'fit-face: {missing}', file=sys.stderr)
        return 1
    copied = seed_output(args.output)
    if copied:
        print(f'fit-face: {args.output} starts from the shipped artefacts ({len(copied)} files copied from the package)')
    try:
        if 'model' in parts:
            meta = fit_face_model(args.data, args.output, recorded_command(args, ['model'], limit=False))
            print(f"face model: {meta['faces']} faces, mean residual "
                  f"{1000 * sum(meta['residual_rms_m']) / 68:.1f} mm")
        if 'sigma-cached' in parts:        # from the error records (images read only for records lacking a feature)
            from depthmarks_ros.core.face.sigma_fit import refit_cached
            command = recorded_command(args, ['sigma-cached'], limit=False)
            for line in refit_cached(args.cache, args.output, command, args.sigma_steps,
                                     lambda: sum(_samples(args.data, convention=convention), []), convention):
                print(line, flush=True)
        if any(p not in ('model', 'sigma-cached') for p in parts):
            from depthmarks_ros.core.face.model_fit import fit_landmark_artefacts
            aflw, w300 = _samples(args.data, args.limit, convention)
            if not aflw and not w300:
                raise FileNotFoundError(f'no annotated faces under {args.data}/faces')
            command = recorded_command(args, [p for p in parts if p not in ('model', 'sigma-cached')])
            for line in fit_landmark_artefacts(aflw, w300, args.output, parts, command, args.cache, convention):
                print(line, flush=True)
    except (FileNotFoundError, StaleRecordsError, BackendError) as exc:   # BackendError: a bad mean face in -o
        print(f'fit-face: {exc}', file=sys.stderr)
        return 1
    return 0
