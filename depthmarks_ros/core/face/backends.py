"""Face landmark backends behind one interface (ROS-free).

* :class:`MediaPipeFaceMesh`: the legacy ``mediapipe.solutions.face_mesh`` (models inside the
  wheel): 468 points, or 478 with iris refinement; z is relative depth (image-width units).
* :class:`DlibFace68`: dlib's HOG (or MMOD CNN) detector + the 68-point shape predictor shipped by
  the ``face-recognition-models`` package (located with importlib, without importing it).

Both return :class:`FaceResult` with the native landmarks and the iBUG-68 layout.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from depthmarks_ros.core.face.ibug68 import MEDIAPIPE_TO_IBUG68
from depthmarks_ros.core.face.pose_head import seen_from_behind


class BackendError(RuntimeError):
    """A backend cannot be created (missing model file or package); the message says which."""


@dataclass
class FaceResult:
    landmarks: np.ndarray        # (N, 2) px, native layout
    landmarks68: np.ndarray      # (68, 2) px, iBUG layout
    bbox: np.ndarray             # x0, y0, x1, y1 px
    score: float
    layout: str                  # 'mediapipe468' | 'mediapipe478' | 'dlib68'
    z: Optional[np.ndarray] = None  # (N,) relative depth (MediaPipe), px units
    tta: list = field(default_factory=list)   # (N, 3) meshes of the augmented passes (pipeline)
    alt68: list = field(default_factory=list)  # other (68, 2) estimates of the same face (hybrid: dlib, mesh)
    pose68: Optional[np.ndarray] = None         # (68, 2) points for head pose where not landmarks68 (hybrid: the mesh's)
    source: str = ''             # the detection ``score`` is from (core/face/detection.py Detection.source;
                                 # dlib's own detectors 'hog' / 'mmod'); '' where the score is no detector's


def _bbox(points: np.ndarray) -> np.ndarray:
    return np.array([points[:, 0].min(), points[:, 1].min(), points[:, 0].max(), points[:, 1].max()])


def _covers(box: np.ndarray, xy) -> bool:
    return bool(box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3])


# a face no mesh follows is kept only where neighbouring pixels in its box correlate like a photograph's
# (issue 18: on a random-noise image the short-range detector found a face, kept by the keypoint path:
# 0.01 there); on the fit split every detection that reaches the mesh step (135 boxes, AFLW2000-3D and
# 300-W) has >= 0.85, the hands, fist and cloth boxes found on images without a face 0.80-0.98
# (benchmarks/study_face_nofaces.py): a check against noise, not against face-like objects
MIN_NEIGHBOUR_CORRELATION = 0.5


def neighbour_correlation(rgb: np.ndarray, box: np.ndarray, max_lines: int = 256) -> float:
    """Correlation of horizontally neighbouring grey values inside ``box`` (clipped to the image): ~0.9
    and more in photographs, ~0 in noise; 1.0 where the box is flat, nearly empty or not finite (NaN pixels of a float image
    are left out).
    ``rgb``: (H, W), (H, W, 1) or (H, W, C) of any number type. Large boxes are sampled: at most
    ``max_lines`` rows, and pairs (x, x + 1) at most ``max_lines`` per row (a box of up to that many
    px a side is used whole), so the cost stays about that of a 256 px box whatever the box's size."""
    h, w = rgb.shape[:2]
    box = np.asarray(box, np.float64)
    if box.shape[0] < 4 or not np.all(np.isfinite(box[:4])):
        return 1.0
    x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
    x1, y1 = int(min(w, box[2])), int(min(h, box[3]))
    if x1 - x0 < 3 or y1 - y0 < 2:
        return 1.0
    sr = -(-(y1 - y0) // max_lines)
    sc = -(-(x1 - x0 - 1) // max_lines)
    rows = rgb[y0:y1:sr]
    a = rows[:, x0:x1 - 1:sc].astype(np.float64)
    b = rows[:, x0 + 1:x1:sc].astype(np.float64)
    if a.ndim == 3:
        a, b = a.mean(axis=2), b.mean(axis=2)
    a, b = a.ravel(), b.ravel()
    keep = np.isfinite(a) & np.isfinite(b)      # a float image's NaN pixels are no evidence either way
    a, b = a[keep], b[keep]
    if a.size < 2:
        return 1.0
    sa, sb = a.std(), b.std()
    if sa < 1e-6 or sb < 1e-6:
        return 1.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def upright_crop(rgb: np.ndarray, centre, angle: float, size: float, side: int):
    """(crop, A): the square of ``size`` px about ``centre`` in ``side`` x ``side`` px, turned by ``angle``
    (deg, cv2 sense: a face upright in the image rotated so is upright in the crop); A (2x3) maps crop px
    to image px."""
    import cv2
    s = size / side
    a = np.radians(angle)
    R = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]).T      # rotated view -> image
    A = np.column_stack([s * R, np.array([centre[0], centre[1]]) - s * R @ [side / 2, side / 2]])
    crop = cv2.warpAffine(rgb, A, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT)
    return crop, A


