"""Image (+ depth) -> several people, each with body (BlazePose-33 / COCO-17), hands (2 x 21) and
optionally face (iBUG-68) keypoints in 2D and 3D, with stable ids (ROS-free).

Per frame (:meth:`BodyPoseEstimator.process`):

1. **Detect** (every ``redetect_every``-th frame, every frame when ``static``, and whenever no
   person is tracked): MediaPipe's pose detector on the whole image and, with ``detect_tiles`` n
   >= 2, on an n x n grid of overlapping tiles as well (small people); one region per detection.
   Tracking (not ``static``), one tile per detection frame, in turn. Detections of the same face
   (face box IoU > ``FACE_NMS_IOU``), or of a tracked person's face, are duplicates. A person whose
   best detection's regions hold no pose is tried on its other detections (spare regions, a pose
   there counts with its head where the detector saw the face, at half the score).
2. **Landmarks**: one BlazePose pass per region (tracked regions first); a region without a
   person (pose presence < 0.5) ends its track.
3. **NMS of people**: two landmark sets that agree (:func:`same_person`) are one person; the
   tracked (then the higher-scoring) one is kept. At most ``max_people`` (highest scores).
4. **Track**: each person's region for the next frame comes from its auxiliary landmarks (no
   detector run in between); ids come from :class:`depthmarks_ros.core.tracking.CentroidTracker`
   over the keypoint boxes, so an id survives a short loss and is never reused within a run.
5. **Hands** (``hands``): for each wrist seen (visibility >= ``min_wrist_visibility``), a hand
   region from the previous frame's hand landmarks or else from the body's wrist and finger
   bases; a new hand is re-run once on the region of its own landmarks (``hand_refine``). A wrist
   where no hand was found is looked at again after ``redetect_every`` - 1 frames. The
   hand is left/right by the body's wrist it is attached to. With ``palms`` 'auto' the palm
   detector runs on detection frames where no person has a hand found ('always': every detection
   frame); a palm hand near a person's free wrist is attached to it, the others are hands on
   their own (left/right from the hand model, person id -1), tracked by their landmarks. Images
   only (``static``): ``hand_tta`` settles every hand by passes on its region turned a few ways
   (median; at a wrist the steadiest candidate of the body's and the palms' regions), and a hand on
   its own gets a search for the other hand of its pair.
6. **Face** (``face``): dlib's 68-point shape predictor on a box made from the body's eyes and
   mouth.
7. **3D**: body as :func:`depthmarks_ros.core.body.lifting3d.lift_keypoints`; hands and face
   with :func:`depthmarks_ros.core.body.lifting3d.lift_part` around the wrist / nose depth, else
   the model's metric hand landmarks placed at the wrist.
"""
from __future__ import annotations

import queue
import threading
import concurrent.futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17
from depthmarks_ros.core.body.lifting3d import lift_keypoints, lift_part, pixel_sigma
from depthmarks_ros.core.body.roi import (Roi, box_iou, hand_roi_from_body, hand_roi_from_landmarks,
                                          hand_roi_from_palm, keypoint_box, roi_from_alignment)
from depthmarks_ros.core.tracking import CentroidTracker

SIDES = ('left', 'right')
# BlazePose wrist, pinky, index per side
WRIST_POINTS = {'left': (15, 17, 19), 'right': (16, 18, 20)}
NO_PERSON = -1
DETECTOR_INPUT = 224        # the pose detector's input side (px)
FACE_NMS_IOU = 0.3          # two detections (or a detection and a tracked person) with these face boxes are one
SAME_PERSON = 0.1           # two landmark sets whose median distance is below this x the body size are one
HAND_SEARCH_SCALES = (1.0, 0.7)   # whole-image hand regions (x the image side) when nothing found a hand
REFOCUS_SIDE = 8.0          # view around a face whose body a tile cut: this x the face box side
REFOCUS_TALLER = 1.3        # the refocused pose must see the body this much taller than the tile's
SPARE_REGIONS = 2           # a person's other detections tried when its best one's regions hold no pose
SPARE_DOUBT = 0.5           # score factor of a person found only from a spare region
HAND_TTA_TURNS = (-0.5, -0.25, 0.0, 0.25, 0.5)   # rad: a hand's region turned so (``hand_tta``), median taken
PARTNER_SCALES = (1.0, 1.4)  # regions for the other hand of a hand on its own: x its region side, 8 turns each
HANDS_APART = 0.3           # two hands whose median keypoint distance is below this x the hand size are one


def face_region(kp33: np.ndarray) -> np.ndarray:
    """Square box around BlazePose's head points (0-10), the size of the detector's face box."""
    head = kp33[:11]
    c = head.mean(0)
    side = max(float(np.ptp(head, axis=0).max()) * 1.3, 4.0)
    return np.r_[c - side / 2, c + side / 2]


def same_face(a: np.ndarray, b: np.ndarray) -> bool:
    """Two face boxes of one person (IoU > FACE_NMS_IOU). Not "one inside the other": two people one
    behind the other (carried, hugging) give such boxes."""
    return box_iou(a, b) > FACE_NMS_IOU


