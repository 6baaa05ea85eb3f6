"""Per-landmark 2x2 covariance from features, fitted by the Gaussian NLL on real errors (ROS-free).

For landmark i of a face with inter-ocular distance d (outer eye corners) and in-plane angle theta:

    Sigma_i = (d * exp(a_i + c_i |yaw| / 90 + w . f)) ^ 2  R(theta) C_i R(theta)^T

with C_i a per-landmark shape (det 1, from a Cholesky factor), and f the per-point / per-face
features: log of the test-time-augmentation spread of point i (in units of d), log d, image blur
(log variance of the Laplacian of the face crop at a fixed size) and darkness (log mean
brightness of the crop), and the face's mean log spread (a face-level failure signal: a face whose
passes disagree everywhere is off as a whole), |pitch|, the reprojection residual of the point and
the face (:func:`reprojection_residual`), the crop's sharpness at native resolution and contrast
(:func:`image_quality`) and the log spread on the jaw points alone (FEATURES; each file lists the
ones it uses). a, c, w, C are fitted by minimising the 2D Gaussian NLL
(1/2 log|Sigma| + 1/2 e^T Sigma^-1 e, core/learning/losses.py) of the backend's real errors on the
fit split (``depthmarks fit-face``); one model per backend, in ``data/face_sigma_<backend>.json``.
Then one factor on sigma (``scale``) brings as many of the shares of the fit errors inside the
1/2-sigma ellipses (per set) within SHARE_TOLERANCE of 39.3 / 86.5 % as one factor can
(:meth:`LandmarkSigmaModel.fit`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from depthmarks_ros.core.face import metrics
from depthmarks_ros.core.face.artefacts import load_json, save_json
from depthmarks_ros.core.face.ibug68 import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from depthmarks_ros.core.learning.optim import minimise_lbfgs

FEATURES = ('log_tta_spread', 'log_interocular', 'blur', 'dark', 'log_face_spread', 'abs_pitch', 'yaw', 'pitch',
            'log_reproj', 'log_face_reproj', 'sharp', 'contrast', 'log_spread_contour', 'det_score')
# what a new fit uses (yaw and pitch, signed, feed the visibility term only)
FIT_FEATURES = ('log_tta_spread', 'log_interocular', 'blur', 'dark', 'log_face_spread', 'abs_pitch', 'log_reproj',
                'log_face_reproj', 'sharp', 'contrast', 'log_spread_contour')
# the share scale's aim: as many of the 1/2-sigma shares per set as possible within this of 39.3 / 86.5 %
SHARE_TOLERANCE = 0.05
# the candidates fit-face compares by cross-validation on the fit split (core/face/sigma_fit.py):
# (features, quantile stage after the NLL fit: LandmarkSigmaModel.fit)
FIT_DESIGNS = ((FIT_FEATURES, False), (FIT_FEATURES[:8], False), (FIT_FEATURES, True))
# one more candidate where the records hold the detector's score of each face (``det_score``): a face the
# detector is unsure of is often one its landmarks miss (fit split, cascade dlib's records: Spearman with
# the shipped model's per-face residual radius -0.37 within AFLW2000-3D)
SCORE_DESIGN = (FIT_FEATURES + ('det_score',), True)
# the detector score is clipped to this, in the fit and at run time alike: MediaPipe's scores are 0-1, dlib HOG's
# margins and MMOD's confidences reach 2-3 (the cascade dlib's fit faces: 0.15-1.08, 99 % below 0.98); a fitted
# weight is never extrapolated past it
DET_SCORE_RANGE = (0.0, 1.0)
# the score is that input only for a face MediaPipe's BlazeFace detected (any view of the cascade: sources
# 'mp_*'), the detector of 1172 of the cascade dlib's 1175 fit faces (2 MMOD, 1 missed by the detector;
# a development check). Any other face (dlib HOG margins from -0.5 on the oversized view, MMOD confidences,
# the pose head's mean BlazePose visibility ~1, the mesh's constant 1) gets DET_SCORE_FALLBACK_QUANTILE of
# the fit faces' clipped scores (the model's meta det_score_fallback; DET_SCORE_RANGE[0] where a model
# lacks it): a low detector score, so a wide sigma, not the most confident one
DET_SCORE_FALLBACK_QUANTILE = 0.05


def scored_source(source: str) -> bool:
    """Whether a detection of this source (core/face/detection.py Detection.source) carries the score
    the det_score input was fitted on (BlazeFace's, any view)."""
    return str(source).startswith('mp_')


def det_score_fallback(scores) -> float:
    """DET_SCORE_FALLBACK_QUANTILE of the finite ``scores`` clipped to DET_SCORE_RANGE (the fit faces'
    BlazeFace scores; NaN marks a face of another source); DET_SCORE_RANGE[0] without any."""
    s = np.asarray(scores, float).reshape(-1)
    s = s[np.isfinite(s)]
    return float(np.quantile(np.clip(s, *DET_SCORE_RANGE), DET_SCORE_FALLBACK_QUANTILE)) if len(s) \
        else DET_SCORE_RANGE[0]


GAUSS_2D_SHARES = (0.3935, 0.8647)     # a 2-D Gaussian's errors within its 1- and 2-sigma ellipses


def share_misses(shares) -> tuple:
    """(how many of the (within 1 sigma, within 2 sigma) pairs ``shares`` are more than SHARE_TOLERANCE
    off GAUSS_2D_SHARES, the largest miss): smaller is better, compared in that order (the share
    scale's aim, and fit-face's choice between feature sets)."""
    d = [abs(v - g) for pair in shares for v, g in zip(pair, GAUSS_2D_SHARES)]
    return sum(m > SHARE_TOLERANCE for m in d), max(d)


def face_angle(landmarks68: np.ndarray) -> float:
    d = landmarks68[LEFT_EYE_OUTER] - landmarks68[RIGHT_EYE_OUTER]
    return float(np.arctan2(d[1], d[0]))


def interocular(landmarks68: np.ndarray) -> float:
    """metrics.interocular floored at 1 px (the model's unit: never zero)."""
    return max(metrics.interocular(landmarks68), 1.0)


def _crop_box(grey: np.ndarray, landmarks68: np.ndarray):
    """(x0, y0, x1, y1) int pixel bounds of the landmarks' bounding box clipped to the image (x1, y1
    exclusive): the face crop of image_features and image_quality."""
    h, w = grey.shape[:2]
    x0, y0 = np.floor(np.maximum(landmarks68.min(axis=0), 0)).astype(int)
    x1, y1 = np.ceil(np.minimum(landmarks68.max(axis=0) + 1, [w, h])).astype(int)
    return x0, y0, x1, y1


def image_features(grey: np.ndarray, landmarks68: np.ndarray):
    """(blur, dark) of the face crop (bounding box of the landmarks) resized to 64x64."""
    import cv2
    x0, y0, x1, y1 = _crop_box(grey, landmarks68)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0, 0.0
    crop = cv2.resize(grey[y0:y1, x0:x1], (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    lap = cv2.Laplacian(crop, cv2.CV_32F)
    return float(-np.log(lap.var() + 1.0) / 5.0), float(-np.log(crop.mean() + 1.0) / 5.0)


def image_quality(grey: np.ndarray, landmarks68: np.ndarray):
    """(sharp, contrast) of the face crop (bounding box of the landmarks) at its native resolution:
    sharp = log of the share of the crop's variance lost by a half-resolution round trip (a face
    upsampled from a small or soft source has little detail at the top octave; the 64x64 ``blur``
    cannot see that), contrast = log(std / mean)."""
    import cv2
    x0, y0, x1, y1 = _crop_box(grey, landmarks68)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0, 0.0
    c = grey[y0:y1, x0:x1].astype(np.float32)
    half = cv2.resize(cv2.resize(c, ((x1 - x0) // 2, (y1 - y0) // 2), interpolation=cv2.INTER_AREA),
                      (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    lost = np.log(np.mean((c - half) ** 2) + 1.0) - np.log(c.var() + 1.0)
    return float(lost / 5.0), float(np.log(c.std() / (c.mean() + 1.0) + 1e-3))


CONTOUR = np.arange(68) < 17      # the jaw line: its points slide along the contour, the label conventions differ most


def reprojection_residual(landmarks68: np.ndarray, pose, K: np.ndarray, model=None) -> np.ndarray:
    """(68,) px: distance of each landmark from the 3D mean face ``model`` (the one the pose was solved
    with; None = the shipped one) projected with the plain PnP pose (how far the points are from a
    plausible face seen in that pose); NaN without a pose."""
    import cv2
    from depthmarks_ros.core.face.head_pose import face_model_68
    if pose is None:
        return np.full(68, np.nan)
    model = face_model_68() if model is None else model
    proj, _ = cv2.projectPoints(model, pose.rvec, pose.tvec, np.asarray(K, np.float64), None)
    return np.linalg.norm(proj.reshape(-1, 2) - landmarks68, axis=1)


def point_features(spread_px: np.ndarray, iod: float, blur: float, dark: float, yaw: float = 0.0,
                   pitch: float = 0.0, reproj_px=None, sharp: float = 0.0, contrast: float = 0.0,
                   det_score: float = 0.0) -> np.ndarray:
    """(68, len(FEATURES)) feature matrix of one face; yaw, pitch in degrees (plain PnP solve),
    reproj_px (68,) the reprojection residual of that solve (:func:`reprojection_residual`), sharp and
    contrast from :func:`image_quality`, det_score the detector's score of the face (clipped to
    DET_SCORE_RANGE; non-finite: 0)."""
    n = len(spread_px)
    log_spread = np.log(np.asarray(spread_px) / iod + 1e-3)
    rel = np.full(n, 0.1) if reproj_px is None or not np.all(np.isfinite(reproj_px)) \
        else np.asarray(reproj_px, float) / iod
    return np.column_stack([log_spread, np.full(n, np.log(iod) / 5.0), np.full(n, blur), np.full(n, dark),
                            np.full(n, log_spread.mean()), np.full(n, abs(pitch) / 90.0), np.full(n, yaw / 90.0),
                            np.full(n, pitch / 90.0), np.log(rel + 1e-2),
                            np.full(n, np.log(np.sqrt(np.mean(rel ** 2)) + 1e-2)), np.full(n, sharp),
                            np.full(n, contrast), log_spread * CONTOUR[:n],
                            np.full(n, np.clip(det_score, *DET_SCORE_RANGE) if np.isfinite(det_score) else 0.0)])


def record_features(rec, score_fallback: Optional[float] = None) -> np.ndarray:
    """(F, 68, len(FEATURES)) from the raw records of core/face/sigma_fit.py; a record's NaN det_score
    (a face no BlazeFace view detected) becomes ``score_fallback`` (default: :func:`det_score_fallback`
    of the records), as at run time."""
    n = len(rec['L'])
    reproj = rec['reproj68'] if 'reproj68' in rec else [None] * n
    sharp = rec['sharp'] if 'sharp' in rec else np.zeros(n)
    contrast = rec['contrast'] if 'contrast' in rec else np.zeros(n)
    score = np.asarray(rec['det_score'], float) if 'det_score' in rec else np.zeros(n)
    if not np.all(np.isfinite(score)):
        fb = det_score_fallback(score) if score_fallback is None else score_fallback
        score = np.where(np.isfinite(score), score, fb)
    return np.array([point_features(s, interocular(l), b, d, y, p, r, sh, co, sc) for s, l, b, d, y, p, r, sh, co, sc
                     in zip(rec['spread68'], rec['L'], rec['blur'], rec['dark'], rec['yaw0'], rec['pitch0'], reproj,
                            sharp, contrast, score)])


def _vis_design(yaw, pitch) -> np.ndarray:
    """(..., 4): 1, yaw/90, |yaw|/90, pitch/90 (yaw, pitch already /90), as core/face/visibility.py."""
    yaw, pitch = np.asarray(yaw, float), np.asarray(pitch, float)
    return np.stack([np.ones_like(yaw), yaw, np.abs(yaw), pitch], -1)


@dataclass
class LandmarkSigmaModel:
    a: np.ndarray                     # (68,)
    c: np.ndarray                     # (68,) yaw slope
    w: np.ndarray                     # (len(features),)
    chol: np.ndarray                  # (68, 3) raw Cholesky parameters of C_i (log diag 2, off-diagonal)
    meta: Dict = field(default_factory=dict)
    scale: float = 1.0                # share calibration: sigma x scale (fitted after the NLL, see fit)
    features: tuple = FEATURES[:5]    # the columns of point_features it uses (older files: the first four)
    vis_b: Optional[np.ndarray] = None   # (68, 4) LUVLi visibility logistic of (1, yaw, |yaw|, pitch) / 90
    h: float = 0.0                    # log-sigma added per unit of P(hidden)

    @property
    def det_score_fallback(self) -> float:
        """The det_score input of a face no BlazeFace view detected (meta det_score_fallback, written by
        the fit: :func:`det_score_fallback` of its records; DET_SCORE_RANGE[0] where absent)."""
        return float(self.meta.get('det_score_fallback', DET_SCORE_RANGE[0]))

    def det_score_input(self, source: str, score: float) -> float:
        """The detector score this model takes for a face detected by ``source`` with ``score``."""
        return float(score) if scored_source(source) else self.det_score_fallback

    def _cols(self, feats: np.ndarray) -> np.ndarray:
        return feats[..., [FEATURES.index(n) for n in self.features]]

    def shapes(self) -> np.ndarray:
        L = np.zeros((len(self.a), 2, 2))
        L[:, 0, 0], L[:, 1, 1], L[:, 1, 0] = np.exp(self.chol[:, 0]), np.exp(self.chol[:, 1]), self.chol[:, 2]
        C = L @ L.transpose(0, 2, 1)
        return C / np.sqrt(np.linalg.det(C))[:, None, None]

    def visibility(self, feats: np.ndarray) -> Optional[np.ndarray]:
        """(..., 68) P(not hidden by the face itself) from the LUVLi term, or None without one."""
        if self.vis_b is None:
            return None
        x = _vis_design(feats[..., FEATURES.index('yaw')], feats[..., FEATURES.index('pitch')])
        z = np.einsum('...nk,nk->...n', x, self.vis_b)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def log_sigma(self, feats: np.ndarray, abs_yaw_deg) -> np.ndarray:
        """(..., 68) log of sigma / interocular (before the share scale)."""
        log_s = self.a + self.c * np.asarray(abs_yaw_deg)[..., None] / 90.0 + self._cols(feats) @ self.w
        vis = self.visibility(feats)
        if vis is not None:
            log_s = log_s + self.h * (1.0 - vis)
        return log_s

    def covariance(self, landmarks68: np.ndarray, feats: np.ndarray, abs_yaw_deg: float) -> np.ndarray:
        """(68, 2, 2) px^2."""
        iod = interocular(landmarks68)
        s = iod * np.exp(np.clip(self.log_sigma(feats, abs_yaw_deg), -12, 3)) * self.scale
        th = face_angle(landmarks68)
        R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        return (s ** 2)[:, None, None] * (R @ self.shapes() @ R.T)

    def covariances_records(self, rec) -> np.ndarray:
        """(F, 68, 2, 2) for the records of core/face/sigma_fit.py."""
        feats = record_features(rec, self.meta.get('det_score_fallback'))
        return np.array([self.covariance(l, f, abs(y)) for l, f, y in zip(rec['L'], feats, rec['yaw0'])])

    def to_json(self) -> dict:
        d = {'features': list(self.features), 'a': self.a.tolist(), 'c': self.c.tolist(), 'w': self.w.tolist(),
             'chol': self.chol.tolist(), 'scale': self.scale, 'meta': self.meta}
        if self.vis_b is not None:
            d.update({'vis_b': self.vis_b.tolist(), 'h': self.h,
                      'vis_features': ['1', 'yaw/90', '|yaw|/90', 'pitch/90']})
        return d

    def save(self, path: str) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> 'LandmarkSigmaModel':
        def build(d: dict) -> 'LandmarkSigmaModel':
            m = cls(np.array(d['a'], float), np.array(d['c'], float), np.array(d['w'], float),
                    np.array(d['chol'], float), d.get('meta', {}), float(d.get('scale', 1.0)),
                    tuple(d.get('features', FEATURES[:4])),
                    np.array(d['vis_b'], float) if 'vis_b' in d else None, float(d.get('h', 0.0)))
            if any(n not in FEATURES for n in m.features):
                raise ValueError(f'unknown features {m.features}')
            return m
        m = load_json(path, 'landmark sigma model', build)
        if m.a.shape != (68,) or m.c.shape != (68,) or m.chol.shape != (68, 3) or m.w.shape != (len(m.features),) \
                or not all(np.all(np.isfinite(v)) for v in (m.a, m.c, m.w, m.chol)) \
                or not (np.isfinite(m.scale) and m.scale > 0) or not np.isfinite(m.h) \
                or (m.vis_b is not None and (m.vis_b.shape != (68, 4) or not np.all(np.isfinite(m.vis_b)))):
            raise ValueError(f'{path}: landmark sigma model has the wrong shapes or non-finite values')
        return m

    @classmethod
    def fit(cls, errors: np.ndarray, landmarks68: np.ndarray, feats: np.ndarray, abs_yaw: np.ndarray,
            steps: int = 300, meta: Optional[dict] = None, face_weights=None,
            share_scale: bool = True, features: tuple = FEATURES[:5], hidden=None, groups=None,
            quantile: bool = False) -> 'LandmarkSigmaModel':
        """errors, landmarks68 (F, 68, 2) px; feats (F, 68, len(FEATURES)); abs_yaw (F,) degrees.
        Minimises the (``face_weights``-weighted) mean 2D Gaussian NLL (full 2x2) with Adam then
        L-BFGS (float64, one thread: a small problem, and torch's thread pool stalls on a loaded
        machine). ``hidden`` (F, 68) in {0, 1}, NaN where unlabelled: self-occlusion labels; with
        them the fit is LUVLi-style: a per-landmark visibility logistic of (yaw, |yaw|, pitch) is
        fitted jointly by its BCE on the labelled faces plus the NLL of every point, in which
        P(hidden) widens sigma by exp(h P(hidden)) (hidden points keep a position error: they are
        published and scored, so they stay in the NLL). Then (``share_scale``) one factor on sigma
        is chosen so that as many as possible of the shares of the same errors inside the 1- and
        2-sigma ellipses, per ``groups`` (e.g. the sets), are within SHARE_TOLERANCE of 39.3 / 86.5 %,
        and then the largest miss is smallest (faces weighted by ``face_weights``): real errors
        are heavier-tailed than a Gaussian, and the NLL optimum widens sigma for the tail."""
        from depthmarks_ros.core.threads import torch_threads
        with torch_threads(1):
            out = cls._fit(errors, landmarks68, feats, abs_yaw, steps, meta, face_weights, features, hidden, quantile)
        if share_scale:
            out.fit_share_scale(errors, landmarks68, feats, abs_yaw, face_weights, groups)
        return out

    @classmethod
    def fit_records(cls, rec, steps: int = 300, meta: Optional[dict] = None, face_weights=None,
                    features: tuple = FIT_FEATURES, luvli: bool = True, quantile: bool = False) -> 'LandmarkSigmaModel':
        """:meth:`fit` on the records of core/face/sigma_fit.py (the share factor per set)."""
        hidden = None
        if luvli and np.any(rec['has_hidden']):
            hidden = np.where(rec['has_hidden'][:, None], rec['hidden'].astype(float), np.nan)
        return cls.fit(rec['E'], rec['L'], record_features(rec), np.abs(rec['yaw0']), steps, meta, face_weights,
                       features=features, hidden=hidden, groups=rec['dataset'], quantile=quantile)

    def radii(self, errors, landmarks68, feats, abs_yaw) -> np.ndarray:
        """(F, 68) Mahalanobis radii of the errors under this model."""
        r = []
        for e, l68, f, y in zip(errors, landmarks68, feats, abs_yaw):
            inv = np.linalg.inv(self.covariance(l68, f, y))
            r.append(np.sqrt(np.einsum('ni,nij,nj->n', e, inv, e)))
        return np.array(r)

    def fit_share_scale(self, errors, landmarks68, feats, abs_yaw, face_weights=None, groups=None) -> None:
        self.scale = 1.0
        r = self.radii(errors, landmarks68, feats, abs_yaw)
        w = np.ones(len(errors)) if face_weights is None else np.asarray(face_weights, float)
        g = np.zeros(len(errors), int) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1]
        parts = [(r[g == k].ravel(), np.repeat(w[g == k], 68) / (68 * w[g == k].sum())) for k in np.unique(g)]
        allw = np.repeat(w, 68) / (68 * w.sum())

        def shares(k, rr=r.ravel(), ww=allw):
            return float(ww @ (rr <= k)), float(ww @ (rr <= 2 * k))

        def miss(k):
            return share_misses([shares(k, *p) for p in parts])
        grid = np.exp(np.linspace(np.log(0.3), np.log(3.0), 400))
        k = float(grid[min(range(len(grid)), key=lambda i: miss(grid[i]))])
        self.meta.pop('shares_nll', None)           # the name before: these are not the NLL stage's shares
        self.meta['shares_before_scale'] = [round(v, 4) for v in shares(1.0)]
        self.scale = k
        self.meta['shares_fit'] = [round(v, 4) for v in shares(k)]
        if groups is not None:
            self.meta['shares_fit_per_group'] = {str(n): [round(v, 4) for v in shares(k, *p)]
                                                 for n, p in zip(np.unique(np.asarray(groups)), parts)}
        self.meta['share_scale_note'] = ('sigma x scale: shares of the fit errors within 1/2 sigma '
                                         'shares_before_scale (the fitted model, after its quantile stage where it '
                                         'has one) -> shares_fit (Gaussian 0.393 / 0.865); the factor '
                                         'minimises the number of shares (two radii x the sets) more than '
                                         f'{SHARE_TOLERANCE * 100:g} points off, then the largest miss')

    @classmethod
    def _fit(cls, errors, landmarks68, feats, abs_yaw, steps, meta, face_weights=None, features=FEATURES[:5],
             hidden=None, quantile=False):
        import torch
        from depthmarks_ros.core.learning.losses import gaussian_nll_cov
        F = len(errors)
        iod = np.array([interocular(l) for l in landmarks68])
        th = np.array([face_angle(l) for l in landmarks68])
        cos, sin = np.cos(th), np.sin(th)
        Rt = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)      # R^T (F, 2, 2)
        e = np.einsum('fij,fnj->fni', Rt, errors) / iod[:, None, None]                # face frame, d units
        cols = [FEATURES.index(n) for n in features]
        e_t = torch.tensor(e.reshape(-1, 2))
        f_t = torch.tensor(feats[..., cols].reshape(-1, len(cols)))
        yaw_t = torch.tensor(np.repeat(abs_yaw / 90.0, 68))
        idx = torch.tensor(np.tile(np.arange(68), F))
        fw = np.ones(F) if face_weights is None else np.asarray(face_weights, float)
        pw = torch.tensor(np.repeat(fw / fw.sum(), 68) / 68)
        r2 = (e ** 2).sum(-1).mean(0) / 2
        a = torch.tensor(0.5 * np.log(r2 + 1e-8), requires_grad=True)
        c = torch.zeros(68, dtype=torch.float64, requires_grad=True)
        w = torch.zeros(len(cols), dtype=torch.float64, requires_grad=True)
        ch = torch.zeros(68, 3, dtype=torch.float64, requires_grad=True)
        params = [a, c, w, ch]
        luvli = hidden is not None and np.any(np.isfinite(hidden))
        if luvli:
            hid = np.asarray(hidden, float).reshape(-1)
            lab = np.isfinite(hid)
            x_vis = torch.tensor(_vis_design(feats[..., FEATURES.index('yaw')], feats[..., FEATURES.index('pitch')])
                                 .reshape(-1, 4))
            lab_t = torch.tensor(lab)
            vis_t = torch.tensor(np.where(lab, 1.0 - np.nan_to_num(hid), 0.0))
            bw = torch.tensor(np.where(lab, np.repeat(fw, 68), 0.0))
            bw = bw / bw.sum()
            vb = torch.zeros(68, 4, dtype=torch.float64)
            vb[:, 0] = 3.0
            vb.requires_grad_(True)
            hh = torch.zeros((), dtype=torch.float64, requires_grad=True)
            params += [vb, hh]

        def shapes():             # C_i: det 1, from the Cholesky parameters
            L = torch.stack([torch.stack([torch.exp(ch[:, 0]), torch.zeros(68, dtype=torch.float64)], -1),
                             torch.stack([ch[:, 2], torch.exp(ch[:, 1])], -1)], -2)
            C = L @ L.transpose(1, 2)
            return C / torch.sqrt(torch.det(C))[:, None, None]

        def loss_fn():
            log_s = a[idx] + c[idx] * yaw_t + f_t @ w
            if luvli:
                z = (x_vis * vb[idx]).sum(-1)
                log_s = log_s + hh * torch.sigmoid(-z)
            cov = torch.exp(2 * log_s)[:, None, None] * shapes()[idx]
            loss = (pw * gaussian_nll_cov(e_t, cov)).sum()
            if luvli:
                bce = torch.nn.functional.binary_cross_entropy_with_logits(z, vis_t, reduction='none')
                loss = loss + (bw * torch.where(lab_t, bce, torch.zeros_like(bce))).sum()
            return loss
        opt = torch.optim.Adam(params, lr=0.05)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            opt.step()
        minimise_lbfgs(params, loss_fn, 300)
        fit_nll = float(loss_fn().item())
        if quantile:
            # second stage: the scale terms (a, c, w, h) refitted by the pinball losses of log(radius) at the
            # two shares the target scores (39.3 % within 1 sigma, 86.5 % within 2), the per-landmark shapes
            # and the visibility logistic kept: the Gaussian NLL follows the heavy tail of real errors, so a
            # face-level input that flags a few gross failures widens every such face's ellipse, the bulk's too
            with torch.no_grad():
                Ci = torch.linalg.inv(shapes())[idx]
                log_r = 0.5 * torch.log(torch.einsum('ni,nij,nj->n', e_t, Ci, e_t) + 1e-10)
                p_hid = torch.sigmoid(-(x_vis * vb[idx]).sum(-1)) if luvli else None
            qs = [(GAUSS_2D_SHARES[0], 0.0), (GAUSS_2D_SHARES[1], float(np.log(2.0)))]
            beta = 0.05

            def q_loss():
                log_s = a[idx] + c[idx] * yaw_t + f_t @ w
                if luvli:
                    log_s = log_s + hh * p_hid
                u = log_r - log_s
                tot = 0.0
                for tau, off in qs:
                    v = u - off
                    tot = tot + (pw * (tau * v + beta * torch.nn.functional.softplus(-v / beta))).sum()
                return tot
            minimise_lbfgs([a, c, w] + ([hh] if luvli else []), q_loss, 400)
        out = cls(a.detach().numpy(), c.detach().numpy(), w.detach().numpy(), ch.detach().numpy(), dict(meta or {}),
                  features=tuple(features))
        if luvli:
            out.vis_b, out.h = vb.detach().numpy().copy(), float(hh.detach())
        out.meta.pop('fit_nll', None)
        out.meta['nll_stage_loss'] = fit_nll
        out.meta['nll_stage_loss_note'] = ('the mean set-weighted Gaussian NLL (+ LUVLi BCE) at the end of the NLL '
                                           'stage, before any quantile stage and the share factor')
        return out