class MediaPipeFaceMesh:
    name = 'mediapipe'

    def __init__(self, max_faces: int = 4, refine: bool = False, static: bool = False,
                 min_detection_confidence: float = 0.5, mapping=None, fallback_detector: bool = False,
                 all_views: bool = True, mmod: bool = True):
        try:
            from depthmarks_ros.core.mediapipe_env import import_mediapipe
            mp = import_mediapipe()
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static, max_num_faces=max_faces, refine_landmarks=refine,
                min_detection_confidence=min_detection_confidence, min_tracking_confidence=0.5)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f'MediaPipe Face Mesh is not available ({exc}); it needs mediapipe==0.10.21 '
                               '(the legacy solutions API)') from exc
        self.layout = 'mediapipe478' if refine else 'mediapipe468'
        self.mapping = mapping          # MeshTo68 (learned) or None (the fixed vertex choice)
        self._crop_mesh = self._detector = None
        if fallback_detector:           # faces the mesh's own detector misses: detector cascade + crop
            from depthmarks_ros.core.face.detection import FaceDetector
            self._detector = FaceDetector(fallback_hog=static, full=static, max_faces=max_faces,
                                          fallback_mmod=static and mmod)
            self._crop_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=refine,
                min_detection_confidence=0.3)
        self.all_views = bool(all_views and static and fallback_detector)
        self.crop_runs = 0
        self.unmeshed = []              # detections of the last frame where the crop mesh found no face
        self.max_faces = max_faces

    @property
    def last_faces(self) -> list:
        """The detector's faces of the last independent image (every view; FaceDetector.detect_all), those
        the mesh follows included; empty where it did not run."""
        return self._detector.last_faces if self._detector is not None else []

    def to68(self, mesh_xyz: np.ndarray) -> np.ndarray:
        if self.mapping is not None and len(mesh_xyz) >= self.mapping.n_vertices:
            return self.mapping.apply(mesh_xyz)
        return mesh_xyz[MEDIAPIPE_TO_IBUG68, :2]

    def _result(self, arr: np.ndarray, score: float = 1.0) -> FaceResult:
        pts = arr[:, :2]
        return FaceResult(pts, self.to68(arr), _bbox(pts), score, self.layout, arr[:, 2])

    @staticmethod
    def _landmarks(res, w, h, x0=0.0, y0=0.0, scale=1.0):
        return [np.array([(p.x * w * scale + x0, p.y * h * scale + y0, p.z * w * scale) for p in lm.landmark],
                         np.float64) for lm in res.multi_face_landmarks or []]

    def process(self, rgb: np.ndarray) -> List[FaceResult]:
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        out = [self._result(a) for a in self._landmarks(self._mesh.process(rgb), w, h)]
        self.unmeshed = []
        if self._detector is not None:
            self._detector.last_faces = []
        dets = []
        if self._detector is not None and not out:
            dets = self._detector.detect(rgb, mmod=not self.all_views)    # all views: MMOD (1-3 s) after them
        elif self._detector is not None and self._detector.full and len(out) < self.max_faces:
            # independent images: the mesh's landmark model drops a face it cannot follow (mostly turned
            # ones) even where its detector found it, so a turned face beside a frontal one was lost;
            # the short-range detector once more (~2-4 ms) and every face whose box centre no mesh covers
            dets = [d for d in self._detector.detect_first(rgb)
                    if not any(_covers(r.bbox, (d.box[:2] + d.box[2:]) / 2) for r in out)]
        if self.all_views and len(out) + len(dets) < self.max_faces:
            # independent images: the other views too (a face that only a padded or rotated view finds
            # beside one an earlier view found); a face the crop mesh cannot follow is kept only where
            # two views found it (one view alone: often hair, a hand, a flower)
            # (every candidate, not the first max_faces: a single-view one dropped below must not take
            # the place of a two-view face)
            dets = dets + self._detector.detect_all(rgb, [r.bbox for r in out] + [d.box for d in dets],
                                                    reuse=True, limit=None)
            from depthmarks_ros.core.face.detection import same_face
            for d in dets:      # a face the cascade found before: the keypoints of every view that found it
                if d.view_keypoints is None:
                    f = same_face(d.box, self._detector.last_faces)
                    d.view_keypoints = f.view_keypoints if f is not None else None
        self._mesh_dets(rgb, dets, out)
        if self.all_views and not out and not self.unmeshed:    # no view found a face: the last resort
            self._mesh_dets(rgb, self._detector.detect_mmod(rgb), out)
        if self.all_views and not out and not self.unmeshed:    # nor MMOD: a face larger than the frame
            self._mesh_dets(rgb, self._detector.detect_oversized(rgb), out)
        if self.all_views and not out and not self.unmeshed:    # nor that: a head from the body pose
            self._mesh_dets(rgb, self._detector.detect_pose_head(rgb), out)    # (seen from behind, profile)
        return out

    def _mesh_dets(self, rgb: np.ndarray, dets, out: List[FaceResult]) -> None:
        """A crop mesh on each detection until max_faces: appended to ``out`` unless its box centre lies
        in a face already there (the same face again); without a mesh, to ``unmeshed`` unless a single
        detect_all view found it or (independent images) its box looks like noise (neighbour_correlation)."""
        for det in dets:
            if len(out) + len(self.unmeshed) >= self.max_faces:
                break
            # no mesh on a head seen from behind (it would follow the hair): the keypoint path's points
            arr = None if seen_from_behind(det.source) else self._mesh_in_box(rgb, det.box, det.angle)
            if arr is not None:
                r = self._result(arr, det.score)
                if not any(_covers(o.bbox, (r.bbox[:2] + r.bbox[2:]) / 2) for o in out):
                    out.append(r)
            elif not 0 < det.views < 2 and (not self.all_views        # independent images: ~1 ms per box
                                             or neighbour_correlation(rgb, det.box) >= MIN_NEIGHBOUR_CORRELATION):
                self.unmeshed.append(det)

    def _mesh_in_box(self, rgb: np.ndarray, box: np.ndarray, angle: float = 0.0, side: int = 256):
        """The mesh of the face in ``box``: a square crop of twice the box size, ``side`` px, rotated by
        ``angle`` (deg, cv2 sense: the face is upright in the image rotated so) about the box centre."""
        size = 2.0 * max(box[2] - box[0], box[3] - box[1])
        s = size / side
        crop, A = upright_crop(rgb, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), angle, size, side)
        self.crop_runs += 1
        found = self._landmarks(self._crop_mesh.process(crop), side, side)
        if not found:
            return None
        m = found[0]
        return np.column_stack([m[:, :2] @ A[:, :2].T + A[:, 2], m[:, 2] * s])

    def close(self) -> None:
        self._mesh.close()
        if self._detector is not None:
            self._detector.close()
            self._crop_mesh.close()


