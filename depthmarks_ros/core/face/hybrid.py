"""MediaPipe mesh + dlib's 68-point shape predictor, blended per landmark (ROS-free).

The ``hybrid`` backend: MediaPipe Face Mesh finds and tracks the face (its own detector, then the
detector cascade of core/face/detection.py with a mesh on a crop); the learned mesh -> 68 map gives
68 points m; dlib's shape predictor runs on a box placed from m (a 2D similarity of m's inner points
onto the mean shape dlib's predictor outputs inside its HOG detector's boxes, so the box follows
dlib's convention) and gives d. The output is, per landmark i,

    x_i = w_i(b) d_i + (1 - w_i(b)) m_i

with b the bin of (|yaw| of a plain PnP solve on m (a face turned the other way uses the mirrored
landmark's weights), disagreement |d - m| of the inner points in
units of the outer-eye distance): dlib's predictor is the more accurate on near-frontal faces and
fails on strongly turned ones, where the mesh holds. The weights are least-squares optimal on the
fit split (each set weighted equally; ``depthmarks fit-face --parts hybrid`` writes
``data/face_hybrid.json`` with split rule and command). A face that the cascade finds but the mesh
does not gets dlib's points on the detector's box (layout dlib68).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from depthmarks_ros.core.face.artefacts import load_json, save_json
from depthmarks_ros.core.face.backends import predict_on_box
from depthmarks_ros.core.face.detection import KEYPOINT_FLIP
from depthmarks_ros.core.face.ibug68 import FLIP_68, mirror_68
from depthmarks_ros.core.face.mapping import align, similarity, unalign
from depthmarks_ros.core.face.metrics import bbox_size
from depthmarks_ros.core.face.sigma_model import interocular

INNER = np.arange(17, 68)          # brows, nose, eyes, mouth: stable under yaw (the jaw is not)
# dlib's predictor runs on a crop turned upright where the mesh's points lean by this much (deg, chin ->
# nose-root line from image-up): fit split, 464 AFLW2000-3D faces leaning >= 10 deg, hybrid box-NME 0.0468
# -> 0.0463 (116 leaning >= 25 deg: 0.0545 -> 0.0502; 25 instead of 15: 0.0466), 300-W's 24 such faces
# 0.0283 -> 0.0286 inter-ocular (a development check with an uncommitted script)
UPRIGHT_MIN_DEG = 15.0
# the upright crop (3x the face's extent) at most this many px a side: a large face (crop time at full
# resolution, a reviewer's check: 5.3 ms for a 400 px face in a 1080p frame, 18 ms at 800 px, 65 ms at
# 1500 px in 4K, paid per leaning face and frame on video) is scaled down to it (dlib's predictor needs
# ~80 px faces); on the report split 1 of 273 AFLW2000-3D and 1 of 17 300-W faces are that large
UPRIGHT_MAX_SIDE = 1024
# a mesh-followed face on an independent image whose hybrid points disagree with the detector keypoints'
# path (regression + turned-face predictor) by this many outer-eye distances (inner points' mean distance)
# takes the keypoint path's points: on the fit split's 987 AFLW2000-3D mesh-followed faces (each face's
# turned-face predictor trained without its fold) 3 faces, 0.57-0.77 -> 0.05-0.57 box-NME, none worse,
# mean 0.0374 -> 0.0361; 0.8 was the best threshold on 4 of 5 folds (0.7 on the other; cross-fitted gain
# 1.11 of the 1.26 box-NME units; a development check with an uncommitted script)
MESH_SWITCH_DIS = 0.8


def box_from_landmarks(ref_box: np.ndarray, pts68: np.ndarray) -> np.ndarray:
    """Square box (x0, y0, x1, y1) in the convention of ``ref_box`` (the 68 points' mean position in
    unit-box coordinates) placed by a similarity of the inner points."""
    s, R, t = similarity(ref_box[INNER], pts68[INNER])
    c = s * R @ np.array([0.5, 0.5]) + t
    return np.array([c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2])


def dlib_on_mesh(predict, rgb: np.ndarray, ref_box: np.ndarray, m68: np.ndarray,
                 upright_min_deg: float = UPRIGHT_MIN_DEG) -> np.ndarray:
    """``predict(rgb, box)`` (dlib's predictor) on the box placed from the mesh's 68 points; where those
    lean by at least ``upright_min_deg`` (chin -> nose-root line from image-up), on a crop turned
    upright about them (dlib's predictor was trained on upright faces), the points turned back."""
    from depthmarks_ros.core.face.profile import up_angle
    angle = up_angle(m68)
    if abs(angle) < upright_min_deg:
        return predict(rgb, box_from_landmarks(ref_box, m68))
    import cv2
    from depthmarks_ros.core.face.backends import upright_crop
    size = 3.0 * max(np.ptp(m68, axis=0))
    side = min(max(int(np.ceil(size)), 8), UPRIGHT_MAX_SIDE)   # a large face: the crop at most this, scaled down
    crop, A = upright_crop(rgb, m68.mean(axis=0), angle, size, side)
    Ai = cv2.invertAffineTransform(A)
    return predict(crop, box_from_landmarks(ref_box, m68 @ Ai[:, :2].T + Ai[:, 2])) @ A[:, :2].T + A[:, 2]


def disagreement(a68: np.ndarray, b68: np.ndarray) -> float:
    """Mean distance of the inner points of two 68-point sets, in outer-eye distances of ``a68``."""
    return float(np.linalg.norm(a68[INNER] - b68[INNER], axis=1).mean() / interocular(a68))


def quick_yaw(pts68: np.ndarray, size, model: Optional[np.ndarray] = None) -> float:
    """Yaw (deg) of a plain PnP solve with the assumed camera (core/camera.assumed_K) on the 3D mean
    face ``model`` (None = the shipped one)."""
    from depthmarks_ros.core.camera import assumed_K
    from depthmarks_ros.core.face.head_pose import solve_head_pose
    hp = solve_head_pose(pts68, assumed_K(*size), model=model)
    return float(hp.yaw) if hp is not None else 0.0


@dataclass
class HybridBlend:
    ref_box: np.ndarray                 # (68, 2) dlib's points in unit-box coordinates of its HOG box
    yaw_edges: np.ndarray               # (ny + 1,) deg
    dis_edges: np.ndarray               # (nd + 1,) outer-eye distances
    weights: np.ndarray                 # (ny * nd, 68) weight of dlib's point at yaw >= 0 (mirrored below 0)
    meta: Dict = field(default_factory=dict)
    box_template: Optional[np.ndarray] = None   # (68, 2) faces the mesh cannot follow: points in box units
                                                # about the detector box's centre, nose towards +x
    template_cov: Optional[np.ndarray] = None   # (68, 2, 2) its residual covariance, box units^2
    kp_map: Optional[np.ndarray] = None         # (13, 136) detector keypoints -> 68 points, both aligned onto kp_ref
    kp_cov: Optional[np.ndarray] = None         # (68, 2, 2) its cross-validated residual covariance, box units^2
    kp_ref: Optional[np.ndarray] = None         # (6, 2) mean keypoint configuration the keypoints are aligned to
                                                # (None: an older kp_map in detector-box units)
    profile_edges: Optional[np.ndarray] = None  # (np + 1,) |yaw| bin edges (deg) where the turned-face predictor joins
    profile_weights: Optional[np.ndarray] = None  # (np, 68) its weight against the blend, at yaw >= 0 (mirrored below)
    profile_scale: float = 1.0                  # box size of a keypoint guess (faces without a mesh) / its points' size
    profile_cov: Optional[np.ndarray] = None    # (68, 2, 2) its cross-fitted residual covariance on faces without a
                                                # mesh, in units of the predicted points' sqrt(w h)^2

    def profile_point_weights(self, yaw: float) -> Optional[np.ndarray]:
        """(68,) weight of the turned-face predictor's point i at this yaw (None: not used there)."""
        if self.profile_weights is None or abs(yaw) < self.profile_edges[0]:
            return None
        k = int(np.clip(np.searchsorted(self.profile_edges, abs(yaw), side='right') - 1, 0,
                        len(self.profile_weights) - 1))
        w = self.profile_weights[k]
        return w[FLIP_68] if yaw < 0 else w

    @staticmethod
    def fit_profile_weights(edges, preds, blended, gts, norms, yaws, weights) -> np.ndarray:
        """Per |yaw| bin and landmark, the v minimising sum_f c_f |v e + (1 - v) b - g|^2 (c_f = weight_f /
        norm_f^2), clipped to [0, 1]; an empty bin: 0.5. Faces below edges[0] are not used."""
        edges = np.asarray(edges, float)
        num, den = np.zeros((len(edges) - 1, 68)), np.zeros((len(edges) - 1, 68))
        for e, b, g, n, y, c in zip(preds, blended, gts, norms, yaws, weights):
            if abs(y) < edges[0]:
                continue
            k = int(np.clip(np.searchsorted(edges, abs(y), side='right') - 1, 0, len(edges) - 2))
            c = c / n ** 2
            a, d = c * ((b - g) * (b - e)).sum(1), c * ((b - e) ** 2).sum(1)
            if y < 0:
                a, d = a[FLIP_68], d[FLIP_68]
            num[k] += a
            den[k] += d
        return np.where(den > 0, np.clip(num / np.maximum(den, 1e-12), 0.0, 1.0), 0.5)

    def from_keypoints(self, box: np.ndarray, keypoints: np.ndarray) -> Optional[np.ndarray]:
        """The 68 points regressed from the detector's keypoints; None where they have collapsed onto
        one point (no similarity to kp_ref: the caller falls back to the box template)."""
        if self.kp_ref is None:         # a file from before kp_ref: the map in box units about the box centre
            size = max(box[2] - box[0], box[3] - box[1])
            c = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            u = (np.asarray(keypoints, float) - c) / size
            return (np.concatenate([u.ravel(), [1.0]]) @ self.kp_map).reshape(68, 2) * size + c
        if not np.all(np.isfinite(keypoints)):    # NaN keypoints: no similarity (svd would raise on them)
            return None
        u, (s, R, t) = align(np.asarray(keypoints, float), self.kp_ref)     # the keypoints moved onto kp_ref
        x = np.concatenate([u.ravel(), [1.0]])
        if not (np.isfinite(s) and s > 1e-9 and np.all(np.isfinite(x))):
            return None
        return unalign((x @ self.kp_map).reshape(68, 2), (s, R, t))

    def from_views(self, box: np.ndarray, keypoints: np.ndarray, view_keypoints=None) -> Optional[np.ndarray]:
        """The mean of :meth:`from_keypoints` over the keypoints of every detector view that found the face
        (``view_keypoints``, from FaceDetector.detect_all; else ``keypoints`` alone): on the 60 fit-split
        AFLW2000-3D faces without a mesh the guess's box-NME 0.135 -> 0.124, after the turned-face
        predictor 0.116 -> 0.108 (each face predicted by a predictor trained without its fold)."""
        guesses = [self.from_keypoints(box, k) for k in (view_keypoints or [keypoints])]
        guesses = [g for g in guesses if g is not None]
        return np.mean(guesses, axis=0) if guesses else None

    def fit_keypoint_map(self, boxes, keypoints, gts, ridge: float = 1e-2) -> float:
        """Ridge regression from the detector's 6 keypoints to the 68 points, both moved by the
        similarity that puts the keypoints onto their mean configuration kp_ref (generalised
        Procrustes, so in-plane turn, size and position need not be learned), each face also mirrored;
        returns the 5-fold cross-validated box-NME and sets kp_cov (box units^2 of the detector box)
        from the cross-validated residuals. ``boxes``: only for kp_cov's units. A face's ``keypoints``
        may be a list of (6, 2) arrays, one per detector view that found it: each view is a training
        pair and the face is predicted by :meth:`from_views`, as at run time (the fit split's faces
        without a mesh, every view's keypoints at run time: cross-validated box-NME of the guess 0.1305
        -> 0.1269, after the turned-face predictor of each face's fold 0.1108 -> 0.1053, against the
        map fitted on one view per face; a development check with an uncommitted script)."""
        views = [[np.asarray(k, float)] if np.ndim(k) == 2 else [np.asarray(v, float) for v in k] for k in keypoints]
        pairs, owner = [], []
        for i, (vs, g) in enumerate(zip(views, gts)):
            g = np.asarray(g, float)
            for k in vs:
                pairs.append((k, g))
                pairs.append(((k * [-1.0, 1.0])[KEYPOINT_FLIP], mirror_68(g)))
                owner += [i, i]

        def solve(pp):
            ref = np.mean([k - k.mean(axis=0) for k, _ in pp], axis=0)
            # generalised Procrustes, not mapping.mean_shape: unit Frobenius norm, not unit RMS radius (the
            # ridge and the shipped kp_map depend on that scale; changing it needs a refit)
            for _ in range(3):              # align to the mean, re-take the mean
                al = []
                for k, g in pp:
                    s, R, t = similarity(k, ref)
                    al.append((s * k @ R.T + t, s * g @ R.T + t))
                ref = np.mean([a for a, _ in al], axis=0)
                ref = (ref - ref.mean(axis=0)) / np.linalg.norm(ref - ref.mean(axis=0))
            X = np.array([np.concatenate([a.ravel(), [1.0]]) for a, _ in al])
            Y = np.array([b.ravel() for _, b in al])
            A = X.T @ X
            reg = ridge * np.trace(A) / len(A) * np.eye(len(A))
            reg[-1, -1] = 0.0                       # no penalty on the bias
            return ref, np.linalg.solve(A + reg, X.T @ Y)
        owner = np.array(owner)
        fold = np.arange(len(views)) % 5
        res, nme = [], []
        for f in range(5):
            tr = np.flatnonzero(fold[owner] != f)
            self.kp_ref, self.kp_map = solve([pairs[j] for j in tr])
            for i in np.flatnonzero(fold == f):
                g = np.asarray(gts[i], float)
                b = boxes[i]
                d = self.from_views(b, views[i][0], views[i]) - g
                res.append(d / max(b[2] - b[0], b[3] - b[1]))
                nme.append(np.linalg.norm(d, axis=1).mean() / bbox_size(g))
        self.kp_ref, self.kp_map = solve(pairs)
        res = np.array(res)
        self.kp_cov = np.einsum('fni,fnj->nij', res, res) / max(len(res) - 1, 1) + 1e-4 * np.eye(2)
        return float(np.mean(nme))

    def template_covariance(self, box: np.ndarray, facing: float) -> np.ndarray:
        """(68, 2, 2) px^2 of :meth:`from_box`'s points (mirrored like them)."""
        c = self.template_cov
        flip = np.array([[-1.0, 0.0], [0.0, 1.0]])
        mirrored = (flip @ c @ flip)[FLIP_68]
        c = c if facing > 0.02 else mirrored if facing < -0.02 else (c + mirrored) / 2
        return c * max(box[2] - box[0], box[3] - box[1]) ** 2

    def from_box(self, box: np.ndarray, facing: float) -> np.ndarray:
        """The template placed in a detector box; mirrored for a face whose nose points to image-left,
        the mean of both sides when the detector gives no direction."""
        t = self.box_template
        mirrored = mirror_68(t)
        t = t if facing > 0.02 else mirrored if facing < -0.02 else (t + mirrored) / 2
        size = max(box[2] - box[0], box[3] - box[1])
        return t * size + [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]

    def fit_template(self, boxes, facings, gts) -> None:
        """Mean ground truth in box units about the box centre, mirrored to nose towards +x, and
        the covariance of the residuals about it (+ a floor of 0.01^2 box units^2)."""
        out = []
        for b, f, g in zip(boxes, facings, gts):
            size = max(b[2] - b[0], b[3] - b[1])
            u = (np.asarray(g, float) - [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) / size
            out.append(u if f >= 0 else mirror_68(u))
        out = np.array(out)
        self.box_template = out.mean(axis=0)
        d = out - self.box_template
        self.template_cov = np.einsum('fni,fnj->nij', d, d) / max(len(out) - 1, 1) + 1e-4 * np.eye(2)

    def bin(self, abs_yaw: float, dis: float) -> int:
        ny, nd = len(self.yaw_edges) - 1, len(self.dis_edges) - 1
        iy = int(np.clip(np.searchsorted(self.yaw_edges, abs_yaw, side='right') - 1, 0, ny - 1))
        idx = int(np.clip(np.searchsorted(self.dis_edges, dis, side='right') - 1, 0, nd - 1))
        return iy * nd + idx

    def point_weights(self, dlib68: np.ndarray, mesh68: np.ndarray, yaw: float) -> np.ndarray:
        """(68,) weight of dlib's point i: a face turned the other way uses the mirrored landmark's."""
        w = self.weights[self.bin(abs(yaw), disagreement(mesh68, dlib68))]
        return w[FLIP_68] if yaw < 0 else w

    def blend(self, dlib68: np.ndarray, mesh68: np.ndarray, yaw: float) -> np.ndarray:
        w = self.point_weights(dlib68, mesh68, yaw)[:, None]
        return w * dlib68 + (1.0 - w) * mesh68

    def to_json(self) -> dict:
        out = {'ref_box': self.ref_box.round(5).tolist(), 'yaw_edges': self.yaw_edges.tolist(),
               'dis_edges': self.dis_edges.tolist(), 'weights': self.weights.round(4).tolist(), 'meta': self.meta}
        if self.box_template is not None:
            out['box_template'] = self.box_template.round(5).tolist()
            out['template_cov'] = self.template_cov.round(6).tolist()
        if self.kp_map is not None:
            out['kp_map'] = self.kp_map.round(6).tolist()
            out['kp_cov'] = self.kp_cov.round(6).tolist()
            if self.kp_ref is not None:
                out['kp_ref'] = self.kp_ref.round(6).tolist()
        if self.profile_weights is not None:
            out['profile'] = {'edges': self.profile_edges.tolist(), 'weights': self.profile_weights.round(4).tolist(),
                              'scale': round(float(self.profile_scale), 5),
                              'cov': None if self.profile_cov is None else self.profile_cov.round(6).tolist()}
        return out

    def save(self, path: str) -> None:
        save_json(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> 'HybridBlend':
        def build(d: dict) -> 'HybridBlend':
            out = cls(np.array(d['ref_box'], float), np.array(d['yaw_edges'], float),
                      np.array(d['dis_edges'], float), np.array(d['weights'], float), d.get('meta', {}),
                      np.array(d['box_template'], float) if 'box_template' in d else None,
                      np.array(d['template_cov'], float) if 'box_template' in d else None,
                      np.array(d['kp_map'], float) if 'kp_map' in d else None,
                      np.array(d['kp_cov'], float) if 'kp_map' in d else None)
            pr = d.get('profile')
            if pr is not None:
                out.profile_edges = np.array(pr['edges'], float)
                out.profile_weights = np.array(pr['weights'], float)
                out.profile_scale = float(pr['scale'])
                out.profile_cov = None if pr.get('cov') is None else np.array(pr['cov'], float)
            if 'kp_map' in d and 'kp_ref' in d:
                out.kp_ref = np.array(d['kp_ref'], float)
            edges = (out.yaw_edges, out.dis_edges) + ((out.profile_edges,) if pr is not None else ())
            if any(e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0) for e in edges):
                raise ValueError('bin edges must be increasing 1-D lists')
            nb = (len(out.yaw_edges) - 1) * (len(out.dis_edges) - 1)
            shapes = [(out.ref_box, (68, 2)), (out.weights, (nb, 68))]
            if out.box_template is not None:
                shapes += [(out.box_template, (68, 2)), (out.template_cov, (68, 2, 2))]
            if out.kp_map is not None:
                shapes += [(out.kp_map, (13, 136)), (out.kp_cov, (68, 2, 2))]
                if out.kp_ref is not None:
                    shapes += [(out.kp_ref, (6, 2))]
            if pr is not None:
                shapes += [(out.profile_weights, (len(out.profile_edges) - 1, 68))]
                if out.profile_cov is not None:
                    shapes += [(out.profile_cov, (68, 2, 2))]
                if not (np.isfinite(out.profile_scale) and out.profile_scale > 0):
                    raise ValueError('profile scale must be positive')
            if any(a.shape != s for a, s in shapes) \
                    or not all(np.all(np.isfinite(a)) for a in [a for a, _ in shapes] + list(edges)):
                raise ValueError('wrong shapes or non-finite values')
            return out
        return load_json(path, 'hybrid blend file', build)

    @classmethod
    def fit(cls, ref_box, dlib68s, mesh68s, gts, norms, yaws, weights,
            yaw_edges=(0, 15, 30, 45, 360), dis_edges=(0, 0.03, 0.045, 0.08, 1e9), meta=None) -> 'HybridBlend':
        """Per bin and landmark, the w minimising sum_f c_f |w d + (1 - w) m - g|^2 with
        c_f = weight_f / norm_f^2 (the squared NME), clipped to [0, 1]; an empty bin: 0.5. Faces with
        yaw < 0 count for the mirrored landmark (the side turned away is the same side of the model)."""
        out = cls(np.asarray(ref_box, float), np.asarray(yaw_edges, float), np.asarray(dis_edges, float),
                  np.zeros(((len(yaw_edges) - 1) * (len(dis_edges) - 1), 68)), dict(meta or {}))
        num, den = np.zeros_like(out.weights), np.zeros_like(out.weights)
        for d, m, g, n, y, c in zip(dlib68s, mesh68s, gts, norms, yaws, weights):
            k = out.bin(abs(y), disagreement(m, d))
            c = c / n ** 2
            a, b = c * ((m - g) * (m - d)).sum(1), c * ((m - d) ** 2).sum(1)
            if y < 0:                   # slot j holds landmark FLIP_68[j]
                a, b = a[FLIP_68], b[FLIP_68]
            num[k] += a
            den[k] += b
        out.weights = np.where(den > 0, np.clip(num / np.maximum(den, 1e-12), 0.0, 1.0), 0.5)
        return out


def mean_box_shape(boxes, pts68s) -> np.ndarray:
    """(68, 2) mean of dlib's points in unit-box coordinates of the boxes they were predicted in."""
    return np.mean([(np.asarray(p, float) - np.asarray(b[:2], float)) / max(b[2] - b[0], 1e-6)
                    for b, p in zip(boxes, pts68s)], axis=0)


def refine_keypoint_guess(profile, blend: 'HybridBlend', rgb: np.ndarray, box: np.ndarray, guess: np.ndarray,
                          view_keypoints, scale: float) -> np.ndarray:
    """The turned-face predictor ``profile`` started on the keypoint regression ``guess`` of a face
    without a mesh, both directions, the result nearer the guess; with two or more ``view_keypoints``
    also started on each view's own regression (``blend.from_keypoints``) in that direction, and the
    per-point median of all those results. One rule for the run time (HybridFace68._from_keypoints)
    and the fit (model_fit._fit_profile), with one exception: the mesh-face check
    (HybridFace68._check_mesh_face) compares against the single-start result (no per-view median, as
    its 0.8 threshold was chosen), so a face it switches carries a covariance fitted with the median."""
    both = [profile.predict_from(rgb, guess, left, scale) for left in (False, True)]
    left = bool(np.linalg.norm(both[1] - guess, axis=1).mean() < np.linalg.norm(both[0] - guess, axis=1).mean())
    p68 = both[int(left)]
    if view_keypoints and len(view_keypoints) > 1:
        starts = [g for g in (blend.from_keypoints(box, k) for k in view_keypoints) if g is not None]
        p68 = np.median([p68] + [profile.predict_from(rgb, g, left, scale) for g in starts], axis=0)
    return p68


class HybridFace68:
    """MediaPipe mesh (+ learned 68 map) and dlib's predictor on a box from it, blended (module doc).
    Without a fitted blend (``blend=None``) it is the mesh's 68 points alone."""
    name = 'hybrid'

    def __init__(self, max_faces: int = 4, refine: bool = False, static: bool = False, mapping=None,
                 blend: Optional[HybridBlend] = None, box_map=None, profile=None, all_views: bool = True,
                 mmod: bool = True, face_model: Optional[np.ndarray] = None):
        import dlib
        from depthmarks_ros.core.face.backends import MediaPipeFaceMesh, load_dlib_model
        from depthmarks_ros.core.face.detection import IDENTITY_BOX_MAP
        self.mesh = MediaPipeFaceMesh(max_faces, refine, static, mapping=mapping, fallback_detector=True,
                                      all_views=all_views, mmod=mmod)
        self.layout = self.mesh.layout
        self.mapping = mapping
        self._predictor = load_dlib_model(dlib.shape_predictor, 'shape_predictor_68_face_landmarks.dat')
        self.blend = blend
        self.box_map = dict(IDENTITY_BOX_MAP, **(box_map or {}))
        self.dlib_only_faces = 0            # faces found by the cascade where the mesh failed
        # turned faces: core/face/profile.py's predictor (face_profile_68.dat), weighted by face_hybrid.json
        self.profile = profile if blend is not None and blend.profile_weights is not None else None
        self.upright_min_deg = UPRIGHT_MIN_DEG
        self.switched_faces = 0             # mesh faces replaced by the keypoint path (_check_mesh_face)
        self.face_model = face_model        # the blend's yaw: the fitted folder's 3D mean face (None: shipped)

    def to68(self, mesh_xyz: np.ndarray) -> np.ndarray:
        return self.mesh.to68(mesh_xyz)

    def predict(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        return predict_on_box(self._predictor, rgb, box)

    def predict_on(self, rgb: np.ndarray, m68: np.ndarray) -> np.ndarray:
        """dlib's predictor on the box placed from the mesh's 68 points (:func:`dlib_on_mesh`)."""
        return dlib_on_mesh(self.predict, rgb, self.blend.ref_box, m68, self.upright_min_deg)

    def process(self, rgb: np.ndarray):
        from depthmarks_ros.core.face.backends import FaceResult, _bbox
        from depthmarks_ros.core.face.detection import box_from_detection, box_kind
        rgb = np.ascontiguousarray(rgb)
        out: List = self.mesh.process(rgb)
        if self.blend is not None:
            for r in out:
                self.blend_mesh_face(rgb, r)
            if self.mesh.all_views:         # independent images: a mesh fitted to the wrong face shape
                out = [self._check_mesh_face(rgb, r) for r in out]
        for det in self.mesh.unmeshed:      # the cascade found a face the mesh could not follow
            self.dlib_only_faces += 1
            b = self.blend
            p68 = None                      # mostly profiles: dlib's predictor fails
            if det.source == 'hog_pad':     # a face larger than the frame that HOG found: a frontal-ish one
                p68 = self.predict(rgb, box_from_detection(det.box, self.box_map['hog']))
                out.append(FaceResult(p68, p68.copy(), _bbox(p68), det.score, 'dlib68', source=det.source))
                continue
            kp = self._from_keypoints(rgb, det.box, det.keypoints, det.view_keypoints, per_view=True)
            if kp is not None:
                p68, cov = kp
            elif b is not None and b.box_template is not None:
                p68, cov = b.from_box(det.box, det.facing), b.template_covariance(det.box, det.facing)
            else:
                p68 = self.predict(rgb, box_from_detection(det.box, self.box_map[box_kind(det.source)]))
                out.append(FaceResult(p68, p68.copy(), _bbox(p68), det.score, 'dlib68', source=det.source))
                continue
            r = FaceResult(p68, p68.copy(), _bbox(p68), det.score, 'box68', source=det.source)
            r.alt68 = [cov]
            out.append(r)

        return out

    def blend_mesh_face(self, rgb: np.ndarray, r) -> None:
        """A mesh-followed face (``r.landmarks68``: the mesh's 68 points) in place: dlib's predictor on a box
        from them, blended; the turned-face predictor started on them where the face is turned."""
        h, w = rgb.shape[:2]
        m68 = r.landmarks68
        d68 = self.predict_on(rgb, m68)
        yaw = quick_yaw(m68, (w, h), self.face_model)
        r.landmarks68 = self.blend.blend(d68, m68, yaw)
        v = self.blend.profile_point_weights(yaw) if self.profile is not None else None
        if v is not None:           # a turned face: the turned-face predictor started on the mesh's points
            e68 = self.profile.predict_from(rgb, m68, yaw > 0)
            r.landmarks68 = v[:, None] * e68 + (1.0 - v[:, None]) * r.landmarks68
        r.alt68 = [d68, m68]
        r.pose68 = m68          # head pose: the mesh's points (a development check on 230 fit-split faces, uncommitted script: 3.84 vs 4.01 deg MAE with the blend)

    def _from_keypoints(self, rgb: np.ndarray, box: np.ndarray, keypoints, view_keypoints, per_view: bool = False):
        """(68 points, their (68, 2, 2) covariance) of a face from the detector keypoints: the mean
        regression of every view's keypoints, then the turned-face predictor started on it (where
        shipped; both directions, the result nearer the guess wins); ``per_view``: the predictor also
        started on each view's own regression in that direction, and the per-point median of all
        those results (fit split, the 60 AFLW faces without a mesh, each face's predictor trained
        without its fold: box-NME 0.106 -> 0.103; the mean of them 0.108; a development check); None
        without a keypoint map or keypoints (or where they collapsed)."""
        b = self.blend
        if b is None or b.kp_map is None or keypoints is None:
            return None
        p68 = b.from_views(box, keypoints, view_keypoints)
        if p68 is None:
            return None
        cov = b.kp_cov * max(box[2] - box[0], box[3] - box[1]) ** 2
        if self.profile is not None and b.profile_cov is not None:      # refined from that guess
            from depthmarks_ros.core.face.metrics import bbox_size
            p68 = refine_keypoint_guess(self.profile, b, rgb, box, p68, view_keypoints if per_view else None,
                                        b.profile_scale)
            cov = b.profile_cov * bbox_size(p68) ** 2
        return p68, cov

    def _check_mesh_face(self, rgb: np.ndarray, r):
        """A mesh-followed face on an independent image, checked against the detector's keypoints of the
        same face (every view of FaceDetector.detect_all): where the keypoint path's 68 points
        (:meth:`_from_keypoints`) disagree with the hybrid's by MESH_SWITCH_DIS outer-eye distances or
        more, the mesh has been fitted to the wrong shape (a frontal mesh on a near-profile) and the
        keypoint path's points replace it (layout box68, its covariance)."""
        from depthmarks_ros.core.face.backends import FaceResult, _bbox
        from depthmarks_ros.core.face.detection import same_face
        f = same_face(r.bbox, [f for f in self.mesh.last_faces if f.view_keypoints])
        kp = self._from_keypoints(rgb, f.box, f.keypoints, f.view_keypoints) if f is not None else None
        if kp is None or disagreement(r.landmarks68, kp[0]) < MESH_SWITCH_DIS:
            return r
        self.switched_faces += 1
        out = FaceResult(kp[0], kp[0].copy(), _bbox(kp[0]), r.score, 'box68')
        out.alt68 = [kp[1]]
        return out

    def close(self) -> None:
        self.mesh.close()
