"""MediaPipe Face Mesh (478 points with z) -> iBUG-68 by a learned linear map (ROS-free).

Each mesh is aligned to a reference mesh by a 2D similarity (Procrustes on x, y); the aligned x, y
and the relative depth z (same scale) of every vertex feed a ridge regression to the 68 aligned
iBUG points, which are mapped back with the inverse similarity. The map is fitted by
``depthmarks fit-face`` on the fit split of AFLW2000-3D and 300-W (``data/face_mesh_to_68.npz``
records split, rule and command); without it the fixed vertex choice of ``ibug68.py`` is used.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence, Tuple

import numpy as np


def similarity(src: np.ndarray, dst: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """s, R (2x2 rotation, never a reflection), t with dst ~ s R src + t (least squares over the points;
    Umeyama's 2D Procrustes): the one similarity fit of the face code (the mesh map, the hybrid's box and
    keypoint map, the face studies)."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    R = u @ d @ vt
    s = float(np.trace(np.diag(sv) @ d) / max((a ** 2).sum(), 1e-12))
    return s, R, md - s * R @ ms


def align(points: np.ndarray, ref: np.ndarray):
    """(``points`` moved by their :func:`similarity` onto ``ref``, (s, R, t)): :func:`unalign` with the
    same (s, R, t) moves points of that frame back."""
    s, R, t = similarity(points, ref)
    return points @ (s * R).T + t, (s, R, t)


def unalign(points: np.ndarray, transform) -> np.ndarray:
    """The inverse of the similarity ``transform`` (s, R, t) that :func:`align` applied."""
    s, R, t = transform
    return (points - t) @ R / s


def mean_shape(shapes, ref: np.ndarray, iterations: int = 3, unit_rms: bool = True) -> np.ndarray:
    """Generalised Procrustes: ``iterations`` times, ``ref`` <- the mean of ``shapes`` (each (N, 2)) each
    aligned onto ``ref`` (:func:`align`), then (``unit_rms``) centred and scaled to unit RMS radius."""
    for _ in range(iterations):
        ref = np.mean([align(x, ref)[0] for x in shapes], axis=0)
        if unit_rms:
            ref = ref - ref.mean(axis=0)
            ref = ref / np.sqrt((ref ** 2).sum(axis=1).mean())
    return ref


class MeshTo68:
    def __init__(self, ref: np.ndarray, W: np.ndarray, x_mean: np.ndarray, y_mean: np.ndarray, meta: Optional[dict] = None):
        self.ref, self.W, self.x_mean, self.y_mean = ref, W, x_mean, y_mean
        self.meta = meta or {}
        self.n_vertices = len(ref)

    @classmethod
    def _features(cls, ref: np.ndarray, mesh: np.ndarray):
        aligned, (s, R, t) = align(mesh[:, :2], ref)
        z = (mesh[:, 2] - mesh[:, 2].mean()) * s if mesh.shape[1] > 2 else np.zeros(len(mesh))
        return np.concatenate([aligned.ravel(), z]), (s, R, t)

    def apply(self, mesh: np.ndarray) -> np.ndarray:
        """(N, 3) or (N, 2) mesh px (N = the fitted vertex count) -> (68, 2) px."""
        mesh = np.asarray(mesh, np.float64)[:self.n_vertices]
        x, (s, R, t) = self._features(self.ref, mesh)
        y = ((x - self.x_mean) @ self.W + self.y_mean).reshape(68, 2)
        return unalign(y, (s, R, t))

    @classmethod
    def fit(cls, meshes: Sequence[np.ndarray], targets68: Sequence[np.ndarray], ridge: float = 1e-2,
            weights: Optional[Sequence[float]] = None, meta: Optional[dict] = None) -> 'MeshTo68':
        meshes = [np.asarray(m, np.float64) for m in meshes]
        n = min(len(m) for m in meshes)
        meshes = [m[:n] for m in meshes]
        ref = mean_shape([m[:, :2] for m in meshes], meshes[0][:, :2] - meshes[0][:, :2].mean(axis=0))
        X, Y = [], []
        for m, y in zip(meshes, targets68):
            x, (s, R, t) = cls._features(ref, m)
            X.append(x)
            Y.append((np.asarray(y, np.float64) @ (s * R).T + t).ravel())
        X, Y = np.array(X), np.array(Y)
        w = np.ones(len(X)) if weights is None else np.asarray(weights, np.float64)
        w = w / w.mean()
        xm, ym = (w[:, None] * X).sum(0) / w.sum(), (w[:, None] * Y).sum(0) / w.sum()
        Xc, Yc = X - xm, Y - ym
        A = (Xc * w[:, None]).T @ Xc
        lam = ridge * np.trace(A) / A.shape[0]
        W = np.linalg.solve(A + lam * np.eye(A.shape[0]), (Xc * w[:, None]).T @ Yc)
        return cls(ref, W, xm, ym, meta)

    def save(self, path: str) -> None:
        np.savez_compressed(path, ref=self.ref.astype(np.float32), W=self.W.astype(np.float32),
                            x_mean=self.x_mean.astype(np.float32), y_mean=self.y_mean.astype(np.float32),
                            meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str) -> 'MeshTo68':
        try:
            with np.load(path, allow_pickle=False) as z:
                out = cls(z['ref'].astype(np.float64), z['W'].astype(np.float64), z['x_mean'].astype(np.float64),
                          z['y_mean'].astype(np.float64), json.loads(str(z['meta'])))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f'{path}: not a mesh -> 68 mapping file ({exc}); refit with depthmarks fit-face') from exc
        if out.W.shape != (3 * len(out.ref), 136) or not np.all(np.isfinite(out.W)):
            raise ValueError(f'{path}: mapping has the wrong shape {out.W.shape}; refit with depthmarks fit-face')
        return out
