"""Faces in an image -> landmarks (native + iBUG-68) with covariance and visibility, stable ids,
3D points with covariance (given depth) and head pose. Shared by the face_landmarks node, the
`depthmarks face` command, `depthmarks fit-face` and benchmarks/bench_face.py (ROS-free).

Fitted artefacts (``depthmarks_ros/data``, made by ``depthmarks fit-face`` on the fit split):
``face_mesh_to_68.npz`` (learned MediaPipe -> 68 map), ``face_sigma_<backend>.json`` (covariance
models fitted by the Gaussian NLL), ``face_fit.json`` (detector box map, head-pose calibration),
``face_model_68.npy`` (the 3D mean face of head pose, the sigma model's reprojection feature and the
hybrid blend's yaw), ... FaceLandmarker reads every one from its ``data_dir`` (a folder ``depthmarks
fit-face -o DIR`` wrote, or the shipped DATA_DIR). A missing artefact falls back to the unfitted method
(fixed vertex map, TTA covariance formula; the shipped 3D mean face); an unreadable one is a BackendError
with the file name. The node and ``depthmarks face`` name the folder by ``fitted_data``
(:func:`fitted_data_dir`), which requires each of the files the chosen backend, dlib detector and
uncertainty read (:func:`fitted_files`), so a fitted folder never mixes with the fallbacks.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from depthmarks_ros.core.camera import assumed_K
from depthmarks_ros.core.face.artefacts import file_sha1
from depthmarks_ros.core.face.backends import BackendError, DlibFace68, create_backend
from depthmarks_ros.core.face.convention import DEFAULT_CONVENTION, OWN_FILES, artefact_name, check_convention, sigma_key
from depthmarks_ros.core.face.head_pose import (DATA_DIR, HeadPose, folder_face_model, solve_head_pose,
                                                weighted_head_pose)
from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, MEDIAPIPE_TO_IBUG68, RIGHT_EYE_OUTER
from depthmarks_ros.core.face.pose_head import seen_from_behind
from depthmarks_ros.core.tracking import CentroidTracker
from depthmarks_ros.core.face.uncertainty import (DEFAULT_AUGMENTATIONS, UncertaintyModel, augmented_predictions,
                                                  landmark_covariance, match_faces)
from depthmarks_ros.core.lifting import lift, robust_depth


@dataclass
class Face:
    face_id: int
    layout: str
    landmarks: np.ndarray          # (N, 2) native layout, px
    cov: np.ndarray                # (N, 2, 2) px^2
    visibility: np.ndarray         # (N,)
    landmarks68: np.ndarray        # (68, 2)
    cov68: np.ndarray
    visibility68: np.ndarray
    bbox: np.ndarray
    points3d: Optional[np.ndarray] = None      # (N, 3) metres, NaN where no depth
    cov3d: Optional[np.ndarray] = None         # (N, 3, 3)
    head_pose: Optional[HeadPose] = None
    extras: Dict = field(default_factory=dict)  # raw outputs for fitting: spread68, features, mesh, ...

    def subset68(self):
        """Indices of the 68 layout inside the native one (MediaPipe: the fixed vertex choice)."""
        return MEDIAPIPE_TO_IBUG68 if self.layout.startswith('mediapipe') else np.arange(68)


# the fitted artefacts FaceLandmarker reads from its data_dir, per backend (each shipped in DATA_DIR; a folder
# `depthmarks fit-face -o DIR` wrote holds them all: it starts as a copy of the shipped set)
FITTED_FILES_ALL = ('face_fit.json', 'face_model_68.npy', 'face_visibility.json')
FITTED_FILES = {'hybrid': ('face_mesh_to_68.npz', 'face_hybrid.json', 'face_profile_68.dat', 'face_sigma_hybrid.json',
                           'face_sigma_dlib.json'),
                'mediapipe': ('face_mesh_to_68.npz', 'face_sigma_mediapipe.json'),
                'dlib': ('face_sigma_dlib.json', 'face_sigma_dlib_hog.json', 'face_sigma_dlib_mmod.json')}


def fitted_files(backend: str = '', dlib_detector: str = '', uncertainty: bool = True,
                 convention: str = DEFAULT_CONVENTION) -> tuple:
    """The fitted files FaceLandmarker(backend, dlib_detector=..., uncertainty=..., convention=...) reads
    from its data_dir (FITTED_FILES_ALL and FITTED_FILES[backend]; '' = every backend's): the dlib backend
    only its detector's sigma model (face_sigma_dlib.json for 'cascade', else face_sigma_dlib_<detector>.json;
    '' = all three); without ``uncertainty`` no sigma model and no face_visibility.json; a landmark
    ``convention``'s own files under its names (core/face/convention.py artefact_name)."""
    if backend not in FITTED_FILES:
        return tuple(dict.fromkeys(FITTED_FILES_ALL + sum(FITTED_FILES.values(), ())))
    return tuple(artefact_name(n, convention) for n in _fitted_files(backend, dlib_detector, uncertainty))


