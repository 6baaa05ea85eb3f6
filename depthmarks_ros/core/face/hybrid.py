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

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from depthmarks_ros.core.face.ibug68 import FLIP_68, LEFT_EYE_OUTER, RIGHT_EYE_OUTER

INNER = np.arange(17, 68)          # brows, nose, eyes, mouth: stable under yaw (the jaw is not)


def similarity(src: np.ndarray, dst: np.ndarray):
    from depthmarks_ros.core.face.mapping import _similarity
    return _similarity(src, dst)


def box_from_landmarks(ref_box: np.ndarray, pts68: np.ndarray) -> np.ndarray:
    """Square box (x0, y0, x1, y1) in the convention of ``ref_box`` (the 68 points' mean position in
    unit-box coordinates) placed by a similarity of the inner points."""
    s, R, t = similarity(ref_box[INNER], pts68[INNER])
    c = s * R @ np.array([0.5, 0.5]) + t
    return np.array([c[0] - s / 2, c[1] - s / 2, c[0] + s / 2, c[1] + s / 2])


def disagreement(a68: np.ndarray, b68: np.ndarray) -> float:
    """Mean distance of the inner points of two 68-point sets, in outer-eye distances of ``a68``."""
    iod = max(float(np.linalg.norm(a68[LEFT_EYE_OUTER] - a68[RIGHT_EYE_OUTER])), 1.0)
    return float(np.linalg.norm(a68[INNER] - b68[INNER], axis=1).mean() / iod)


def quick_yaw(pts68: np.ndarray, size) -> float:
    """Yaw (deg) of a plain PnP solve with a generic camera (f = the larger image side)."""
    from depthmarks_ros.core.face.head_pose import solve_head_pose
    w, h = size
    f = float(max(w, h))
    hp = solve_head_pose(pts68, np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]]))
    return float(hp.yaw) if hp is not None else 0.0


@dataclass
class HybridBlend:
    ref_box: np.ndarray                 # (68, 2) dlib's points in unit-box coordinates of its HOG box
    yaw_edges: np.ndarray               # (ny + 1,) deg
    dis_edges: np.ndarray               # (nd + 1,) outer-eye distances
    weights: np.ndarray                 # (ny * nd, 68) weight of dlib's point at yaw >= 0 (mirrored below 0)
    meta: Dict = field(default_factory=dict)

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
        return {'ref_box': self.ref_box.round(5).tolist(), 'yaw_edges': self.yaw_edges.tolist(),
                'dis_edges': self.dis_edges.tolist(), 'weights': self.weights.round(4).tolist(), 'meta': self.meta}

    def save(self, path: str) -> None:
        with open(path, 'w') as f:
            json.dump(self.to_json(), f)

    @classmethod
    def load(cls, path: str) -> 'HybridBlend':
        try:
            with open(path) as f:
                d = json.load(f)
            out = cls(np.array(d['ref_box'], float), np.array(d['yaw_edges'], float), np.array(d['dis_edges'], float),
                      np.array(d['weights'], float), d.get('meta', {}))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f'{path}: not a hybrid blend file ({exc}); refit with depthmarks fit-face') from exc
        nb = (len(out.yaw_edges) - 1) * (len(out.dis_edges) - 1)
        if out.ref_box.shape != (68, 2) or out.weights.shape != (nb, 68) or nb < 1 \
                or not all(np.all(np.isfinite(v)) for v in (out.ref_box, out.weights)):
            raise ValueError(f'{path}: hybrid blend file has the wrong shapes or non-finite values')
        return out

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


class HybridFace68:
    """MediaPipe mesh (+ learned 68 map) and dlib's predictor on a box from it, blended (module doc).
    Without a fitted blend (``blend=None``) it is the mesh's 68 points alone."""
    name = 'hybrid'

    def __init__(self, max_faces: int = 4, refine: bool = False, static: bool = False, mapping=None,
                 blend: Optional[HybridBlend] = None, box_map=None):
        import dlib
        from depthmarks_ros.core.face.backends import MediaPipeFaceMesh, dlib_model_path
        from depthmarks_ros.core.face.detection import IDENTITY_BOX_MAP
        self.mesh = MediaPipeFaceMesh(max_faces, refine, static, mapping=mapping, fallback_detector=True)
        self.layout = self.mesh.layout
        self.mapping = mapping
        self._predictor = dlib.shape_predictor(dlib_model_path('shape_predictor_68_face_landmarks.dat'))
        self._dlib = dlib
        self.blend = blend
        self.box_map = dict(IDENTITY_BOX_MAP, **(box_map or {}))
        self.dlib_only_faces = 0            # faces found by the cascade where the mesh failed

    def to68(self, mesh_xyz: np.ndarray) -> np.ndarray:
        return self.mesh.to68(mesh_xyz)

    def predict(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        return np.array([(p.x, p.y) for p in self._predictor(rgb, rect).parts()], np.float64)

    def process(self, rgb: np.ndarray):
        from depthmarks_ros.core.face.backends import FaceResult, _bbox
        from depthmarks_ros.core.face.detection import box_from_detection, box_kind
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        out: List = self.mesh.process(rgb)
        if self.blend is not None:
            for r in out:
                m68 = r.landmarks68
                d68 = self.predict(rgb, box_from_landmarks(self.blend.ref_box, m68))
                r.landmarks68 = self.blend.blend(d68, m68, quick_yaw(m68, (w, h)))
                r.alt68 = [d68, m68]
        for det in self.mesh.unmeshed:      # the cascade found a face the mesh could not follow
            d68 = self.predict(rgb, box_from_detection(det.box, self.box_map[box_kind(det.source)]))
            self.dlib_only_faces += 1
            out.append(FaceResult(d68, d68.copy(), _bbox(d68), det.score, 'dlib68'))
        return out

    def close(self) -> None:
        self.mesh.close()