def _more_of_the_body(new, old) -> bool:
    """The refocused landmarks (``new``) replace those from a tile that cut the body (``old``) when they
    see the body REFOCUS_TALLER x taller (box of the points with visibility >= 0.5) and with a higher
    mean visibility (a taller but less certain pose is mostly a neighbour's legs)."""
    def height(lm):
        ok = lm.visibility[:33] >= 0.5
        return float(np.ptp(lm.keypoints[ok, 1])) if ok.sum() >= 2 else 0.0
    return (height(new) > REFOCUS_TALLER * height(old)
            and float(new.visibility[:25].mean()) > float(old.visibility[:25].mean()))


def _head_where_seen(lm, fbox: np.ndarray) -> bool:
    """A pose from a spare region is the detected person's: its nose lies in the detection's face box,
    and, as such a person is doubtful anyway, it is not upside down or lying: the nose lies above the
    hip centre in the image (a glove taken for a face gave a pose turned by 120 deg on COCO 785)."""
    nose, hips = lm.keypoints[0], lm.keypoints[[23, 24]].mean(0)
    return bool(fbox[0] <= nose[0] <= fbox[2] and fbox[1] <= nose[1] <= fbox[3] and nose[1] < hips[1])


def same_person(a, b) -> bool:
    """Two landmark sets (PoseLandmarks) of the same person: the median distance over the body points
    both see (visibility >= 0.5, else all 25) is below SAME_PERSON x the larger body size."""
    both = (a.visibility[:25] >= 0.5) & (b.visibility[:25] >= 0.5)
    if both.sum() < 3:
        both = np.ones(25, bool)
    d = np.linalg.norm(a.keypoints[:25][both] - b.keypoints[:25][both], axis=1)
    size = max(np.ptp(a.keypoints[:25], axis=0).max(), np.ptp(b.keypoints[:25], axis=0).max(), 1.0)
    return float(np.median(d)) < SAME_PERSON * size


def hands_apart(a: np.ndarray, b: np.ndarray) -> bool:
    """Two 21-point hands are different hands: their median keypoint distance is at least HANDS_APART x
    the larger hand's size."""
    size = max(float(np.ptp(a, axis=0).max()), float(np.ptp(b, axis=0).max()), 1.0)
    return float(np.median(np.linalg.norm(a - b, axis=1))) >= HANDS_APART * size


def hand_consensus(passes: list, first):
    """(hand, spread) from the hand landmark passes on turned copies of one hand's region: the per-keypoint
    median of their keypoints (and metric landmarks), side and score of ``first`` (the hand they refine);
    spread = the median over passes of the median keypoint distance to that consensus / the hand size
    (a hand the model fits well comes back the same from every turn). Under 3 passes: ``first``, inf."""
    from depthmarks_ros.core.body.mp_graphs import HandLandmarks
    if len(passes) < 3:
        return first, float('inf')
    kp = np.median([p.keypoints for p in passes], axis=0)
    worlds = [p.world for p in passes if p.world is not None]
    world = np.median(worlds, axis=0) if len(worlds) == len(passes) else first.world
    size = max(float(np.ptp(kp, axis=0).max()), 1.0)
    spread = float(np.median([np.median(np.linalg.norm(p.keypoints - kp, axis=1)) for p in passes])) / size
    return HandLandmarks(kp, world, first.model_side, first.side_score), spread


@dataclass
class Hand:
    side: str                  # 'left' | 'right' | 'unknown'
    keypoints: np.ndarray      # (21, 2) px
    sigma_px: np.ndarray       # (21,)
    xyz: np.ndarray            # (21, 3) m (NaN where unknown)
    cov: np.ndarray            # (21, 3, 3)
    source: np.ndarray         # (21,) 0 none, 1 depth, 2 model
    score: float
    person_id: int = NO_PERSON
    hand_id: int = -1
    world: Optional[np.ndarray] = None


@dataclass
class Person:
    person_id: int
    keypoints: np.ndarray      # (33, 2) px
    visibility: np.ndarray     # (33,)
    sigma_px: np.ndarray       # (33,)
    xyz: np.ndarray            # (33, 3) metres (NaN where unknown)
    cov: np.ndarray            # (33, 3, 3)
    source: np.ndarray         # (33,) 0 none, 1 depth, 2 model
    score: float
    hands: Dict[str, Hand] = field(default_factory=dict)
    face68: Optional[np.ndarray] = None        # (68, 2) px
    face_xyz: Optional[np.ndarray] = None      # (68, 3)
    face_cov: Optional[np.ndarray] = None      # (68, 3, 3)
    face_source: Optional[np.ndarray] = None   # (68,)
    face_sigma_px: Optional[np.ndarray] = None  # (68,)
    world: Optional[np.ndarray] = None

    def coco17(self):
        i = BLAZEPOSE_TO_COCO17
        return self.keypoints[i], self.visibility[i], self.xyz[i]

    def box(self) -> np.ndarray:
        return keypoint_box(self.keypoints, self.visibility)