def _fitted_files(backend: str, dlib_detector: str, uncertainty: bool) -> tuple:
    names = FITTED_FILES_ALL + FITTED_FILES[backend]
    if backend == 'dlib' and dlib_detector:
        own = 'face_sigma_dlib.json' if dlib_detector == 'cascade' else f'face_sigma_dlib_{dlib_detector}.json'
        names = tuple(n for n in names if not n.startswith('face_sigma_') or n == own)
    if not uncertainty:
        names = tuple(n for n in names if not n.startswith('face_sigma_') and n != 'face_visibility.json')
    return names


def fitted_data_dir(path: str = '', backend: str = '', dlib_detector: str = '', uncertainty: bool = True,
                    convention: str = DEFAULT_CONVENTION) -> str:
    """The folder of the fitted face artefacts that the face_landmarks parameter ``fitted_data`` names
    (a folder ``depthmarks fit-face -o DIR`` wrote; ``~`` expanded): '' = the shipped ones (DATA_DIR). A
    path that is not a folder, or a folder without each file this pipeline reads (:func:`fitted_files` of
    ``backend``, ``dlib_detector`` and ``uncertainty``; '' = every backend's), is a BackendError naming it
    and what is missing: a typo or an empty folder would otherwise run without the fitted artefacts
    (FaceLandmarker's fallbacks)."""
    if not path:
        return DATA_DIR
    path = os.path.expanduser(path)
    hint = ('depthmarks fit-face --data DATA -o DIR writes one, starting from a copy of the shipped artefacts; '
            'empty = the shipped ones')
    if not os.path.isdir(path):
        raise BackendError(f'fitted_data {path!r} is not a folder ({hint})')
    if convention != DEFAULT_CONVENTION and backend:      # its own files first: the one refusal that names them
        check_convention_folder(path, backend, dlib_detector, uncertainty, convention)
    missing = sorted({n for n in fitted_files(backend, dlib_detector, uncertainty, convention)
                      if not os.path.isfile(os.path.join(path, n))})
    if missing:
        what = backend or 'face'
        if backend == 'dlib' and dlib_detector:
            what += f' (detector {dlib_detector})'
        if backend in FITTED_FILES and not uncertainty:
            what += ' without uncertainty'
        if convention != DEFAULT_CONVENTION:
            what += f' ({convention} landmark convention: depthmarks fit-face --convention {convention})'
        raise BackendError(f'fitted_data {path!r} lacks {", ".join(missing)} (the {what} pipeline reads '
                           f'them; copy them from {DATA_DIR}, or {hint})')
    return path


CONVENTION_FIT_HINT = ('depthmarks fit-face --data DATA -o DIR --convention {c} --parts mapping,hybrid,profile '
                      '--cache CACHE writes its files, then --convention {c} --parts pose-hybrid --cache CACHE its '
                      'head-pose factors; or landmark_convention 2d')