def dlib_rect(box):
    """dlib.rectangle of a box (x0, y0, x1, y1), each corner rounded to the nearest pixel."""
    import dlib
    return dlib.rectangle(*(int(round(v)) for v in box))


def shape_points(predictor, rgb: np.ndarray, rect) -> np.ndarray:
    """(N, 2) float64 pixel points of dlib shape ``predictor`` on ``rgb`` in ``rect`` (a dlib.rectangle)."""
    return np.array([(p.x, p.y) for p in predictor(rgb, rect).parts()], np.float64)


def predict_on_box(predictor, rgb: np.ndarray, box) -> np.ndarray:
    """:func:`shape_points` on a box (x0, y0, x1, y1) (:func:`dlib_rect`: corners rounded): how the hybrid,
    its fits and the turned-face predictor run a dlib predictor on a box they placed. DlibFace68.process and
    FaceLandmarker._dlib_jitter truncate their boxes instead (int()), as their fitted sigma models expect."""
    return shape_points(predictor, rgb, dlib_rect(box))


def load_dlib_model(kind, name: str):
    """dlib.shape_predictor / cnn_face_detection_model_v1 of a shipped model file; an unreadable or
    corrupt file is a BackendError naming it (dlib raises RuntimeError)."""
    path = dlib_model_path(name)
    try:
        return kind(path)
    except RuntimeError as exc:
        raise BackendError(f'dlib model {path} cannot be read ({exc}); reinstall face-recognition-models') from exc