@dataclass
class _Track:
    roi: Roi
    score: float = 0.0
    age: int = 0
    hand_rois: Dict[str, Optional[Roi]] = field(default_factory=lambda: {'left': None, 'right': None})
    hand_wait: Dict[str, int] = field(default_factory=lambda: {'left': 0, 'right': 0})
    lm: object = None


class BodyPoseEstimator:
    """Several people per image: detector + per-person landmarks + tracking + hands + face + 3D.

    ``static`` True: every image is independent (detection on every call, all tiles, no tracked
    regions); ids still count up across calls and are never reused. ``max_depth_offset``: depth farther
    than this from the torso (wrist, nose for hands and face) is background. ``nms_iou``: palm
    regions overlapping more than this (box IoU) are one hand. ``hand_search`` (only with ``static``):
    an image with no person where the palm detector found no hand is searched as a close-up of one
    (:meth:`_hand_search`), and a hand on its own gets a search for the other hand of the pair
    (:meth:`_partners`). ``hand_tta`` (only with ``static``): every hand is settled by the hand model on
    its region turned by HAND_TTA_TURNS (median keypoints, :func:`hand_consensus`), and at a wrist the
    candidates (the region from the body, palm detections near it) compete by the spread of those passes
    (:meth:`_settle`). ``workers``: landmark passes of one frame (people, then hands) run on this
    many threads, each with its own model instances (MediaPipe releases the GIL while it runs); the
    results do not depend on it.
    """

    def __init__(self, backend: str = 'mediapipe', static: bool = False, max_depth_offset: float = 0.6,
                 max_people: int = 8, redetect_every: int = 5, detect_tiles: int = 0, nms_iou: float = 0.5,
                 min_detection_confidence: float = 0.5, hands: bool = True, hand_model: int = 0,
                 hand_refine: bool = True, palms: str = 'auto', min_wrist_visibility: float = 0.3,
                 face: bool = False, model_complexity: int = 1, min_confidence: Optional[float] = None,
                 pose_refine: bool = False, hand_search: bool = True, hand_tta: bool = False, workers: int = 2):
        from depthmarks_ros.core.body.backends import BackendError
        from depthmarks_ros.core.body.mp_graphs import (GraphError, HandLandmarker, PalmDetector, PoseDetector,
                                                        PoseLandmarker)
        if backend != 'mediapipe':
            raise BackendError(f"unknown body backend {backend!r}: known ['mediapipe']")
        if palms not in ('never', 'auto', 'always'):
            raise ValueError(f"palms must be 'never', 'auto' or 'always', not {palms!r}")
        self.workers = max(1, int(workers))
        try:
            self.detector = PoseDetector()
            self.landmarker = PoseLandmarker(model_complexity)
            self.hand_landmarker = HandLandmarker(hand_model) if hands else None
            self.palm_detector = PalmDetector(hand_model) if hands and palms != 'never' else None
            # one more landmark model of each kind per extra worker (a MediaPipe graph runs one packet at a time)
            self._pose_extra = [PoseLandmarker(model_complexity) for _ in range(self.workers - 1)]
            self._hand_extra = [HandLandmarker(hand_model) for _ in range(self.workers - 1)] if hands else []
        except GraphError as exc:
            raise BackendError(str(exc)) from exc
        self._pose_free: queue.SimpleQueue = queue.SimpleQueue()
        self._hand_free: queue.SimpleQueue = queue.SimpleQueue()
        for i in range(self.workers):
            self._pose_free.put(i)
            self._hand_free.put(i)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix='body') if self.workers > 1 else None
        self._count_lock = threading.Lock()
        self.face_model = None
        if face:
            from depthmarks_ros.core.face.backends import DlibFace68
            self.face_model = DlibFace68()
        self.static, self.max_depth_offset, self.max_people = static, max_depth_offset, max_people
        self.redetect_every, self.detect_tiles, self.nms_iou = max(1, redetect_every), detect_tiles, nms_iou
        self.min_detection_confidence = min_confidence if min_confidence is not None else min_detection_confidence
        self.pose_refine, self.hand_search = pose_refine, hand_search
        self.hand_tta = bool(hand_tta) and static
        self.hand_refine, self.palms, self.min_wrist_visibility = hand_refine, palms, min_wrist_visibility
        self.tracker = CentroidTracker(max_distance=0.5, max_missed=10)
        self.hand_tracker = CentroidTracker(max_distance=0.6, max_missed=10)
        self._tracks: List[_Track] = []
        self._free_hands: List[Roi] = []
        self._hand_ids: Dict[tuple, int] = {}
        self._frame = 0
        self.loose_hands: List[Hand] = []   # hands of no person found in the last frame
        self.detector_runs = 0           # detection frames (diagnostics and tests)
        self.detector_calls = 0          # detector passes (views, refocus)
        self.landmark_passes = 0

    # -- model passes (several at once with ``workers`` > 1: MediaPipe releases the GIL) -------------
    def _pose_pass(self, rgb: np.ndarray, roi: Roi):
        return self._model_pass(self._pose_free, 'landmarker', self._pose_extra, rgb, roi)

    def _hand_pass(self, rgb: np.ndarray, roi: Roi):
        return self._model_pass(self._hand_free, 'hand_landmarker', self._hand_extra, rgb, roi)

    def _model_pass(self, free: queue.SimpleQueue, first: str, extra: list, rgb: np.ndarray, roi: Roi):
        """One pass of a free instance of a model (instance 0: the attribute ``first``, others ``extra``)."""
        i = free.get()
        try:
            return (getattr(self, first) if i == 0 else extra[i - 1])(rgb, roi)
        finally:
            free.put(i)
            self._count()

    def _count(self) -> None:
        with self._count_lock:
            self.landmark_passes += 1

    def _map(self, fn, items: list) -> list:
        """[fn(x) for x in items], on the worker threads when there are several items and workers."""
        if self._pool is None or len(items) < 2:
            return [fn(x) for x in items]
        # every pass finishes before the frame goes on (one that raises must not leave others still
        # changing this frame's tracks while the next frame starts on them)
        futures = [self._pool.submit(fn, x) for x in items]
        concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    # -- stages --------------------------------------------------------------------------------
    def _views(self, w: int, h: int) -> List[tuple]:
        """Whole image, then the tiles: every grid when static, one tile per detection frame (in turn)
        when tracking, so small people are found within a few detection frames at a small cost."""
        grids = self.detect_tiles if isinstance(self.detect_tiles, (tuple, list)) else (
            range(2, int(self.detect_tiles) + 1, 2) if int(self.detect_tiles) >= 2 else ())
        tiles = []
        for n in grids:
            tw, th = int(np.ceil(2 * w / (n + 1))), int(np.ceil(2 * h / (n + 1)))  # 50% overlap
            if max(tw, th) < DETECTOR_INPUT:
                continue                    # tiles smaller than the detector's input add nothing but false people
            for iy in range(n):
                for ix in range(n):
                    x0, y0 = min(w - tw, ix * tw // 2), min(h - th, iy * th // 2)
                    tiles.append((x0, y0, x0 + tw, y0 + th))
        if not self.static and tiles:
            tiles = [tiles[self.detector_runs % len(tiles)]]
        return [(0, 0, w, h)] + tiles

    def _run_detector(self, rgb: np.ndarray, view) -> List[tuple]:
        """[(score, Roi, face box, truncated)] of one view (x0, y0, x1, y1) of the image; truncated:
        the person region crosses an edge of the view that is not the image's (the tile cut the body,
        so the region made from it is unreliable)."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = view
        crop = rgb if (x0, y0, x1, y1) == (0, 0, w, h) else np.ascontiguousarray(rgb[y0:y1, x0:x1])
        out = []
        for d in self.detector(crop):
            if d.score < self.min_detection_confidence or len(d.keypoints) < 2:
                continue
            kp = d.keypoints + (x0, y0)
            roi = roi_from_alignment(kp[0], kp[1])
            if roi is None:
                continue
            # the body circle (radius: the region's side / 2.5, see roi_from_alignment) past an inner
            # side or bottom edge (past the top is mostly the margin above the head)
            r = roi.size / 2.5
            truncated = ((x0 > 0 and roi.cx - r < x0) or (x1 < w and roi.cx + r > x1)
                         or (y1 < h and roi.cy + r > y1))
            out.append((d.score, roi, d.box + (x0, y0, x0, y0), bool(truncated)))
        return out

    def _refocus(self, rgb: np.ndarray, fbox: np.ndarray) -> Optional[tuple]:
        """The detector once more on a view around a face found in a tile that cut its body: a square
        of REFOCUS_SIDE x the face box side, the face near its top. The best detection there of the
        same face (:func:`same_face`), or None."""
        h, w = rgb.shape[:2]
        fw = max(fbox[2] - fbox[0], fbox[3] - fbox[1], 4.0)
        cx, cy = (fbox[0] + fbox[2]) / 2, (fbox[1] + fbox[3]) / 2
        side = REFOCUS_SIDE * fw
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - 1.5 * fw))
        x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy - 1.5 * fw + side))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return None
        self.detector_calls += 1
        same = [d for d in self._run_detector(rgb, (x0, y0, x1, y1)) if same_face(d[2], fbox)]
        return max(same, key=lambda d: d[0]) if same else None

    def _detect(self, rgb: np.ndarray, tracked: List[np.ndarray] = ()) -> List[tuple]:
        """[(score, [Roi, ...], face box, spare)] from the whole image and the tiles, score-sorted.
        Detections of the same face (:func:`same_face`, seen in several views) are one person: the
        best-scoring one; a person whose face is one of ``tracked`` (face boxes) is left out before any
        more work. If its view cut the body (a tile), the detector runs once more on a view around the
        face (:meth:`_refocus`) and that region competes with it (:func:`_more_of_the_body`). spare:
        [(Roi, face box)] of up to SPARE_REGIONS other detections of the person, views that did not cut
        the body first (:meth:`_person_pass` tries them when the regions hold no pose)."""
        h, w = rgb.shape[:2]
        views = self._views(w, h)           # (the tile of this detection frame depends on detector_runs)
        self.detector_runs += 1
        found = []
        for view in views:
            self.detector_calls += 1
            found += self._run_detector(rgb, view)
        found.sort(key=lambda t: -t[0])
        groups: List[list] = []
        for det in found:
            for g in groups:
                if same_face(det[2], g[0][2]):
                    g.append(det)
                    break
            else:
                groups.append([det])
        out = []
        for g in groups:
            if any(same_face(g[0][2], b) for b in tracked):
                continue                    # a tracked person's face: no refocus, no landmark pass
            rois = [g[0][1]]
            if g[0][3]:
                again = self._refocus(rgb, g[0][2])
                if again is not None:
                    rois.append(again[1])
            # the group's other detections, views that did not cut the body first: spare regions
            spare = [(d[1], d[2]) for d in sorted(g[1:], key=lambda d: (d[3], -d[0]))][:SPARE_REGIONS]
            out.append((g[0][0], rois, g[0][2], spare))
        return out

    def _hand(self, rgb: np.ndarray, roi: Roi, refine: bool):
        lm = self._hand_pass(rgb, roi)
        if lm is not None and refine:
            r2 = hand_roi_from_landmarks(lm.keypoints)
            if r2 is not None:
                lm2 = self._hand_pass(rgb, r2)
                lm = lm2 if lm2 is not None else lm
        return lm

    def _settle(self, rgb: np.ndarray, lm):
        """(hand, spread): the hand model on ``lm``'s own region turned by HAND_TTA_TURNS, the median
        of the passes (:func:`hand_consensus`)."""
        r = hand_roi_from_landmarks(lm.keypoints)
        if r is None:
            return lm, float('inf')
        passes = [self._hand_pass(rgb, Roi(r.cx, r.cy, r.size, r.rotation + t)) for t in HAND_TTA_TURNS]
        return hand_consensus([q for q in passes if q is not None], lm)

    def _hands_of(self, rgb: np.ndarray, tr: _Track, palm_rois: Optional[List[Roi]] = None) -> Dict[str, object]:
        """The hands at a person's wrists. ``palm_rois`` (with ``hand_tta``): palm regions, those near a
        wrist compete with the region from the body there (the lowest spread of :meth:`_settle` wins)."""
        out = {}
        kp, vis = tr.lm.keypoints, tr.lm.visibility
        h, w = rgb.shape[:2]
        for side in SIDES:
            iw, ip, ii = WRIST_POINTS[side]
            wrist = kp[iw]
            inside = -0.1 * w <= wrist[0] <= 1.1 * w and -0.1 * h <= wrist[1] <= 1.1 * h
            if vis[iw] < self.min_wrist_visibility or not inside:
                tr.hand_rois[side] = None
                continue
            if tr.hand_rois[side] is None and tr.hand_wait[side] > 0 and not self.static:
                tr.hand_wait[side] -= 1     # no hand at this wrist lately: look again in a few frames
                continue
            # the region tracked from the last frame's hand, else (or if that hand is not at this wrist)
            # the region from the body; a hand counts only if its wrist is near the body's wrist
            tries = [(tr.hand_rois[side], False)] if tr.hand_rois[side] is not None and not self.static else []
            tries.append((hand_roi_from_body(wrist, kp[ii], kp[ip]), self.hand_refine))
            if self.hand_tta and palm_rois:
                tries += [(r, self.hand_refine) for r in palm_rois if np.hypot(r.cx - wrist[0], r.cy - wrist[1]) <= r.size]
            lm, found = None, []
            for roi, refine in tries:
                cand = self._hand(rgb, roi, refine) if roi is not None else None
                if cand is not None:
                    size = float(np.ptp(cand.keypoints, axis=0).max())
                    if np.linalg.norm(cand.keypoints[0] - wrist) <= max(0.6 * size, 0.05 * max(h, w)):
                        found.append(cand)
                        if not self.hand_tta:
                            break
            if found:
                lm = min((self._settle(rgb, c) for c in found), key=lambda t: t[1])[0] if self.hand_tta else found[0]
            tr.hand_rois[side] = hand_roi_from_landmarks(lm.keypoints) if lm is not None else None
            tr.hand_wait[side] = 0 if lm is not None else self.redetect_every - 1
            if lm is not None:
                out[side] = lm
        if 'left' in out and 'right' in out:   # both regions on the same hand: keep the nearer wrist
            a, b = out['left'].keypoints, out['right'].keypoints
            if box_iou(keypoint_box(a), keypoint_box(b)) > 0.5:
                dl = np.linalg.norm(a[0] - kp[WRIST_POINTS['left'][0]])
                dr = np.linalg.norm(b[0] - kp[WRIST_POINTS['right'][0]])
                drop = 'right' if dl <= dr else 'left'
                del out[drop]
                tr.hand_rois[drop] = None
        return out

    def _palm_rois(self, rgb: np.ndarray, rois: List[Roi]) -> List[Roi]:
        """``rois`` and the hand regions of the palm detector's palms that do not overlap them."""
        rois = list(rois)
        for d in self.palm_detector(rgb):
            r = hand_roi_from_palm(d.box, d.keypoints)
            if r is not None and all(box_iou(r.box(), q.box()) <= self.nms_iou for q in rois):
                rois.append(r)
        return rois

    def _free_hand_landmarks(self, rgb: np.ndarray, run_palms: bool, taken: List[np.ndarray],
                             palm_rois: Optional[List[Roi]] = None) -> list:
        rois = [] if self.static else list(self._free_hands)
        if run_palms and self.palm_detector is not None:
            rois = list(palm_rois) if palm_rois is not None else self._palm_rois(rgb, rois)
        found, boxes = [], list(taken)
        for r in rois:
            lm = self._hand(rgb, r, self.hand_refine)
            if lm is None:
                continue
            b = keypoint_box(lm.keypoints)
            if any(box_iou(b, q) > 0.3 for q in boxes):
                continue
            boxes.append(b)
            found.append(lm)
        self._free_hands = [q for q in (hand_roi_from_landmarks(lm.keypoints) for lm in found) if q is not None]
        return found

    def _hand_search(self, rgb: np.ndarray) -> list:
        """Images only, with no person found and no hand from the palm detector: the hand model on
        the whole image as one hand region, turned by 0, 90, 180 and 270 degrees, at 1 and 0.7 x the
        image side (an image that is a close-up of a hand: the palm detector misses hands that fill
        the frame); each hand found is re-run on its own region; the one with the highest handedness
        score is kept (a hand model pass on the wrong rotation gives a less certain hand)."""
        h, w = rgb.shape[:2]
        best = None
        for rot in (0.0, np.pi / 2, np.pi, -np.pi / 2):
            for scale in HAND_SEARCH_SCALES:
                lm = self._hand(rgb, Roi(w / 2, h / 2, scale * max(w, h), rot), True)
                if lm is not None and (best is None or lm.side_score > best.side_score):
                    best = lm
        return [best] if best is not None else []

    def _partners(self, rgb: np.ndarray, free: list, taken: List[np.ndarray]) -> list:
        """Images only: the other hand of each hand on its own (hands of two people, interacting hands:
        the palm detector and the region rules give one of the pair). The hand model on the hand's region
        centre at PARTNER_SCALES x its side turned by 8 x 45 deg; a hand the model calls the other side
        (left/right) that lies apart from every hand found (:func:`hands_apart`) is a candidate; the most
        certain (handedness score) that is still apart after :meth:`_settle` (``hand_tta``) is kept. A
        hand with a hand of the other side within 3 hand sizes already has its partner."""
        other = {'left': 'right', 'right': 'left'}
        out, known = [], [lm.keypoints for lm in free] + list(taken)
        for lm in free:
            want = other.get(lm.model_side)
            r0 = hand_roi_from_landmarks(lm.keypoints)
            if want is None or r0 is None:
                continue
            size = float(np.ptp(lm.keypoints, axis=0).max())
            if any(q.model_side == want and np.linalg.norm(q.keypoints[0] - lm.keypoints[0]) < 3 * size
                   for q in free + out if q is not lm):
                continue
            cands = []
            for scale in PARTNER_SCALES:
                for k in range(8):
                    c = self._hand(rgb, Roi(r0.cx, r0.cy, scale * r0.size, -np.pi + k * np.pi / 4), True)
                    if c is not None and c.model_side == want and all(hands_apart(c.keypoints, q) for q in known):
                        cands.append(c)
            for c in sorted(cands, key=lambda c: -c.side_score)[:3]:
                if self.hand_tta:
                    c = self._settle(rgb, c)[0]
                if all(hands_apart(c.keypoints, q) for q in known):
                    out.append(c)
                    known.append(c.keypoints)
                    break
        return out

    # -- one frame -----------------------------------------------------------------------------
    def process(self, rgb: np.ndarray, K: Optional[np.ndarray] = None, depth: Optional[np.ndarray] = None,
                depth_sigma: Optional[np.ndarray] = None) -> List[Person]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 8 or rgb.shape[1] < 8:
            raise ValueError(f'body: need an RGB image of at least 8 x 8 px, got shape {rgb.shape}')
        if depth is not None and depth.shape[:2] != rgb.shape[:2]:
            raise ValueError(f'body: depth {depth.shape[1]}x{depth.shape[0]} is not the image size '
                             f'{rgb.shape[1]}x{rgb.shape[0]}')
        if self.static:
            self._tracks = []
        detect = self.static or not self._tracks or self._frame % self.redetect_every == 0
        self._frame += 1
        candidates = [(tr, [tr.roi], []) for tr in self._tracks]
        if detect:
            tracked = [face_region(t.lm.keypoints) for t in self._tracks]
            for score, rois, fbox, spare in self._detect(rgb, tracked):
                candidates.append((_Track(rois[0], score), rois, spare))
        alive = [tr for tr in self._map(lambda c: self._person_pass(rgb, *c), candidates) if tr is not None]
        # NMS of people (tracked ones come first, so they win ties)
        alive.sort(key=lambda t: (-(t.age > 0), -t.score))
        kept: List[_Track] = []
        for tr in alive:
            if not any(same_person(tr.lm, k.lm) for k in kept):
                kept.append(tr)
        kept = sorted(kept, key=lambda t: -t.score)[:self.max_people]
        for tr in kept:
            nxt = roi_from_alignment(tr.lm.aux[0], tr.lm.aux[1])
            tr.roi = nxt if nxt is not None else tr.roi
            tr.age += 1
        self._tracks = kept
        ids = self.tracker.update([keypoint_box(t.lm.keypoints, t.lm.visibility) for t in kept])
        # images with hand_tta: the palm regions first, they compete with the regions from the body
        palm_rois = (self._palm_rois(rgb, []) if self.hand_tta and self.palm_detector is not None and kept
                     and self.hand_landmarker is not None else None)
        hands_per = (self._map(lambda t: self._hands_of(rgb, t, palm_rois), kept) if self.hand_landmarker is not None
                     else [{} for _ in kept])
        free = []
        if self.hand_landmarker is not None:
            run_palms = detect and (self.palms == 'always' or (self.palms == 'auto' and not any(hands_per)))
            taken = [keypoint_box(lm.keypoints) for hp in hands_per for lm in hp.values()]
            free = self._free_hand_landmarks(rgb, run_palms, taken, palm_rois)
            if self.static and self.hand_search and not kept and not free:
                free = self._hand_search(rgb)
            if self.hand_tta:
                settled = []
                for lm in (self._settle(rgb, lm)[0] for lm in free):
                    if all(hands_apart(lm.keypoints, q.keypoints) for q in settled):
                        settled.append(lm)
                free = settled
            if self.static and self.hand_search:
                taken_kp = [lm.keypoints for hp in hands_per for lm in hp.values()]
                free = free + self._partners(rgb, free, taken_kp)
            # a free hand near a person's free wrist is that person's
            for lm in list(free):
                for tr, hp in zip(kept, hands_per):
                    side = self._free_wrist_side(tr, hp, lm)
                    if side is not None:
                        hp[side] = lm
                        free.remove(lm)
                        break
        people = [self._person(rgb, tr, pid, hp, K, depth, depth_sigma) for tr, pid, hp in zip(kept, ids, hands_per)]
        loose = [self._make_hand(lm, lm.model_side, NO_PERSON, K, depth, depth_sigma, None) for lm in free]
        # hand ids: a person's hand keeps one id per (person, side); hands on their own are tracked by box
        for p in people:
            for side, h in p.hands.items():
                key = (p.person_id, side)
                if key not in self._hand_ids:
                    self._hand_ids[key] = self.hand_tracker.new_id()
                h.hand_id = self._hand_ids[key]
        for h, hid in zip(loose, self.hand_tracker.update([keypoint_box(h.keypoints) for h in loose])):
            h.hand_id = hid
        self.loose_hands = loose
        return people

    def _person_pass(self, rgb: np.ndarray, tr: _Track, rois: List[Roi], spare: list = ()) -> Optional[_Track]:
        """The landmark pass of one tracked or detected person (on a worker): ``tr`` with its landmarks,
        or None when no region holds a person. ``spare``: [(region, face box)] of the person's other
        detections, tried in turn only when ``rois`` give nothing; a pose from one counts only if its
        head is where that detection saw it (:func:`_head_where_seen`), it is run once more on the region
        of its own landmarks (as ``pose_refine`` does for every new person), and its score is SPARE_DOUBT
        x the mean visibility (less certain than a person its best detection holds)."""
        lm = None
        for roi in rois:                 # a region from a cut tile, then the refocused one (see _detect)
            cand = self._pose_pass(rgb, roi)
            if cand is not None and (lm is None or _more_of_the_body(cand, lm)):
                lm, tr.roi = cand, roi
        doubt = 1.0
        for roi, fbox in (spare if lm is None else ()):
            cand = self._pose_pass(rgb, roi)
            if cand is not None and _head_where_seen(cand, fbox):
                lm, tr.roi, doubt = cand, roi, SPARE_DOUBT
                break
        if lm is None:
            return None
        if (self.pose_refine or doubt < 1.0) and tr.age == 0:
            # a new person: once more on the region of its own landmarks (as tracking would)
            r2 = roi_from_alignment(lm.aux[0], lm.aux[1])
            lm2 = self._pose_pass(rgb, r2) if r2 is not None else None
            lm = lm2 if lm2 is not None else lm
        tr.lm = lm
        tr.score = doubt * float(np.mean(lm.visibility[:25]))
        return tr

    def _free_wrist_side(self, tr: _Track, hp: dict, lm) -> Optional[str]:
        size = float(np.ptp(lm.keypoints, axis=0).max())
        best, side = None, None
        for s in SIDES:
            iw = WRIST_POINTS[s][0]
            if s in hp or tr.lm.visibility[iw] < 0.1:
                continue
            d = float(np.linalg.norm(lm.keypoints[0] - tr.lm.keypoints[iw]))
            if d <= size and (best is None or d < best):
                best, side = d, s
        return side

    def _make_hand(self, lm, side, pid, K, depth, depth_sigma, anchor) -> Hand:
        sig = pixel_sigma(lm.keypoints, np.ones(21), rel=0.03)
        xyz, cov, source = np.full((21, 3), np.nan), np.full((21, 3, 3), np.nan), np.zeros(21, np.uint8)
        if K is not None:
            xyz, cov, source = lift_part(lm.keypoints, sig, K, depth, anchor, self.max_depth_offset * 0.5,
                                         depth_sigma, lm.world, root=0)
        return Hand(side, lm.keypoints, sig, xyz, cov, source, 1.0, pid, -1, lm.world)

    def _person(self, rgb, tr: _Track, pid: int, hp: dict, K, depth, depth_sigma) -> Person:
        lm = tr.lm
        n = len(lm.keypoints)
        if K is not None:
            xyz, cov, source, sig = lift_keypoints(lm.keypoints, lm.visibility, K, depth, lm.world,
                                                   self.max_depth_offset, depth_sigma)
        else:
            xyz, cov, source = np.full((n, 3), np.nan), np.full((n, 3, 3), np.nan), np.zeros(n, np.uint8)
            sig = pixel_sigma(lm.keypoints, lm.visibility)
        p = Person(pid, lm.keypoints, lm.visibility, sig, xyz, cov, source, tr.score, world=lm.world)
        for side, h in hp.items():
            anchor = xyz[WRIST_POINTS[side][0]] if K is not None else None
            p.hands[side] = self._make_hand(h, side, pid, K, depth, depth_sigma, anchor)
        if self.face_model is not None:
            self._face(rgb, p, K, depth, depth_sigma)
        return p

    def _face(self, rgb, p: Person, K, depth, depth_sigma) -> None:
        box = face_box(p.keypoints, p.visibility)
        if box is None:
            return
        import dlib
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            return
        f68 = self.face_model.landmarks(rgb, dlib.rectangle(x0, y0, x1, y1))
        sig = np.full(68, 0.04 * (x1 - x0))
        p.face68, p.face_sigma_px = f68, sig
        if K is not None:
            anchor = p.xyz[0]
            p.face_xyz, p.face_cov, p.face_source = lift_part(f68, sig, K, depth, anchor, 0.25, depth_sigma)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for g in [self.detector, self.landmarker, self.hand_landmarker, self.palm_detector] + self._pose_extra \
                + self._hand_extra:
            if g is not None:
                g.close()


def face_box(kp33: np.ndarray, vis33: np.ndarray, min_visibility: float = 0.5) -> Optional[np.ndarray]:
    """Square face box (x0, y0, x1, y1) in dlib's framing (brows to chin) from BlazePose's eyes
    (2, 5) and mouth corners (9, 10): centre 0.45 of the way from the eyes to the mouth, side the
    larger of 2.2 x eyes-to-mouth and 2.5 x the eye distance. None if those points are not seen."""
    pts = [2, 5, 9, 10]
    if np.min(vis33[pts]) < min_visibility or not np.all(np.isfinite(kp33[pts])):
        return None
    e, m = kp33[[2, 5]].mean(0), kp33[[9, 10]].mean(0)
    side = max(2.2 * np.linalg.norm(m - e), 2.5 * np.linalg.norm(kp33[2] - kp33[5]))
    if side < 8:
        return None
    c = e + 0.45 * (m - e)
    return np.r_[c - side / 2, c + side / 2]


def crop_box(shape, bbox_xywh, pad: float = 0.125):
    """Integer crop (x0, y0, x1, y1) around a person box, grown by ``pad`` x size per side (25% in all), clipped."""
    h, w = shape[:2]
    x, y, bw, bh = bbox_xywh
    x0, y0 = int(max(0, x - pad * bw)), int(max(0, y - pad * bh))
    x1, y1 = int(min(w, x + bw * (1 + pad))), int(min(h, y + bh * (1 + pad)))
    return x0, y0, x1, y1


def coco17_in_box(backend, rgb: np.ndarray, bbox_xywh, pad: float = 0.125):
    """Top-down single person (the reference protocol): run a single-person backend
    (:mod:`depthmarks_ros.core.body.backends`) on the padded box crop.

    Returns (keypoints (17, 2) px in the full image, visibility (17,), score) or None.
    """
    x0, y0, x1, y1 = crop_box(rgb.shape, bbox_xywh, pad)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    res = backend.process(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    if not res:
        return None
    i = BLAZEPOSE_TO_COCO17
    return res[0].keypoints[i] + (x0, y0), res[0].visibility[i], res[0].score