def check_convention_folder(data_dir: str, backend: str, dlib_detector: str = '', uncertainty: bool = True,
                            convention: str = DEFAULT_CONVENTION) -> None:
    """A BackendError naming what folder ``data_dir`` lacks for landmark convention ``convention`` (not
    '2d'): those of its own files (core/face/convention.py OWN_FILES, under their names) this pipeline reads
    (the map and blend; the sigma model, face_sigma_hybrid_3d.json, only with ``uncertainty``) and, with
    or without ``uncertainty``, its own head-pose angle factors (face_fit.json head_pose.angle_scales under
    its sigma key, 'hybrid_3d'). Never a silent fallback to the '2d' ones. The default '2d' checks nothing
    (an unknown backend is create_backend's to name)."""
    if convention == DEFAULT_CONVENTION:
        return
    try:
        check_convention(convention, backend)
    except ValueError as exc:
        raise BackendError(str(exc)) from exc
    missing = [artefact_name(n, convention) for n in _fitted_files(backend, dlib_detector, uncertainty)
               if n in OWN_FILES and not os.path.isfile(os.path.join(data_dir, artefact_name(n, convention)))]
    key = sigma_key(backend, convention)
    fit_path = os.path.join(data_dir, 'face_fit.json')
    head_pose = load_fit(fit_path).get('head_pose', {})
    scales = head_pose.get('angle_scales', {}) if isinstance(head_pose, dict) else None
    if not isinstance(scales, dict):
        raise BackendError(f"{fit_path}: 'head_pose' / 'angle_scales' are not mappings (a damaged file): "
                           f'refit it ({CONVENTION_FIT_HINT.format(c=convention)})')
    if not missing and key not in scales:
        missing = [f"face_fit.json's head-pose angle factors {key!r}"]
    if missing:
        raise BackendError(f"landmark_convention {convention!r}: {data_dir} lacks {', '.join(missing)} "
                           f'({CONVENTION_FIT_HINT.format(c=convention)})')


def load_fit(path: str) -> dict:
    """face_fit.json (detector box map, head-pose calibration), {} where there is none; a file that is
    unreadable or not of head_pose.FIT_VERSION is a BackendError naming it."""
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            fit = json.load(f)
    except (OSError, ValueError) as exc:
        raise BackendError(f'{path}: unreadable face fit file ({exc}); refit with depthmarks fit-face') from exc
    v = fit.get('version') if isinstance(fit, dict) else None
    if type(v) is not int or v != FIT_VERSION:
        raise BackendError(f'{path}: face fit file version {v!r}, this code reads version {FIT_VERSION} only '
                           '(a file without one predates it); refit with '
                           'depthmarks fit-face --data DATA -o DIR --parts box,pose')
    return fit


def face_features(grey: np.ndarray, l68: np.ndarray, others68, K: np.ndarray, size, det_score: float = 0.0,
                  model: Optional[np.ndarray] = None) -> dict:
    """Inputs of the sigma model for one face: TTA spread of each of the 68 points, yaw of a plain
    PnP solve (on the 3D mean face ``model``, head_pose.face_model_68 of the fitted folder; None = the
    shipped one), blur, darkness, ..., the detector's score; and each point's inside-the-image ramp
    (visibility)."""
    from depthmarks_ros.core.face.sigma_model import (image_features, image_quality, interocular, point_features,
                                                      reprojection_residual)
    w, h = size
    if len(others68):
        samples = np.stack([l68] + list(others68))
        spread = np.sqrt(((samples - samples.mean(axis=0)) ** 2).sum(-1).sum(0) / max(len(samples) - 1, 1))
    else:
        spread = np.zeros(68)
    blur, dark = image_features(grey, l68)
    sharp, contrast = image_quality(grey, l68)
    hp0 = solve_head_pose(l68, K, model=model)
    yaw0 = hp0.yaw if hp0 is not None else 0.0
    pitch0 = hp0.pitch if hp0 is not None else 0.0
    reproj = reprojection_residual(l68, hp0, K, model)
    margin = np.minimum.reduce([l68[:, 0], l68[:, 1], w - 1 - l68[:, 0], h - 1 - l68[:, 1]])
    return {'spread68': spread, 'yaw0': yaw0, 'pose0': hp0, 'blur': blur, 'dark': dark, 'reproj68': reproj,
            'sharp': sharp, 'contrast': contrast, 'det_score': float(det_score),
            'features': point_features(spread, interocular(l68), blur, dark, yaw0, pitch0, reproj, sharp, contrast,
                                       float(det_score)),
            'inside68': np.clip(margin / 5.0, 0.0, 1.0)}


