"""68 points of turned faces (ROS-free): a dlib shape predictor (ensemble of regression trees)
trained on the turned faces of AFLW2000-3D's fit split, for the hybrid backend.

MediaPipe's mesh and dlib's 68-point predictor are both weak on faces turned beyond ~45 deg of yaw
(the mesh's landmark model drops most near-profiles; dlib's predictor was trained on 300-W's mostly
frontal faces). This predictor is trained only on turned faces (|yaw| >= 35 deg), every one mirrored
so that it looks towards image-right (its turned-away side on the left), on boxes placed from the
68 points themselves (:func:`box_of`: centred on their mean, side 1.2 sqrt(w h)) with random
shifts, scalings and in-plane rotations, so that it starts from any rough estimate of the face:
the mesh's 68 points, or the detector keypoints' regression for a face the mesh cannot follow.
``depthmarks fit-face --parts profile`` writes ``data/face_profile_68.dat`` (+ ``.json``: split
rule, command, options and sizes).
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

from depthmarks_ros.core.face.backends import dlib_rect, predict_on_box
from depthmarks_ros.core.face.ibug68 import mirror_68
from depthmarks_ros.core.face.metrics import bbox_size

BOX_SIDE = 1.2          # box side in units of the points' sqrt(w h)


_size = bbox_size      # the points' sqrt(w h): the predictor's box unit (metrics.bbox_size, the box-NME normaliser)


def box_of(points68: np.ndarray, centre=None, size: Optional[float] = None) -> np.ndarray:
    """Square box (x0, y0, x1, y1) of the predictor's convention around 68 points (or a centre and
    size in the same units)."""
    c = np.asarray(points68, float).mean(axis=0) if centre is None else np.asarray(centre, float)
    s = _size(np.asarray(points68, float)) if size is None else float(size)
    return np.r_[c - s * BOX_SIDE / 2, c + s * BOX_SIDE / 2]


def up_angle(points68: np.ndarray) -> float:
    """In-plane angle (deg) of the chin -> nose-root direction from image-up, positive when the top of
    the face leans towards image-right: the roll an upright predictor (``upright`` training) removes."""
    v = np.asarray(points68, float)[27] - np.asarray(points68, float)[8]
    return float(np.degrees(np.arctan2(v[0], -v[1])))


def _upright(points: np.ndarray, angle: float):
    """2x3 affine rotating the image by ``angle`` deg (cv2's sense) about the points' mean."""
    import cv2
    c = np.asarray(points, float).mean(axis=0)
    return cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(angle), 1.0)


class ProfilePredictor:
    """``predict(rgb, box, turned_left)``: the 68 points in image pixels; ``turned_left``: the face
    looks towards image-left (yaw > 0 in the AFLW convention), then the image is mirrored for the
    predictor and the points mirrored back."""

    def __init__(self, predictor, meta: Optional[dict] = None):
        self._sp = predictor
        self.meta = meta or {}

    @classmethod
    def load(cls, path: str) -> 'ProfilePredictor':
        import dlib
        try:
            sp = dlib.shape_predictor(path)
        except RuntimeError as exc:
            raise ValueError(f'{path}: not a dlib shape predictor ({exc}); refit with depthmarks fit-face '
                             '--parts profile') from exc
        n = sp(np.zeros((8, 8, 3), np.uint8), dlib.rectangle(0, 0, 7, 7)).num_parts
        if n != 68:
            raise ValueError(f'{path}: a {n}-point predictor, not 68; refit with depthmarks fit-face')
        meta = {}
        side = os.path.splitext(path)[0] + '.json'
        if os.path.isfile(side):
            try:
                with open(side) as f:
                    meta = json.load(f)
            except (OSError, ValueError) as exc:
                raise ValueError(f'{side}: unreadable ({exc}); refit with depthmarks fit-face') from exc
        return cls(sp, meta)

    def save(self, path: str) -> None:
        self._sp.save(path)
        with open(os.path.splitext(path)[0] + '.json', 'w') as f:
            json.dump(self.meta, f, indent=1)

    def predict(self, rgb: np.ndarray, box: np.ndarray, turned_left: bool) -> np.ndarray:
        box = np.asarray(box, np.float64)
        side = box[2] - box[0]
        h, w = rgb.shape[:2]        # the predictor reads pixels near the box only: a crop of 3 box sides
        x0, y0 = int(np.clip(box[0] - side, 0, w - 1)), int(np.clip(box[1] - side, 0, h - 1))
        x1, y1 = int(np.clip(box[2] + side + 1, x0 + 1, w)), int(np.clip(box[3] + side + 1, y0 + 1, h))
        img = rgb[y0:y1, x0:x1]
        b = box - [x0, y0, x0, y0]
        if turned_left:
            img = img[:, ::-1]
            b = np.array([img.shape[1] - 1 - b[2], b[1], img.shape[1] - 1 - b[0], b[3]])
        p = predict_on_box(self._sp, np.ascontiguousarray(img), b)
        return (mirror_68(p, img.shape[1]) if turned_left else p) + [x0, y0]

    @property
    def upright(self) -> bool:
        return bool(self.meta.get('options', {}).get('upright', False))

    def predict_from(self, rgb: np.ndarray, guess68: np.ndarray, turned_left: bool, size_scale: float = 1.0,
                     ) -> np.ndarray:
        """The 68 points started from a rough estimate of them (box :func:`box_of` the guess, its size
        times ``size_scale``); an ``upright`` predictor sees the crop turned so that the guess's
        :func:`up_angle` is 0 (its training convention) and its points are turned back."""
        guess68 = np.asarray(guess68, np.float64)
        if not self.upright:
            return self.predict(rgb, box_of(guess68, size=_size(guess68) * size_scale), turned_left)
        import cv2
        box = box_of(guess68, size=_size(guess68) * size_scale)
        side = box[2] - box[0]
        h, w = rgb.shape[:2]      # a crop of 4 box sides about the guess: room for the turn
        c = guess68.mean(axis=0)
        x0, y0 = int(np.clip(c[0] - 2 * side, 0, w - 1)), int(np.clip(c[1] - 2 * side, 0, h - 1))
        x1, y1 = int(np.clip(c[0] + 2 * side + 1, x0 + 1, w)), int(np.clip(c[1] + 2 * side + 1, y0 + 1, h))
        img, g = rgb[y0:y1, x0:x1], guess68 - [x0, y0]
        if turned_left:
            img, g = img[:, ::-1], mirror_68(g, img.shape[1])
        M = _upright(g, up_angle(g))
        img = cv2.warpAffine(np.ascontiguousarray(img), M, img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        gr = g @ M[:, :2].T + M[:, 2]
        p = predict_on_box(self._sp, img, box_of(gr, size=_size(gr) * size_scale))
        Mi = cv2.invertAffineTransform(M)
        p = p @ Mi[:, :2].T + Mi[:, 2]
        return (mirror_68(p, img.shape[1]) if turned_left else p) + [x0, y0]

    def predict_like(self, rgb: np.ndarray, guess68: np.ndarray, size_scale: float = 1.0) -> np.ndarray:
        """Both orientations on the box of a rough guess; the one nearer the guess (for a face whose
        direction is not known, e.g. from the detector keypoints' regression)."""
        a, b = (self.predict_from(rgb, guess68, left, size_scale) for left in (False, True))
        da, db = (np.linalg.norm(p - guess68, axis=1).mean() for p in (a, b))
        return a if da <= db else b


def train_profile_predictor(images: Sequence[np.ndarray], points68: Sequence[np.ndarray],
                            turned_left: Sequence[bool], copies: int = 4, centre_jitter: float = 0.08,
                            scale_jitter: float = 0.15, rotation_deg: float = 25.0, trees: int = 80,
                            tree_depth: int = 3, cascade_depth: int = 10, seed: int = 0, threads: int = 1,
                            meta: Optional[dict] = None, upright: bool = False) -> ProfilePredictor:
    """Train on faces mirrored to look towards image-right; each face ``copies`` times: as it is on
    its own box, then rotated by up to +-``rotation_deg`` about its centre on a box shifted by
    N(0, centre_jitter) and scaled by exp(N(0, scale_jitter)) (in units of its size). ``upright``: each
    face first turned so that its :func:`up_angle` is 0 (then :meth:`ProfilePredictor.predict_from`
    turns a guess the same way)."""
    import cv2
    import dlib
    rng = np.random.default_rng(seed)
    imgs, objs = [], []
    for rgb, p, left in zip(images, points68, turned_left):
        rgb, p = np.ascontiguousarray(rgb), np.asarray(p, np.float64)
        if left:
            rgb, p = np.ascontiguousarray(rgb[:, ::-1]), mirror_68(p, rgb.shape[1])
        for j in range(copies):
            img, q = rgb, p
            angle = (up_angle(p) if upright else 0.0) + \
                (float(rng.uniform(-rotation_deg, rotation_deg)) if j and rotation_deg else 0.0)
            if angle:
                M = _upright(p, angle)
                img = cv2.warpAffine(rgb, M, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
                q = p @ M[:, :2].T + M[:, 2]
            n = _size(q)
            c = q.mean(axis=0) + (rng.normal(0, centre_jitter, 2) * n if j else 0.0)
            box = box_of(q, c, n * (np.exp(rng.normal(0, scale_jitter)) if j else 1.0))
            x0, y0 = (int(max(v, 0)) for v in box[:2] - (box[2] - box[0]))      # a crop of 3 box sides:
            x1, y1 = (int(v) for v in box[2:] + (box[2] - box[0]))               # less memory, same pixels
            img = np.ascontiguousarray(img[y0:y1, x0:x1])
            q, box = q - [x0, y0], box - [x0, y0, x0, y0]
            imgs.append(img)
            objs.append([dlib.full_object_detection(dlib_rect(box), [dlib.point(int(round(x)), int(round(y)))
                                                                        for x, y in q])])
    opt = dlib.shape_predictor_training_options()
    opt.cascade_depth, opt.num_trees_per_cascade_level, opt.tree_depth = cascade_depth, trees, tree_depth
    opt.oversampling_amount, opt.num_threads, opt.nu, opt.feature_pool_size = max(4, 20 // copies), threads, 0.1, 400
    opt.random_seed = str(seed)
    options = dict(copies=copies, centre_jitter=centre_jitter, scale_jitter=scale_jitter, rotation_deg=rotation_deg,
                   trees=trees, tree_depth=tree_depth, cascade_depth=cascade_depth, seed=seed,
                   box_side=BOX_SIDE, upright=upright)
    return ProfilePredictor(dlib.train_shape_predictor(imgs, objs, opt),
                            dict(meta or {}, options=options, faces=len(imgs) // max(copies, 1)))
