"""Face detection for the landmark backends (ROS-free): MediaPipe's BlazeFace detectors (short-range,
then full-range where it finds nothing), dlib HOG with upsampling as the last fallback.

Each stage runs only when the previous found no face, so a frame with a clear face costs one
short-range pass (~2-4 ms at 450x450 or 640x480 here); a frame without one costs every stage
(thirteen MediaPipe passes on the image, its mirror, half size, two padded and two rotated copies,
~60 ms, then HOG upsampled x2, ~80 ms at 450x450, then dlib's MMOD CNN, ~0.5-3 s: ``fallback_hog=False``
skips the last two; ``fallback_mmod=False`` the last). On independent images :meth:`FaceDetector.detect_all`
runs every view of ALL_VIEWS (ten), not only until one finds a face, for the faces beside one already
found (the backends then run MMOD only where those views found nothing either).
Boxes are square-ish (x0, y0, x1, y1) px around the face as each detector defines it;
:func:`box_from_detection` normalises them to a landmark-box convention fitted on real faces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np


KEYPOINT_FLIP = [1, 0, 2, 3, 5, 4]     # the detector's 6 keypoints of the mirrored face: eyes and ears swap


@dataclass
class Detection:
    box: np.ndarray      # x0, y0, x1, y1 px (axis-aligned, image)
    score: float
    source: str          # 'mp_short' | 'mp_full' | 'hog' | 'mmod' (+ the view: '_flip', '_rot+30', ...)
    angle: float = 0.0   # deg: the face is upright in the image rotated by this (cv2 sense) about its centre
    facing: float = 0.0  # MediaPipe: nose tip x minus box centre x, in box widths (> 0: nose towards image-right)
    keypoints: Optional[np.ndarray] = None   # MediaPipe: (6, 2) px, the face's right eye, left eye, nose tip,
                                             # mouth, right ear, left ear (image coordinates)
    views: int = 0       # detect_all: in how many views the face was found (0: the first-hit cascade)
    view_keypoints: Optional[List[np.ndarray]] = None   # detect_all: the keypoints of every detection merged
                                                        # into this face (every view, image coordinates)


def _box_area(box) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _nms(dets: List[Detection], iou: float = 0.4) -> List[Detection]:
    from depthmarks_ros.core.face.backends import _iou
    keep: List[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(_iou(d.box, k.box) < iou for k in keep):
            keep.append(d)
    return keep


def _overlaps(box: np.ndarray, known: np.ndarray) -> bool:
    """``box`` is (part of) the face ``known`` is: its centre inside ``known``, or 30 % of the smaller of
    the two boxes in both (a view that found only a cheek or an ear of a known face)."""
    c = (box[:2] + box[2:]) / 2
    if known[0] <= c[0] <= known[2] and known[1] <= c[1] <= known[3]:
        return True
    iw = max(0.0, min(box[2], known[2]) - max(box[0], known[0]))
    ih = max(0.0, min(box[3], known[3]) - max(box[1], known[1]))
    small = min((box[2] - box[0]) * (box[3] - box[1]), (known[2] - known[0]) * (known[3] - known[1]))
    return small > 0 and iw * ih >= 0.3 * small


def same_face(box: np.ndarray, faces) -> Optional['Detection']:
    """Of ``faces`` (detections with ``.box``), the one that is the face ``box`` is: among those that
    overlap it either way (:func:`_overlaps`), the one of highest IoU with it (not the first or the
    best-scored: a smaller face behind this one's head overlaps its box too); None if none overlaps."""
    from depthmarks_ros.core.face.backends import _iou
    box = np.asarray(box, float)
    same = [f for f in faces if _overlaps(f.box, box) or _overlaps(box, f.box)]
    return max(same, key=lambda f: _iou(np.asarray(f.box, float), box)) if same else None


class FaceDetector:
    """Cascade: MediaPipe short-range (faces within ~2 m), full-range (small faces), then (``full``)
    the short/full-range detectors on the mirrored, half-size and padded image, then dlib HOG x2."""

    def __init__(self, min_score: float = 0.5, fallback_hog: bool = True, hog_upsample: int = 1,
                 hog_min_score: float = 0.0, max_faces: int = 4, full: bool = True,
                 fallback_mmod: Optional[bool] = None):
        # fallback_mmod None: as fallback_hog
        try:
            import mediapipe as mp
            fd = mp.solutions.face_detection
            self._short = fd.FaceDetection(model_selection=0, min_detection_confidence=min_score)
            self._full = fd.FaceDetection(model_selection=1, min_detection_confidence=min_score)
        except (ImportError, AttributeError) as exc:
            from depthmarks_ros.core.face.backends import BackendError
            raise BackendError(f'MediaPipe face detection is not available ({exc}); it needs mediapipe==0.10.21') from exc
        self._hog = self._mmod = self._pose_head = None
        if fallback_hog:
            import dlib
            self._hog = dlib.get_frontal_face_detector()
        if fallback_hog if fallback_mmod is None else fallback_mmod:   # the last resort (independent images)
            import dlib
            from depthmarks_ros.core.face.backends import load_dlib_model
            self._mmod = load_dlib_model(dlib.cnn_face_detection_model_v1, 'mmod_human_face_detector.dat')
        self.hog_upsample, self.hog_min_score, self.max_faces = hog_upsample, hog_min_score, max_faces
        self.stages = self.STAGES if full else self.STAGES[:2]      # video: the two cheap stages only
        self.full = full
        self.stage_counts = {'none': 0}
        self._seen: dict = {}           # view name -> its detections in the current image (detect_all reuses them)
        self.last_faces: List[Detection] = []   # detect_all: every face it merged, known ones included

    @staticmethod
    def _mp(det, rgb, source) -> List[Detection]:
        h, w = rgb.shape[:2]
        out = []
        for d in det.process(rgb).detections or []:
            b = d.location_data.relative_bounding_box
            box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
                kp = d.location_data.relative_keypoints
                facing = (kp[2].x * w - (box[0] + box[2]) / 2) / (box[2] - box[0]) if len(kp) > 2 else 0.0
                pts = np.array([(k.x * w, k.y * h) for k in kp], np.float64) if len(kp) == 6 else None
                out.append(Detection(box, float(d.score[0]), source, facing=float(facing), keypoints=pts))
        return out

    # (stage name, detector, view of the image): tried in order until one finds a face; 'pad2' (the
    # image in a frame 2.5x its size) found 1 of the 2 AFLW2000-3D fit-split faces the hybrid still
    # missed (a face cut by the top border; none of the 3 report-split misses); the views
    # after the first two found 11 of the 15 AFLW2000-3D fit-split faces the first two missed
    # (faces filling the frame or turned > 60 deg); the rotated views 2 of the 5 the others missed
    # (profiles with the head tilted), dlib's MMOD CNN (last resort, ~0.5-3 s) 2 more (a development
    # check with an uncommitted script, not a reported figure)
    STAGES = (('mp_short', 'short', 'raw'), ('mp_full', 'full', 'raw'), ('mp_short_flip', 'short', 'flip'),
              ('mp_short_half', 'short', 'half'), ('mp_full_half', 'full', 'half'),
              ('mp_short_pad', 'short', 'pad'), ('mp_full_pad', 'full', 'pad'),
              ('mp_short_rot-30', 'short', 'rot-30'), ('mp_short_rot+30', 'short', 'rot+30'),
              ('mp_full_rot-30', 'full', 'rot-30'), ('mp_full_rot+30', 'full', 'rot+30'),
              ('mp_short_pad2', 'short', 'pad2'), ('mp_full_pad2', 'full', 'pad2'))

    # views that only detect_all runs (independent images): the short-range detector on the image rotated
    # by +-60 deg; with the +-30 deg views they cover a head tilted up to ~90 deg (the detectors take
    # ~+-30 deg); on the 1176 fit-split images they found 1 face the other views missed (yaw 79, pitch 54,
    # roll 53 deg), +-90 deg views none more
    EXTRA_STAGES = (('mp_short_rot-60', 'short', 'rot-60'), ('mp_short_rot+60', 'short', 'rot+60'))
    # detect_all's views: the full-range detector (~3x the short-range one's time) only on the image as it
    # is: on the fit split its other views found no face that the short-range views missed (11 of the 12
    # faces the short-range detector misses on the image as it is, with or without them), at ~85 ms
    # instead of ~35 ms per 450x450 image
    ALL_VIEWS = tuple(st for st in STAGES + EXTRA_STAGES if st[1] == 'short' or st[2] == 'raw')

    def detect_first(self, rgb: np.ndarray) -> List[Detection]:
        """The first stage alone (short-range detector on the image as it is), every face it finds."""
        self._seen = {}
        return _nms(self._view(*self.STAGES[0], np.ascontiguousarray(rgb)))[:self.max_faces]

    def _view(self, name: str, which: str, view: str, rgb: np.ndarray) -> List[Detection]:
        """One detector on one view of the image, boxes and keypoints mapped back to the image."""
        import cv2
        h, w = rgb.shape[:2]
        det = self._short if which == 'short' else self._full
        if view == 'raw':
            dets = self._mp(det, rgb, name)
        elif view == 'flip':
            dets = self._mp(det, np.ascontiguousarray(rgb[:, ::-1]), name)
            for d in dets:
                d.box = np.array([w - d.box[2], d.box[1], w - d.box[0], d.box[3]])
                d.facing = -d.facing
                if d.keypoints is not None:     # mirrored: x flips, the face's sides swap
                    d.keypoints = np.column_stack([w - d.keypoints[:, 0], d.keypoints[:, 1]])[KEYPOINT_FLIP]
        elif view.startswith('rot'):
            angle = float(view[3:])
            M = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
            Minv = cv2.invertAffineTransform(M)
            dets = self._mp(det, cv2.warpAffine(rgb, M, (w, h), borderMode=cv2.BORDER_CONSTANT), name)
            for d in dets:
                c = Minv @ np.array([(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2, 1.0])
                half = max(d.box[2] - d.box[0], d.box[3] - d.box[1]) / 2
                d.box, d.angle = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half]), angle
                if d.keypoints is not None:
                    d.keypoints = d.keypoints @ Minv[:, :2].T + Minv[:, 2]
        elif view == 'half':
            if min(h, w) < 160:
                return []
            dets = self._mp(det, cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA), name)
            for d in dets:
                d.box = d.box * np.array([w / (w // 2), h / (h // 2)] * 2)
                if d.keypoints is not None:
                    d.keypoints = d.keypoints * [w / (w // 2), h / (h // 2)]
        else:       # 'pad': a quarter of the larger side on each side; 'pad2': three quarters (faces
            p = max(h, w) // 4 if view == 'pad' else 3 * max(h, w) // 4      # cut by the border)
            dets = self._mp(det, cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_CONSTANT, value=(0, 0, 0)), name)
            for d in dets:
                d.box = d.box - p
                if d.keypoints is not None:
                    d.keypoints = d.keypoints - p
        self._seen[name] = dets
        return dets

    def detect_all(self, rgb: np.ndarray, known=(), min_views: int = 1, reuse: bool = False,
                   limit: Optional[int] = -1) -> List[Detection]:
        """Independent images: every view (ALL_VIEWS, and those the last detect / detect_first call ran
        on this same image where ``reuse``: not run again), not only until the first finds a face;
        detections of one face in several views (IoU >= 0.3) are one, the best-scored, with ``views``
        their count; a face overlapping a better-scored one (:func:`_overlaps`, either way round) is
        part of it; faces that overlap a box in ``known`` are left out, and faces found in fewer than
        ``min_views`` views. At most ``limit`` faces, best-scored first (-1: max_faces; None: all)."""
        limit = self.max_faces if limit == -1 else limit
        from depthmarks_ros.core.face.backends import _iou
        rgb = np.ascontiguousarray(rgb)
        if not reuse:
            self._seen = {}
        found: List[Detection] = []
        for name, which, view in self.STAGES + self.EXTRA_STAGES:
            if name in self._seen:
                dets = self._seen[name]
            elif (name, which, view) in self.ALL_VIEWS:
                dets = self._view(name, which, view, rgb)
            else:
                continue
            found += [Detection(d.box.copy(), d.score, d.source, d.angle, d.facing, d.keypoints) for d in dets]
        self._seen = {}
        groups: List[Detection] = []
        sources: List[set] = []
        members: List[list] = []        # the keypoints of each group's detections
        for d in sorted(found, key=lambda d: -d.score):
            i = next((i for i, g in enumerate(groups) if _iou(d.box, g.box) >= 0.3), None)
            if i is None:
                groups.append(d)
                sources.append({d.source})
                members.append([])
            else:
                sources[i].add(d.source)
            if d.keypoints is not None:
                members[-1 if i is None else i].append(d.keypoints)
        kept: List[Detection] = []      # groups in score order; one that overlaps a kept one (a partial box
        kept_src: List[set] = []        # inside a full-face one, IoU < 0.3) is that face: its views join it,
        for g, src, kp in zip(groups, sources, members):    # and the face keeps the larger (enclosing) box,
            i = next((i for i, k in enumerate(kept) if _overlaps(g.box, k.box) or _overlaps(k.box, g.box)), None)
            if i is None:                                   # best score
                g.view_keypoints = list(kp)
                kept.append(g)
                kept_src.append(set(src))
            else:
                kept_src[i] |= src
                kp = kept[i].view_keypoints + kp
                if _box_area(g.box) > _box_area(kept[i].box):
                    g.score = kept[i].score
                    kept[i] = g
                kept[i].view_keypoints = kp
        for g, src in zip(kept, kept_src):
            g.views = len(src)
        self.last_faces = kept          # every face of this call, those overlapping ``known`` too
        out = [g for g in kept if g.views >= min_views and not any(_overlaps(g.box, np.asarray(k)) for k in known)]
        return out if limit is None else out[:limit]

    def detect(self, rgb: np.ndarray, mmod: bool = True) -> List[Detection]:
        """The first-hit cascade; ``mmod`` False: without its last resort (the caller runs
        :meth:`detect_mmod` itself where the cheaper detect_all views find nothing either)."""
        import cv2
        rgb = np.ascontiguousarray(rgb)
        self._seen = {}
        dets: List[Detection] = []
        for name, which, view in self.stages:
            dets = self._view(name, which, view, rgb)
            if dets:
                break
        if not dets and self._hog is not None:
            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            rects, scores, _ = self._hog.run(grey, self.hog_upsample, self.hog_min_score)
            dets = [Detection(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64), float(s), 'hog')
                    for r, s in zip(rects, scores)]
        if not dets and mmod:
            dets = self._run_mmod(rgb)
        dets = _nms(dets)[:self.max_faces]
        self._count(dets[0].source if dets else 'none')
        return dets

    def _count(self, key: str, delta: int = 1) -> None:
        self.stage_counts[key] = self.stage_counts.get(key, 0) + delta

    def _run_mmod(self, rgb: np.ndarray) -> List[Detection]:
        if self._mmod is None or min(rgb.shape[:2]) < 32:      # dlib's CNN fails on tinier ones
            return []
        return [Detection(np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], np.float64),
                          float(d.confidence), 'mmod') for d in self._mmod(np.ascontiguousarray(rgb), 0)]

    def detect_mmod(self, rgb: np.ndarray) -> List[Detection]:
        """The cascade's last resort alone (dlib's MMOD CNN, ~1-3 s), after ``detect(rgb, mmod=False)``
        and detect_all found nothing; the image counts for 'mmod' instead of 'none' where it finds a face."""
        dets = _nms(self._run_mmod(rgb))[:self.max_faces]
        if dets:
            self._count('none', -1)
            self._count('mmod')
        return dets

    # detect_oversized: the last view of all (independent images where every other one, MMOD included,
    # found nothing): a face larger than the frame (brow and chin cut off) that no MediaPipe view finds,
    # HOG finds with its whole box in the frame: the image padded by a quarter of its larger side on each
    # side, at most OVERSIZE_SIDE px, upsampled x2 by HOG. Its threshold is below HOG's usual 0: on 50
    # images without a face (KITTI object, Middlebury stereo, FreiHAND) no box scored above -0.78 on
    # that view (a development check with an uncommitted script); a reviewer's check on 62 other images
    # without a face (KITTI 2012 grey stereo, Middlebury) found none above -0.61: -0.5 keeps a margin of
    # ~0.1. The view was designed after looking at the one report-split face it finds (see the docs)
    OVERSIZE_MIN_SCORE = -0.5
    OVERSIZE_SIDE = 450

    def detect_oversized(self, rgb: np.ndarray) -> List[Detection]:
        """At most one face: HOG on the padded, shrunk image (source 'hog_pad', box in the image's pixels,
        possibly past its border); counted as 'hog_pad' instead of 'none' where it finds one."""
        import cv2
        if self._hog is None or min(rgb.shape[:2]) < 32:
            return []
        h, w = rgb.shape[:2]
        p = max(h, w) // 4
        s = min(1.0, self.OVERSIZE_SIDE / (max(h, w) + 2 * p))     # shrunk first, then padded (no full-size copy)
        grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
        if s < 1.0:
            grey = cv2.resize(grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        ps = round(p * s)
        grey = cv2.copyMakeBorder(grey, ps, ps, ps, ps, cv2.BORDER_CONSTANT, value=0)
        rects, scores, _ = self._hog.run(grey, 1, self.OVERSIZE_MIN_SCORE)
        dets = [Detection((np.array([r.left(), r.top(), r.right(), r.bottom()], np.float64) - ps) / s, float(c), 'hog_pad')
                for r, c in zip(rects, scores)]
        dets = _nms(dets)[:1]
        if dets:
            self._count('none', -1)
            self._count('hog_pad')
        return dets

    # detect_pose_head: after detect_oversized, the last resort of all (independent images where no
    # face view found anything): the head of the person MediaPipe's BlazePose finds (core/face/pose_head.py),
    # a head seen from behind or in full profile, at least pose_head.MIN_HEAD_PX a side
    def detect_pose_head(self, rgb: np.ndarray) -> List[Detection]:
        """At most one face: the head BlazePose finds (source 'pose_head', its six keypoints from the pose's
        face landmarks); counted as 'pose_head' instead of 'none' where it finds one. The pose model is
        loaded on the first call (an image with a face never pays for it)."""
        if self._pose_head is None:
            from depthmarks_ros.core.face.pose_head import PoseHeadFinder
            self._pose_head = PoseHeadFinder()
        dets = self._pose_head.find(rgb)[:1]
        if dets:
            self._count('none', -1)
            self._count('pose_head')
        return dets

    def close(self) -> None:
        self._short.close()
        self._full.close()
        if self._pose_head is not None:
            self._pose_head.close()
            self._pose_head = None


# per-source mapping (centre shift in box sizes, scale) from a detector's box to the box dlib's
# shape predictor was trained with (its HOG detector's); fitted by `depthmarks fit-face`
IDENTITY_BOX_MAP = {'mp': (0.0, 0.0, 1.0), 'hog': (0.0, 0.0, 1.0)}


def box_kind(source: str) -> str:
    return 'hog' if source in ('hog', 'mmod', 'hog_pad') else 'mp'


def box_from_detection(box: np.ndarray, mapping=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Square box of side ``s * size`` centred at ``centre + (dx, dy) * size``."""
    dx, dy, s = mapping
    size = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2 + dx * size, (box[1] + box[3]) / 2 + dy * size
    half = s * size / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])