def dlib_model_path(name: str) -> str:
    """Path of a model file shipped by face-recognition-models (its __init__ is not imported)."""
    spec = importlib.util.find_spec('face_recognition_models')
    if spec is None or not spec.submodule_search_locations:
        raise BackendError('package face-recognition-models is not installed (it ships dlib\'s model files)')
    path = os.path.join(list(spec.submodule_search_locations)[0], 'models', name)
    if not os.path.isfile(path):
        raise BackendError(f'dlib model {path} not found')
    return path


class DlibFace68:
    """dlib detector + 68-point shape predictor.

    ``redetect_every`` N > 1 (video): the detector scans the whole image (HOG: ~17 ms at 640x480,
    holding the GIL) on every N-th frame only; in between it scans a window around each face's
    previous box (the box grown by ``search_margin`` of its size on every side: ~4x the face's
    area), so a face is still confirmed by the detector on every frame and one that is gone is
    dropped at once. A new face is found within N frames. N = 1: the whole image every frame.
    """
    name = 'dlib'
    layout = 'dlib68'

    def __init__(self, detector: str = "hog", upsample: int = 0, min_score: float = 0.3, redetect_every: int = 1,
                 search_margin: float = 0.5, box_map=None, full_cascade: bool = True, all_views: bool = True,
                 mmod: bool = True, max_faces: int = 4):
        try:
            import dlib
        except ImportError as exc:
            raise BackendError(f'dlib is not available ({exc}); install dlib-bin') from exc
        self._predictor = load_dlib_model(dlib.shape_predictor, 'shape_predictor_68_face_landmarks.dat')
        self._cascade = None
        self._hog = self._cnn = None
        if detector == 'mmod':
            self._cnn = load_dlib_model(dlib.cnn_face_detection_model_v1, 'mmod_human_face_detector.dat')
        elif detector == 'hog':
            self._hog = dlib.get_frontal_face_detector()
        elif detector == 'cascade':
            from depthmarks_ros.core.face.detection import IDENTITY_BOX_MAP, FaceDetector
            self._cascade = FaceDetector(fallback_hog=full_cascade, full=full_cascade,
                                         fallback_mmod=full_cascade and mmod, max_faces=max_faces)
            self.box_map = dict(IDENTITY_BOX_MAP, **(box_map or {}))
        else:
            raise BackendError(f"unknown dlib detector {detector!r}: use 'cascade', 'hog' or 'mmod'")
        self.detector = detector
        self.all_views = bool(all_views and full_cascade)
        self.upsample = upsample
        self.min_score = min_score  # HOG scores below ~0.3 are mostly false positives (dlib's default is 0)
        self.redetect_every = max(1, int(redetect_every))
        self.search_margin = search_margin
        self.full_scans = 0                 # whole-image detector runs (diagnostics, tests)
        self._boxes: List[np.ndarray] = []  # detector boxes of the last frame (x0, y0, x1, y1)
        self._frames_since_scan = 0
        self._dlib = dlib

    def detect_boxes(self, rgb: np.ndarray, grey: np.ndarray) -> List[tuple]:
        """[(box x0, y0, x1, y1 in the predictor's box convention, score, source)] in the whole image
        (source: the detection's, core/face/detection.py); a face that only detect_all's views found, best
        in a rotated view: (box in the predictor's convention in that view about the detection's centre,
        score, source, (angle, centre))."""
        if self._cascade is not None:
            from depthmarks_ros.core.face.detection import box_from_detection, box_kind
            dets = self._cascade.detect(rgb, mmod=not self.all_views)    # all views: MMOD (1-3 s) after them
            if self.all_views and len(dets) < self._cascade.max_faces:   # independent images: faces found
                dets += self._cascade.detect_all(rgb, [d.box for d in dets], 2, reuse=True)   # in 2+ views
                if not dets:
                    dets = self._cascade.detect_mmod(rgb)
                if not dets:        # nor MMOD: a head from the body pose (seen from behind, full profile)
                    dets = self._cascade.detect_pose_head(rgb)
            return [(box_from_detection(d.box, self.box_map[box_kind(d.source)]), d.score, d.source)
                    + (((d.angle, (d.box[:2] + d.box[2:]) / 2),) if d.views > 0 and d.angle != 0 else ())
                    for d in dets[:self._cascade.max_faces]]
        return [(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64), float(s), self.detector)
                for r, s in self.detect(grey)]

    def detect(self, grey: np.ndarray):
        """[(dlib.rectangle, score)] in ``grey`` (HOG or MMOD)."""
        if self._hog is not None:
            rects, scores, _ = self._hog.run(grey, self.upsample, self.min_score)
            return list(zip(rects, scores))
        return [(d.rect, d.confidence) for d in self._cnn(grey, self.upsample)]

    def landmarks(self, rgb: np.ndarray, rect) -> np.ndarray:
        return shape_points(self._predictor, rgb, rect)

    def landmarks_upright(self, rgb: np.ndarray, box: np.ndarray, angle: float, centre) -> np.ndarray:
        """dlib's predictor (trained on upright faces) on a face found in the view rotated by ``angle``
        about ``centre``: on a crop turned upright there (``box``: in that view), the points turned back."""
        size = 2.0 * max(box[2] - box[0], box[3] - box[1])
        side = max(int(np.ceil(size)), 1)
        crop, A = upright_crop(rgb, centre, angle, size, side)
        b = (np.asarray(box, float) - np.tile(centre, 2)) * (side / size) + side / 2
        pts = self.landmarks(crop, dlib_rect(b))
        return pts @ A[:, :2].T + A[:, 2]

    def process(self, rgb: np.ndarray) -> List[FaceResult]:
        import cv2
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self._cascade is None and self._boxes and self._frames_since_scan < self.redetect_every - 1:
            self._frames_since_scan += 1
            found = self._detect_near_boxes(grey)
        else:   # the cascade's first stage costs ~2-4 ms: it scans the whole image every frame
            self._frames_since_scan = 0
            self.full_scans += 1
            found = self.detect_boxes(rgb, grey)
        out = []
        for box, score, source, *turn in found:
            if turn:
                pts = self.landmarks_upright(rgb, box, *turn[0])
            else:
                pts = self.landmarks(rgb, self._dlib.rectangle(*(int(v) for v in box)))
            out.append(FaceResult(pts, pts.copy(), _bbox(pts), score, self.layout, source=source))
        self._boxes = [box for box, *_ in found]
        return out

    def _detect_near_boxes(self, grey: np.ndarray) -> List[tuple]:
        """The best detection in a window around each previous box (duplicates merged)."""
        h, w = grey.shape
        found: List[tuple] = []
        for box in self._boxes:
            m = self.search_margin * max(box[2] - box[0], box[3] - box[1])
            x0, y0 = int(max(box[0] - m, 0)), int(max(box[1] - m, 0))
            x1, y1 = int(min(box[2] + m + 1, w)), int(min(box[3] + m + 1, h))
            if x1 - x0 < 40 or y1 - y0 < 40:
                continue
            hits = self.detect(np.ascontiguousarray(grey[y0:y1, x0:x1]))
            if not hits:
                continue
            r, score = max(hits, key=lambda hs: hs[1])
            new = np.array([r.left() + x0, r.top() + y0, r.right() + x0, r.bottom() + y0], np.float64)
            if all(_iou(new, b) < 0.5 for b, *_ in found):
                found.append((new, float(score), self.detector))
        return found

    def close(self) -> None:
        if self._cascade is not None:
            self._cascade.close()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def create_backend(name: str, max_faces: int = 4, refine: bool = False, static: bool = False,
                   dlib_detector: str = 'cascade', dlib_redetect_every: int = 1, mapping=None,
                   box_map=None, mesh_fallback: bool = True, blend=None, profile=None, all_views: bool = True,
                   mmod: bool = True, face_model=None):
    """``static``: independent images (full detector cascade; ``all_views``: every view of it, not only
    until one finds a face; ``mmod``: dlib's CNN where no other stage found a face); else video (the
    cascade's two cheap stages; the mesh tracks faces between frames). ``face_model``: the 3D mean face
    the hybrid's blend takes its yaw from (None = the shipped one)."""
    if name == 'hybrid':
        from depthmarks_ros.core.face.hybrid import HybridFace68
        try:
            return HybridFace68(max_faces, refine, static, mapping=mapping, blend=blend, box_map=box_map,
                                profile=profile, all_views=all_views, mmod=mmod, face_model=face_model)
        except ImportError as exc:
            raise BackendError(f'the hybrid backend needs mediapipe and dlib ({exc})') from exc
    if name == 'mediapipe':
        return MediaPipeFaceMesh(max_faces, refine, static, mapping=mapping, fallback_detector=mesh_fallback,
                                 all_views=all_views, mmod=mmod)
    if name == 'dlib':
        return DlibFace68(dlib_detector, redetect_every=1 if static else dlib_redetect_every, box_map=box_map,
                          full_cascade=static, all_views=all_views, mmod=mmod, max_faces=max_faces)
    raise BackendError(f"unknown face backend {name!r}: use 'hybrid', 'mediapipe' or 'dlib'")