def _check_profile_hash(blend, blend_path: str, profile_path: str) -> None:
    """Warn where the turned-face weights of ``blend`` (a landmark convention's, which names the shared
    predictor it was fitted with by its sha1: meta profile.predictor_sha1) meet another predictor file
    (a '2d' refit of the profile part since: refit the convention's profile part too)."""
    profile = blend.meta.get('profile') if isinstance(blend.meta, dict) else None
    made = profile.get('predictor_sha1') if isinstance(profile, dict) else None
    if not made:
        return
    try:
        now = file_sha1(profile_path)
    except OSError as exc:
        raise BackendError(f'{profile_path}: cannot be read ({exc})') from exc
    if now != made:
        import warnings
        warnings.warn(f'{blend_path}: its turned-face weights were fitted with another {os.path.basename(profile_path)} '
                      f'(sha1 {made[:12]}, now {now[:12]}); refit them with depthmarks fit-face '
                      '--convention <its convention> --parts profile')


class FaceLandmarker:
    """``mapping``: 'learned' (the fitted mesh -> 68 map, where shipped) or 'fixed' (MediaPipe);
    ``sigma``: 'learned' (the NLL-fitted covariance model, where shipped) or 'tta' (the formula of
    core/face/uncertainty.py); ``dlib_detector``: 'hog', 'mmod' or 'cascade' (MediaPipe detectors,
    fallbacks). The plain anchors of the benchmark are mapping='fixed', sigma='tta',
    dlib_detector='hog'. ``static`` (independent images): ``all_views`` runs every view of the detector
    cascade (core/face/detection.py), ``mmod`` dlib's CNN where nothing else found a face."""

    def __init__(self, backend: str = 'dlib', max_faces: int = 4, refine: bool = False,
                 uncertainty: bool = True, static: bool = False, dlib_detector: str = 'hog',
                 model: Optional[UncertaintyModel] = None, learned_model: str = '', dlib_redetect_every: int = 1,
                 mapping: str = 'learned', sigma: str = 'learned', data_dir: str = DATA_DIR,
                 mesh_fallback: bool = True, all_views: bool = True, mmod: bool = True,
                 convention: str = DEFAULT_CONVENTION):
        from depthmarks_ros.core.face.mapping import MeshTo68
        from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel
        if mapping not in ('learned', 'fixed') or sigma not in ('learned', 'tta'):
            raise BackendError(f"mapping must be 'learned' or 'fixed', sigma 'learned' or 'tta' (got {mapping!r}, {sigma!r})")
        self.backend_name = backend
        if convention != DEFAULT_CONVENTION and (mapping != 'learned' or sigma != 'learned'):
            raise BackendError(f"landmark_convention {convention!r} needs the learned map and sigma model")
        check_convention_folder(data_dir, backend, dlib_detector, uncertainty, convention)   # never a silent '2d'
        self.convention = convention
        # the 3D mean face of head pose, sigma features, the blend's yaw and the node's markers (an unreadable
        # file: a BackendError naming it)
        self.face_model = folder_face_model(data_dir)
        self.fit = load_fit(os.path.join(data_dir, 'face_fit.json'))
        self.mapping = None
        map_path = os.path.join(data_dir, artefact_name('face_mesh_to_68.npz', convention))
        if backend in ('mediapipe', 'hybrid') and mapping == 'learned' and os.path.isfile(map_path):
            try:
                self.mapping = MeshTo68.load(map_path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        blend = None
        blend_path = os.path.join(data_dir, artefact_name('face_hybrid.json', convention))
        if backend == 'hybrid' and os.path.isfile(blend_path):
            from depthmarks_ros.core.face.hybrid import HybridBlend
            try:
                blend = HybridBlend.load(blend_path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        profile = None
        profile_path = os.path.join(data_dir, 'face_profile_68.dat')
        if blend is not None and blend.profile_weights is not None and not os.path.isfile(profile_path):
            import warnings
            warnings.warn(f'{blend_path} has turned-face weights but {profile_path} is missing: turned faces '
                          'fall back to the blend without the predictor (its sigma model was fitted with it)')
        if blend is not None and blend.profile_weights is not None and os.path.isfile(profile_path):
            from depthmarks_ros.core.face.profile import ProfilePredictor
            _check_profile_hash(blend, blend_path, profile_path)
            try:
                profile = ProfilePredictor.load(profile_path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        self.backend = create_backend(backend, max_faces, refine, static, dlib_detector,
                                      dlib_redetect_every, self.mapping, self.fit.get('box_map'),
                                      mesh_fallback, blend, profile, all_views, mmod, self.face_model)
        self.model = model or UncertaintyModel()
        self.uncertainty = uncertainty
        self.sigma_model = None
        self.sigma_model_dlib = None          # hybrid: faces only dlib's predictor followed (cascade box)

        def load_sigma(key):
            path = os.path.join(data_dir, artefact_name(f'face_sigma_{key}.json', convention))
            if not (uncertainty and sigma == 'learned' and os.path.isfile(path)):
                return None
            try:
                return LandmarkSigmaModel.load(path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        self.sigma_model = load_sigma(self._sigma_key(dlib_detector))
        if backend == 'hybrid':
            self.sigma_model_dlib = load_sigma('dlib')
        self.visibility_model = None          # self-occlusion by yaw/pitch (face_visibility.json)
        vis_path = os.path.join(data_dir, 'face_visibility.json')
        if uncertainty and sigma == 'learned' and os.path.isfile(vis_path):
            from depthmarks_ros.core.face.visibility import VisibilityModel
            try:
                self.visibility_model = VisibilityModel.load(vis_path)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        self._aug = []
        if uncertainty and backend == 'mediapipe':
            self._aug = [create_backend(backend, max_faces, refine, static,
                                        mapping=self.mapping, mesh_fallback=False) for _ in DEFAULT_AUGMENTATIONS]
        self.tracker = CentroidTracker()
        # a trained patch model (depthmarks train-landmarks) replaces the TTA covariance of the 68 points
        self.learned = None
        if learned_model:
            from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
            self.learned = LandmarkUncertaintyModel.load(learned_model)

    def _sigma_key(self, dlib_detector: str) -> str:
        if self.backend_name == 'hybrid':
            return sigma_key('hybrid', self.convention)      # 'hybrid_3d': the '3d' convention's own
        if self.backend_name == 'mediapipe':
            return 'mediapipe' if self.mapping is not None else 'mediapipe_fixed'
        return 'dlib' if dlib_detector == 'cascade' else f'dlib_{dlib_detector}'

    @property
    def sigma_key(self) -> str:
        return self._sigma_key(getattr(self.backend, 'detector', ''))

    def pose_key(self, layout: str) -> str:
        """Whose head-pose angle factors (face_fit.json head_pose.angle_scales) a face of this layout
        takes: the hybrid's faces the mesh follows 'hybrid', its keypoint-path faces (no mesh, or the
        mesh switched off by the mesh-face check) 'hybrid_box68', its dlib-only faces (dlib's predictor,
        the cascade dlib's sigma model) the cascade dlib's 'dlib'; every other backend its sigma key.
        Each is fitted on the faces of that path (model_fit._fit_pose_scales)."""
        if self.backend_name == 'hybrid' and layout in ('dlib68', 'box68'):
            return 'dlib' if layout == 'dlib68' else 'hybrid_box68'
        return self.sigma_key       # a landmark convention's own factors ('hybrid_3d'; check_convention_folder)

    def close(self) -> None:
        for b in [self.backend] + self._aug:
            b.close()

    def _native_runs(self, rgb):
        if isinstance(self.backend, DlibFace68):
            return None
        return [lambda img, b=b: [np.column_stack([f.landmarks, f.z]) for f in b.process(img)] for b in self._aug]

    def process(self, rgb: np.ndarray, K: Optional[np.ndarray] = None, depth: Optional[np.ndarray] = None,
                depth_sigma: Optional[np.ndarray] = None) -> List[Face]:
        """rgb (H, W, 3) uint8; K the rectified 3x3 camera matrix (for 3D and head pose)."""
        import cv2
        from depthmarks_ros.core.face.sigma_model import scored_source
        h, w = rgb.shape[:2]
        # an image of (almost) no pixels has no face, and MediaPipe's graphs break on an empty one
        results = self.backend.process(rgb) if min(h, w) >= 2 else []
        if not results:
            self.tracker.update([])
            return []
        others_per_face: List[List[np.ndarray]] = [[] for _ in results]      # native layout (N, 2)
        others68: List[List[np.ndarray]] = [[] for _ in results]             # 68 layout
        if self.uncertainty:
            if isinstance(self.backend, DlibFace68):
                others_per_face = [self._dlib_jitter(rgb, r.bbox) for r in results]
                others68 = others_per_face
            elif self.backend_name == 'hybrid':     # the blend's two inputs; dlib jitter where only dlib ran
                for i, r in enumerate(results):
                    if r.layout == 'dlib68':
                        others_per_face[i] = others68[i] = self._dlib_jitter(rgb, r.bbox)
                    elif r.layout != 'box68':
                        others68[i] = list(r.alt68)
            else:
                runs = augmented_predictions(rgb, self._native_runs(rgb))
                iod = [np.linalg.norm(r.landmarks68[LEFT_EYE_OUTER] - r.landmarks68[RIGHT_EYE_OUTER]) for r in results]
                for aug in runs:
                    xys = [a[:, :2] for a in aug]
                    for i, m in enumerate(match_faces([r.landmarks for r in results], xys, max(max(iod), 10.0))):
                        if m is not None and m.shape == results[i].landmarks.shape:
                            full = aug[next(j for j, x in enumerate(xys) if x is m)]
                            others_per_face[i].append(m)
                            others68[i].append(self.backend.to68(full))
                            results[i].tta.append(full)
        ids = self.tracker.update([r.bbox for r in results])
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if self.sigma_model is not None or self.uncertainty else None
        K_pose = K if K is not None else assumed_K(w, h)
        faces = []
        for r, others, o68, fid in zip(results, others_per_face, others68, ids):
            iod = float(np.linalg.norm(r.landmarks68[LEFT_EYE_OUTER] - r.landmarks68[RIGHT_EYE_OUTER]))
            cov, vis = landmark_covariance(r.landmarks, others, (w, h), self.model, iod)
            sub = MEDIAPIPE_TO_IBUG68 if r.layout.startswith('mediapipe') else np.arange(68)
            cov68, vis68 = cov[sub], vis[sub]
            face = Face(fid, r.layout, r.landmarks, cov, vis, r.landmarks68, cov68, vis68, r.bbox)
            if r.z is not None:
                face.extras['mesh'] = np.column_stack([r.landmarks, r.z])
                face.extras['tta_meshes'] = r.tta
            if self.uncertainty:
                sm = self.sigma_model_dlib if r.layout == 'dlib68' and self.backend_name == 'hybrid' \
                    else self.sigma_model
                # the detector score only where BlazeFace gave it (the det_score input's fit faces); any other
                # source the model's low fallback (without a model NaN: fit-face's records mark such faces so)
                score = sm.det_score_input(r.source, r.score) if sm is not None else \
                    (r.score if scored_source(r.source) else float('nan'))
                face.extras.update(face_features(grey, r.landmarks68, o68, K_pose, (w, h), score, self.face_model))
                face.extras['det_source'] = r.source
                face.extras['others68'] = o68
                if r.layout == 'box68':       # hybrid: a template in the detector box, its fitted spread
                    face.cov68 = r.alt68[0]
                    face.visibility68 = face.extras['inside68']
                elif sm is not None:
                    face.cov68 = sm.covariance(r.landmarks68, face.extras['features'], abs(face.extras['yaw0']))
                    face.visibility68 = face.extras['inside68']
                pose0 = face.extras.get('pose0')
                if self.visibility_model is not None and pose0 is not None:
                    face.visibility68 = face.extras['inside68'] * self.visibility_model.predict(pose0.yaw, pose0.pitch)
            if self.learned is not None:
                face.cov68, face.visibility68 = self.learned.predict(rgb, face.landmarks68)
            if seen_from_behind(r.source):      # a head seen from behind (pose_head.py): every face point hidden
                face.visibility68 = np.zeros(68)
            if not r.layout.startswith('mediapipe') or self.mapping is None:
                face.cov[sub], face.visibility[sub] = face.cov68, face.visibility68
            if K is not None:
                key = self.pose_key(r.layout)
                if seen_from_behind(r.source):
                    pass        # no head pose: the face template on the back of the head would give a pose ~180 deg
                    #             off with a frontal face's confidence (head_pose stays None)
                elif r.pose68 is not None:    # hybrid: the mesh's points, in the 3D mean face's (AFLW) convention
                    face.head_pose = self.head_pose(r.pose68, K, face.cov68, key=key)
                else:
                    pose0 = face.extras.get('pose0') if K_pose is K else None     # the same plain solve
                    face.head_pose = self.head_pose(face.landmarks68, K, face.cov68, pose0, key)
                if depth is not None:
                    z, spread = robust_depth(depth, face.landmarks, radius=2, sigma_map=depth_sigma)
                    face.points3d, face.cov3d = lift(face.landmarks, z, K[0, 0], K[1, 1], K[0, 2], K[1, 2],
                                                     face.cov, np.nan_to_num(spread, nan=0.0))
            faces.append(face)
        return faces

    def head_pose(self, landmarks68: np.ndarray, K: np.ndarray, cov68: Optional[np.ndarray],
                  first: Optional[HeadPose] = None, key: Optional[str] = None) -> Optional[HeadPose]:
        """Pose weighted by the landmark covariance plus the 3D mean face's own spread (the model
        residual of face_model_68.json projected at the face's distance), the angle part scaled by
        path ``key``'s fitted factors per angle and |yaw| (:meth:`pose_key`; default the backend's
        sigma key; face_fit.json head_pose.angle_scales, else the pooled factors)."""
        return weighted_head_pose(landmarks68, K, cov68, self.fit.get('head_pose', {}),
                                  self.pose_key('') if key is None else key, first, self.face_model)

    def _dlib_jitter(self, rgb, bbox) -> List[np.ndarray]:
        import dlib
        x0, y0, x1, y1 = bbox
        size = max(x1 - x0, y1 - y0)
        out = []
        for dx, dy, s in ((0.04, 0.03, 1.0), (-0.03, -0.04, 0.95), (0.0, 0.0, 1.06)):
            cx, cy = (x0 + x1) / 2 + dx * size, (y0 + y1) / 2 + dy * size
            half = s * size * 0.6
            rect = dlib.rectangle(int(cx - half), int(cy - half), int(cx + half), int(cy + half))
            out.append(self.backend.predict(rgb, [rect.left(), rect.top(), rect.right(), rect.bottom()])
                       if self.backend_name == 'hybrid' else self.backend.landmarks(rgb, rect))
        return out
