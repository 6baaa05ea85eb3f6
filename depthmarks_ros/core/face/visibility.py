"""Landmark self-occlusion: labels from AFLW2000-3D's 3D landmarks and a per-landmark visibility
model of the head's yaw and pitch (ROS-free).

Labels (:func:`self_occlusion`): the 68 points are joined by a fixed triangulation (Delaunay of the
frontal mean face, so the topology does not follow the projection); landmark i is hidden when,
at its image position, a triangle that does not contain it lies nearer the camera by more than
``tol`` of the face size. At large yaw this marks the far jaw, brow and eye corners (AFLW2000-3D
still gives their projected positions: a natural visibility label, as LUVLi uses).

Model (:class:`VisibilityModel`): P(visible_i) = sigmoid(b_i . (1, yaw/90, |yaw|/90, pitch/90)),
fitted per landmark by logistic regression on the fit split (``depthmarks fit-face --parts
visibility``, ``data/face_visibility.json``); the published visibility is that probability times
the inside-the-image ramp.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from depthmarks_ros.core.face.artefacts import load_json, save_json
from depthmarks_ros.core.face.metrics import bbox_size

_TRI = None


def triangulation(model: Optional[np.ndarray] = None) -> np.ndarray:
    """(T, 3) landmark indices: Delaunay of the frontal 3D mean face's x, y (``model``: a fitted folder's,
    head_pose.face_model_68(DIR); None = the shipped one, computed once)."""
    global _TRI
    from scipy.spatial import Delaunay
    if model is not None:
        return Delaunay(np.asarray(model)[:, :2]).simplices.astype(np.int64)
    if _TRI is None:
        from depthmarks_ros.core.face.head_pose import face_model_68
        _TRI = Delaunay(face_model_68()[:, :2]).simplices.astype(np.int64)
    return _TRI


def self_occlusion(points3d: np.ndarray, tol: float = 0.02, tri: Optional[np.ndarray] = None) -> np.ndarray:
    """(68,) bool, True where the landmark is hidden by the face itself. points3d (68, 3): x, y image
    px, z px away from the camera (datasets.FaceSample.points3d); ``tri`` the triangulation
    (:func:`triangulation` of the fitted folder's mean face; None = the shipped one's)."""
    p = np.asarray(points3d, np.float64)
    size = bbox_size(p)      # > 0; a flat face (zero box) has no triangle in front of a point anyway
    tri = triangulation() if tri is None else tri
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    v0, v1 = b[:, :2] - a[:, :2], c[:, :2] - a[:, :2]
    den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    ok = np.abs(den) > 1e-9
    hidden = np.zeros(len(p), bool)
    for i in range(len(p)):
        d = p[i, :2] - a[:, :2]
        with np.errstate(divide='ignore', invalid='ignore'):
            u = (d[:, 0] * v1[:, 1] - d[:, 1] * v1[:, 0]) / den
            v = (v0[:, 0] * d[:, 1] - v0[:, 1] * d[:, 0]) / den
        inside = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & np.all(tri != i, axis=1)
        if not inside.any():
            continue
        z = a[inside, 2] + u[inside] * (b[inside, 2] - a[inside, 2]) + v[inside] * (c[inside, 2] - a[inside, 2])
        hidden[i] = bool(np.any(z < p[i, 2] - tol * size))
    return hidden


def _design(yaw, pitch) -> np.ndarray:
    y, pt = np.atleast_1d(np.asarray(yaw, float)) / 90.0, np.atleast_1d(np.asarray(pitch, float)) / 90.0
    return np.column_stack([np.ones_like(y), y, np.abs(y), pt])


@dataclass
class VisibilityModel:
    b: np.ndarray                        # (68, 4)
    meta: Dict = field(default_factory=dict)

    def predict(self, yaw: float, pitch: float) -> np.ndarray:
        """(68,) probability that each landmark is not hidden by the face itself."""
        z = self.b @ _design(yaw, pitch)[0]
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    @classmethod
    def fit(cls, yaws, pitches, hidden, l2: float = 1e-2, meta: Optional[dict] = None) -> 'VisibilityModel':
        """Per landmark, L2-regularised logistic regression (Newton steps) of visible = ~hidden."""
        X = _design(yaws, pitches)
        Y = ~np.asarray(hidden, bool)                       # (F, 68)
        B = np.zeros((Y.shape[1], X.shape[1]))
        for i in range(Y.shape[1]):
            b = np.zeros(X.shape[1])
            y = Y[:, i].astype(float)
            for _ in range(50):
                p = 1.0 / (1.0 + np.exp(-np.clip(X @ b, -30, 30)))
                g = X.T @ (p - y) + l2 * len(y) * b
                H = (X * (p * (1 - p))[:, None]).T @ X + l2 * len(y) * np.eye(X.shape[1])
                step = np.linalg.solve(H, g)
                b -= step
                if np.abs(step).max() < 1e-8:
                    break
            B[i] = b
        return cls(B, dict(meta or {}))

    def save(self, path: str) -> None:
        save_json(path, {'features': ['1', 'yaw/90', '|yaw|/90', 'pitch/90'], 'b': self.b.round(5).tolist(),
                         'meta': self.meta})

    @classmethod
    def load(cls, path: str) -> 'VisibilityModel':
        m = load_json(path, 'visibility model', lambda d: cls(np.array(d['b'], float), d.get('meta', {})))
        if m.b.shape != (68, 4) or not np.all(np.isfinite(m.b)):
            raise ValueError(f'{path}: visibility model has the wrong shape or non-finite values')
        return m
