"""Body, several people: detection without boxes, NMS, tracking ids, hands and face attached to people,
COCO-WholeBody layout, region rules, OKS-AP, the batch command on images and a video.

Images are made here: copies of skimage's astronaut composed on a grey canvas. No bundled image
shows a hand the hand model can find, so the hand stage is driven by a stand-in hand landmarker
(a 21-point hand drawn in the region it is given) where the test is about what the pipeline does
with hands (attachment, sides, ids, 3D, layout); the real models run in every other stage.
"""
import json

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17
from depthmarks_ros.core.body.lifting3d import SOURCE_DEPTH
from depthmarks_ros.core.body.metrics import oks_ap
from depthmarks_ros.core.body.mp_graphs import Detection, HandLandmarks
from depthmarks_ros.core.body.pipeline import NO_PERSON, BodyPoseEstimator, face_box
from depthmarks_ros.core.body.roi import (Roi, alignment_rotation, box_iou, hand_roi_from_landmarks,
                                          hand_roi_from_palm, roi_from_alignment)
from depthmarks_ros.core.body.wholebody import FACE, LEFT_HAND, RIGHT_HAND, wholebody_arrays

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
SLOT = 213


def astronaut(size):
    from skimage import data
    return cv2.resize(data.astronaut(), (size, size))


def canvas_with(slots, size=SLOT, shape=(480, 640), top=140):
    """Grey canvas with an astronaut of ``size`` px at each x offset in ``slots``."""
    img = np.full(shape + (3,), 200, np.uint8)
    a = astronaut(size)
    for x in slots:
        x0, x1 = max(0, x), min(shape[1], x + size)
        img[top:top + size, x0:x1] = a[:, x0 - x:x1 - x]
    return img


@pytest.fixture(scope='module')
def three():
    return canvas_with([0, SLOT, 2 * SLOT])


def nose_x(people):
    return sorted(p.coco17()[0][0][0] for p in people)


def test_three_people_found_without_boxes(three):
    est = BodyPoseEstimator(static=True, hands=False, detect_tiles=2)   # at 213 px the whole image alone misses one
    people = est.process(three, K)
    assert len(people) == 3 and len({p.person_id for p in people}) == 3
    # one person per slot: each nose inside its astronaut's face region
    for slot, x in zip(range(3), nose_x(people)):
        assert slot * SLOT + 60 < x < slot * SLOT + 160
    est.close()


def test_tiles_do_not_duplicate_a_person():
    """One large person is seen by the whole-image detector and by several tiles: NMS keeps one."""
    img = np.full((480, 640, 3), 200, np.uint8)
    img[:, 80:560] = astronaut(480)
    est = BodyPoseEstimator(static=True, hands=False, detect_tiles=4)
    assert len(est.process(img, K)) == 1
    est.close()


def test_tracking_keeps_ids_detects_every_nth_frame_and_never_reuses_ids(three):
    est = BodyPoseEstimator(static=False, hands=False, redetect_every=5, detect_tiles=2)
    slot_ids = {}
    for i in range(15):                                       # the group walks 3 px per frame
        shifted = np.roll(three, 3 * i, axis=1)
        shifted[:, :3 * i] = 200
        people = est.process(shifted, K)
        assert len(people) >= 2
        for p in people:                                      # a person's id never changes
            slot = int((p.coco17()[0][0][0] - 3 * i) // SLOT)
            assert slot_ids.setdefault(slot, p.person_id) == p.person_id
    assert len(slot_ids) == 3 and len(set(slot_ids.values())) == 3
    assert est.detector_runs == 3                             # frames 0, 5, 10; tracked regions in between
    seen = set(slot_ids.values())
    for _ in range(12):                                       # everybody leaves for longer than max_missed
        assert est.process(np.full((480, 640, 3), 200, np.uint8), K) == []
    people = []
    for _ in range(5):
        people = est.process(three, K)
    assert len(people) >= 2 and not ({p.person_id for p in people} & seen)
    est.close()


def test_twenty_people_and_a_person_cut_by_the_border():
    grid = np.full((480, 640, 3), 200, np.uint8)
    a = astronaut(120)
    for r in range(4):
        for c in range(5):
            grid[r * 120:(r + 1) * 120, c * 128 + 4:c * 128 + 124] = a
    est = BodyPoseEstimator(static=True, hands=True, max_people=20, detect_tiles=4)
    people = est.process(grid, K)
    assert len(people) <= 20 and len({p.person_id for p in people}) == len(people)
    assert all(p.keypoints.shape == (33, 2) and np.all(np.isfinite(p.keypoints)) for p in people)
    est.max_people = 3
    assert len(est.process(grid, K)) <= 3
    cut = canvas_with([-120], size=300, top=100)               # 40% of the person left of the image
    people = est.process(cut, K, np.full((480, 640), 2.0, np.float32))
    for p in people:
        off = p.keypoints[:, 0] < 0
        assert np.all(p.source[off] != SOURCE_DEPTH)           # no depth is read outside the image
    est.close()


def test_bad_inputs_are_clear():
    est = BodyPoseEstimator(static=True, hands=False)
    with pytest.raises(ValueError, match='depth 320x240 is not the image size 640x480'):
        est.process(np.zeros((480, 640, 3), np.uint8), K, np.ones((240, 320), np.float32))
    with pytest.raises(ValueError, match='RGB image'):
        est.process(np.zeros((480, 640), np.uint8), K)
    assert est.process(np.zeros((480, 640, 3), np.uint8), K) == []
    with pytest.raises(ValueError, match='palms'):
        BodyPoseEstimator(palms='sometimes')
    est.close()


# -- hands -------------------------------------------------------------------------------------
def drawn_hand(roi: Roi) -> np.ndarray:
    """21 points of an open hand filling the region: wrist at the bottom, fingers towards 'up'."""
    local = np.zeros((21, 2))
    local[0] = (0, 0.35)
    for f, x in enumerate((-0.25, -0.1, 0.0, 0.1, 0.2)):
        for k in range(4):
            local[1 + 4 * f + k] = (x * (1 + 0.2 * k), 0.15 - 0.12 * k)
    c, s = np.cos(roi.rotation), np.sin(roi.rotation)
    R = np.array([[c, -s], [s, c]])
    return (local * roi.size * 0.8) @ R.T + (roi.cx, roi.cy)


class StandInHands:
    """A hand landmarker that finds a hand in every region within ``zone`` (x0, y0, x1, y1)."""

    def __init__(self, zones):
        self.zones, self.calls = zones, []

    def __call__(self, rgb, roi):
        self.calls.append(roi)
        if not any(z[0] <= roi.cx <= z[2] and z[1] <= roi.cy <= z[3] for z in self.zones):
            return None
        return HandLandmarks(drawn_hand(roi), np.zeros((21, 3)) + np.arange(21)[:, None] * 0.01, 'right', 0.9)

    def close(self):
        pass


def test_hands_attach_to_the_wrist_they_belong_to(three):
    est = BodyPoseEstimator(static=False, hands=True, palms='never', workers=1, detect_tiles=2, redetect_every=1,
                            min_wrist_visibility=0.0)   # the astronaut's wrists are hidden: ask at every wrist
    for _ in range(4):                                         # the tiles in turn: all three found
        est.process(three, K)
    # hands wherever a wrist region is asked for: each attaches to its own body's side
    est.hand_landmarker.close()
    est.hand_landmarker = StandInHands([(0, 0, 640, 480)])
    depth = np.full((480, 640), 2.0, np.float32)
    first = est.process(three, K, depth)
    assert len(first) == 3
    for p in first:
        for side, h in p.hands.items():
            wrist = p.keypoints[15 if side == 'left' else 16]
            assert h.person_id == p.person_id and h.side == side
            assert np.linalg.norm(h.keypoints[0] - wrist) < np.ptp(h.keypoints, axis=0).max()
            on = (h.keypoints[:, 0] >= 0) & (h.keypoints[:, 0] < 640) & (h.keypoints[:, 1] < 480)
            assert np.all(h.source[on] == SOURCE_DEPTH) and np.allclose(h.xyz[on, 2], 2.0)
    hands = {h.hand_id: (p.person_id, s) for p in first for s, h in p.hands.items()}
    assert hands and len(hands) == sum(len(p.hands) for p in first)
    second = est.process(three, K, depth)                      # tracked: same hand ids, same owners
    assert {h.hand_id: (p.person_id, s) for p in second for s, h in p.hands.items()} == hands
    # whole-body layout: the hands in their slots, 133 points
    p = next(p for p in second if p.hands)
    a = wholebody_arrays(p)
    assert a['uv'].shape == (133, 2) and np.allclose(a['uv'][0:17], p.keypoints[BLAZEPOSE_TO_COCO17])
    for side, sl in (('left', LEFT_HAND), ('right', RIGHT_HAND)):
        if side in p.hands:
            assert np.allclose(a['uv'][sl], p.hands[side].keypoints) and np.all(a['score'][sl] > 0)
        else:
            assert np.all(np.isnan(a['uv'][sl])) and np.all(a['score'][sl] == 0)
    assert np.all(np.isnan(a['uv'][FACE]))                     # face off in this estimator
    est.close()


def test_hands_without_a_body_come_from_the_palm_detector():
    est = BodyPoseEstimator(static=False, hands=True, palms='auto', workers=1)
    assert est.process(np.full((480, 640, 3), 200, np.uint8), K) == [] and est.loose_hands == []
    class StandInPalms:
        def __call__(self, rgb):
            return [Detection(0.9, np.array([300.0, 200, 340, 240]),
                              np.array([[320.0, 240], [310, 215], [320, 205], [330, 210], [340, 220], [300, 230],
                                        [345, 235]]))]

        def close(self):
            pass

    est.palm_detector.close()
    est.palm_detector = StandInPalms()
    est.hand_landmarker.close()
    est.hand_landmarker = StandInHands([(250, 100, 400, 300)])
    est.process(np.full((480, 640, 3), 200, np.uint8), K, np.full((480, 640), 1.0, np.float32))
    assert len(est.loose_hands) == 1
    h = est.loose_hands[0]
    assert h.person_id == NO_PERSON and h.side == 'right' and np.all(h.source == SOURCE_DEPTH)
    hid = h.hand_id
    est.process(np.full((480, 640, 3), 200, np.uint8), K)     # no depth: the model's metric hand, no anchor
    assert len(est.loose_hands) == 1 and est.loose_hands[0].hand_id == hid
    assert np.all(est.loose_hands[0].source == 0)             # without depth or an anchor: no 3D
    est.close()


def test_face_68_per_person(three):
    est = BodyPoseEstimator(static=True, hands=False, face=True, detect_tiles=2)
    people = est.process(three, K, np.full((480, 640), 1.5, np.float32))
    assert len(people) == 3
    for p in people:
        box = face_box(p.keypoints, p.visibility)
        assert box is not None and p.face68.shape == (68, 2)
        inside = ((p.face68[:, 0] > box[0] - 5) & (p.face68[:, 0] < box[2] + 5)
                  & (p.face68[:, 1] > box[1] - 5) & (p.face68[:, 1] < box[3] + 5))
        assert inside.mean() > 0.9                                 # the 68 points lie on the face
        assert abs(p.face68[30, 0] - p.keypoints[0, 0]) < 0.15 * (box[2] - box[0])  # nose tip on the nose
        assert np.mean(p.face_source == SOURCE_DEPTH) > 0.9
        a = wholebody_arrays(p)
        assert np.allclose(a['uv'][FACE], p.face68)
    est.close()


# -- regions, metrics --------------------------------------------------------------------------
def test_region_rules():
    assert alignment_rotation(np.array([0.0, 0]), np.array([0.0, -1])) == pytest.approx(0.0)      # up: upright
    assert alignment_rotation(np.array([0.0, 0]), np.array([1.0, 0])) == pytest.approx(np.pi / 2)  # right
    # a face's eye line (face_roi's target: horizontal), rising to the right by 30 deg
    assert alignment_rotation(np.array([0.0, 0]), np.array([1.0, 0]), 0.0) == pytest.approx(0.0)
    assert alignment_rotation(np.array([0.0, 0]), np.array([np.sqrt(3), -1.0]), 0.0) == pytest.approx(-np.pi / 6)
    r = roi_from_alignment(np.array([100.0, 200]), np.array([100.0, 120]))
    assert (r.cx, r.cy, r.size, r.rotation) == pytest.approx((100, 200, 2 * 80 * 1.25, 0.0))
    # a hand pointing right: the region is centred towards the fingers and covers the hand
    kp = drawn_hand(Roi(300, 200, 100, np.pi / 2))
    hr = hand_roi_from_landmarks(kp)
    assert hr.rotation == pytest.approx(np.pi / 2, abs=0.1) and hr.cx > kp[0, 0]
    box = hr.box()
    assert np.all(kp[:, 0] > box[0]) and np.all(kp[:, 0] < box[2])
    pr = hand_roi_from_palm(np.array([100.0, 100, 140, 140]), np.array([[120.0, 140], [0, 0], [120, 110]]))
    assert pr.rotation == pytest.approx(0.0) and pr.cy < 120 and pr.size == pytest.approx(40 * 2.6)
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10])) == pytest.approx(1 / 3)


def test_oks_ap():
    rng = np.random.default_rng(0)
    gts = [{'keypoints': rng.uniform(0, 100, (17, 2)) + 100 * i, 'labelled': np.ones(17, bool),
            'bbox': np.array([100.0 * i, 100 * i, 100, 100]), 'area': 5000.0, 'ignore': False} for i in range(3)]
    perfect = [(g['keypoints'], 0.9) for g in gts]
    r = oks_ap([(perfect, gts)])
    assert r['AP'] == pytest.approx(1.0) and r['found'] == 3 and r['people'] == 3
    r = oks_ap([(perfect[:2], gts)])                            # one person missed: recall 2/3
    assert r['found'] == 2 and r['AP'] == pytest.approx(np.mean(np.linspace(0, 1, 101) <= 2 / 3 + 1e-9), abs=0.01)
    junk = [(gts[0]['keypoints'] + 400, 0.99)]                 # a confident false positive first
    assert oks_ap([(junk + perfect, gts)])['AP'] < 0.9
    ign = gts + [{'keypoints': np.zeros((17, 2)), 'labelled': np.zeros(17, bool),
                  'bbox': np.array([500.0, 500, 50, 50]), 'area': 2500.0, 'ignore': True}]
    on_ignored = [(np.full((17, 2), 525.0), 0.99)]             # a detection on an ignored person: not a false positive
    assert oks_ap([(on_ignored + perfect, ign)])['AP'] == pytest.approx(1.0)


def test_body_command_whole_body_and_video(tmp_path, three):
    from depthmarks_ros.cli.main import main
    cv2.imwrite(str(tmp_path / '000000000005.png'), cv2.cvtColor(three, cv2.COLOR_RGB2BGR))
    assert main(['body', str(tmp_path / '000000000005.png'), '-o', str(tmp_path / 'r.json'),
                 '--wholebody', str(tmp_path / 'w.json'), '--tiles', '2', '--no-hands']) == 0
    res, whole = json.loads((tmp_path / 'r.json').read_text()), json.loads((tmp_path / 'w.json').read_text())
    assert len(res) == 3 and len(whole) == 3 and all(len(w['keypoints']) == 133 * 3 for w in whole)
    for r, w in zip(res, whole):
        assert w['keypoints'][:51] == pytest.approx(r['keypoints'], abs=0.02)   # body 17 first, same points
        face = np.array(w['keypoints']).reshape(133, 3)[23:91]
        assert np.all(face[:, 2] > 0)                                          # face 68 found (dlib)
    video = str(tmp_path / 'walk.avi')
    out = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 10, (640, 480))
    for i in range(4):
        out.write(cv2.cvtColor(np.roll(three, 4 * i, axis=1), cv2.COLOR_RGB2BGR))
    out.release()
    assert main(['body', video, '-o', str(tmp_path / 'v.json'), '--no-hands', '--no-face']) == 0
    res = json.loads((tmp_path / 'v.json').read_text())
    frames = {}
    for r in res:
        frames.setdefault(r['image_id'], set()).add(r['track_id'])
    assert sorted(frames) == [0, 1, 2, 3] and all(ids == frames[0] for ids in frames.values())


def test_a_tile_that_cuts_a_body_is_refocused():
    """A person whose body a tile cuts (below its face) is marked truncated there and not in the whole
    image; the detector then looks again on a view around its face and finds the same face there."""
    from depthmarks_ros.core.body.pipeline import same_face
    img = canvas_with([200], size=260, top=100)
    est = BodyPoseEstimator(static=True, hands=False)
    whole = est._run_detector(img, (0, 0, 640, 480))
    assert whole and not any(d[3] for d in whole)
    cut = est._run_detector(img, (150, 0, 500, 230))          # the tile ends at the astronaut's chest
    assert cut and all(d[3] for d in cut)
    best = max(cut, key=lambda d: d[0])
    calls = est.detector_calls
    again = est._refocus(img, best[2])
    assert again is not None and same_face(again[2], best[2]) and est.detector_calls == calls + 1
    est.close()


def test_an_image_with_no_hand_found_is_searched_as_a_close_up():
    """Images only (static): neither a wrist nor the palm detector gave a hand, so the hand model runs
    on the whole image turned four ways; the most certain hand (handedness score) is kept."""
    class TurnedHand:
        def __init__(self):
            self.calls = []

        def __call__(self, rgb, roi):
            self.calls.append(roi)
            for rot, score in ((np.pi / 2, 0.95), (0.0, 0.6)):   # a hand at 90 deg, a doubtful one upright
                if abs(roi.rotation - rot) < 0.3:
                    return HandLandmarks(drawn_hand(roi), None, 'left', score)
            return None

        def close(self):
            pass

    class NoPalms:
        def __call__(self, rgb):
            return []

        def close(self):
            pass

    img = np.full((240, 240, 3), 120, np.uint8)
    for static, expected in ((True, 1), (False, 0)):
        est = BodyPoseEstimator(static=static, hands=True, palms='auto', workers=1)
        est.palm_detector.close()
        est.hand_landmarker.close()
        est.palm_detector, est.hand_landmarker = NoPalms(), TurnedHand()
        assert est.process(img) == [] and len(est.loose_hands) == expected
        if static:
            h = est.loose_hands[0]
            assert h.side == 'left' and h.person_id == NO_PERSON
            d = h.keypoints[9] - h.keypoints[0]             # wrist -> middle finger base points along +x (90 deg)
            assert d[0] > abs(d[1])
            assert {round(r.rotation, 2) for r in est.hand_landmarker.calls} >= {0.0, 1.57, 3.14, -1.57}
        else:
            assert est.hand_landmarker.calls == []           # tracking (video, node): no search
        est.close()


def test_workers_give_the_same_people_as_one_thread(three):
    """Landmark passes on two threads (the node's default) or one after the other: the same people, ids
    and keypoints, frame after frame."""
    runs = []
    for workers in (1, 2):
        est = BodyPoseEstimator(static=False, hands=True, detect_tiles=2, workers=workers)
        frames = []
        for i in range(6):
            people = est.process(np.roll(three, 2 * i, axis=1), K)
            frames.append([(p.person_id, p.keypoints.copy(), sorted(p.hands)) for p in people])
        runs.append(frames)
        est.close()
    assert all(len(f) >= 2 for f in runs[0])        # several people per frame: the pool did run passes
    for a, b in zip(*runs):
        assert [p[0] for p in a] == [p[0] for p in b] and [p[2] for p in a] == [p[2] for p in b]
        assert all(np.allclose(pa[1], pb[1], atol=1e-3) for pa, pb in zip(a, b))


def test_hand_ids_are_never_reused_within_a_run():
    """A hand on its own that leaves for longer than the tracker keeps it, then comes back, gets a new
    id; ids of hands on their own and of people's hands come from one counter."""
    class TogglePalms:
        on = True

        def __call__(self, rgb):
            if not self.on:
                return []
            return [Detection(0.9, np.array([300.0, 200, 340, 240]),
                              np.array([[320.0, 240], [310, 215], [320, 205], [330, 210], [340, 220], [300, 230],
                                        [345, 235]]))]

        def close(self):
            pass

    est = BodyPoseEstimator(static=False, hands=True, palms='auto', workers=1, redetect_every=1)
    est.palm_detector.close()
    est.hand_landmarker.close()
    palms, hands = TogglePalms(), StandInHands([(250, 100, 400, 300)])
    est.palm_detector, est.hand_landmarker = palms, hands
    grey = np.full((480, 640, 3), 200, np.uint8)
    est.process(grey, K)
    first = est.loose_hands[0].hand_id
    palms.on = False
    hands.zones = []                                           # the hand leaves
    for _ in range(12):
        est.process(grey, K)
        assert est.loose_hands == []
    palms.on, hands.zones = True, [(250, 100, 400, 300)]       # and comes back
    est.process(grey, K)
    assert len(est.loose_hands) == 1 and est.loose_hands[0].hand_id != first
    assert est.hand_tracker.new_id() > est.loose_hands[0].hand_id   # one counter for every hand id
    est.close()


def test_hand_consensus_is_the_median_of_the_turned_passes_and_their_spread():
    from depthmarks_ros.core.body.pipeline import hand_consensus, hands_apart
    base = drawn_hand(Roi(200, 200, 100, 0.0))
    first = HandLandmarks(base, None, 'left', 0.8)
    passes = [HandLandmarks(base + d, None, 'right', 0.5) for d in (0.0, 1.0, -1.0)]
    passes.append(HandLandmarks(base + 40.0, None, 'right', 0.5))           # one pass off on another spot
    passes.append(HandLandmarks(base, None, 'right', 0.5))
    hand, spread = hand_consensus(passes, first)
    assert np.allclose(hand.keypoints, base) and spread < 0.05               # the median ignores the one off
    assert hand.model_side == 'left' and hand.side_score == 0.8              # side and score of the hand refined
    _, wide = hand_consensus([HandLandmarks(base + 8.0 * i, None, 'left', 0.5) for i in range(5)], first)
    assert wide > spread
    assert hand_consensus(passes[:2], first) == (first, float('inf'))      # too few passes: the hand as it was
    assert not hands_apart(base, base + 2.0) and hands_apart(base, base + 60.0)


class PairOfHands:
    """Hand A (upright, 'right') in every region nearer to it, hand B ('left', ``b_side``) in regions nearer
    to B and in the region at A turned by -90 deg (where only a turned search meets it)."""

    def __init__(self, b_side='left', b_shift=90.0):
        self.a, self.b = drawn_hand(Roi(200, 240, 100, 0.0)), drawn_hand(Roi(200 + b_shift, 240, 100, 0.0))
        self.b_side, self.calls = b_side, []

    def __call__(self, rgb, roi):
        self.calls.append(roi)
        c = np.array([roi.cx, roi.cy])
        turned = abs((roi.rotation + np.pi / 2 + np.pi) % (2 * np.pi) - np.pi) < 0.1
        nearer_b = np.linalg.norm(c - self.b.mean(0)) < np.linalg.norm(c - self.a.mean(0))
        if turned or nearer_b:
            return HandLandmarks(self.b.copy(), None, self.b_side, 0.9)
        return HandLandmarks(self.a.copy(), None, 'right', 0.95)

    def close(self):
        pass


class OnePalm:
    def __init__(self, box):
        self.box = np.asarray(box, float)

    def __call__(self, rgb):
        x0, y0, x1, y1 = self.box
        cx = (x0 + x1) / 2
        return [Detection(0.9, self.box, np.array([[cx, y1], [cx - 10, y0], [cx, y0], [cx + 10, y0]]))]

    def close(self):
        pass


def test_images_look_for_the_other_hand_of_a_hand_on_its_own():
    """Images (static): a hand on its own (from the palm detector) gets a search for its partner on its
    own region turned in 45-deg steps; a hand of the other side apart from it is added. The same side,
    or a 'partner' that is the same hand, adds nothing; tracking (video) does not search."""
    img = np.full((480, 640, 3), 120, np.uint8)
    for b_side, b_shift, static, expected in (('left', 90.0, True, 2), ('right', 90.0, True, 1),
                                              ('left', 2.0, True, 1), ('left', 90.0, False, 1)):
        est = BodyPoseEstimator(static=static, hands=True, palms='auto', hand_tta=True, workers=1)
        est.palm_detector.close()
        est.hand_landmarker.close()
        est.palm_detector, est.hand_landmarker = OnePalm((185, 215, 215, 260)), PairOfHands(b_side, b_shift)
        assert est.process(img) == []
        hands = est.loose_hands
        assert len(hands) == expected, (b_side, b_shift, static)
        assert np.allclose(hands[0].keypoints, est.hand_landmarker.a)
        if expected == 2:
            assert {h.side for h in hands} == {'left', 'right'} and np.allclose(hands[1].keypoints, est.hand_landmarker.b)
            assert len({h.hand_id for h in hands}) == 2
        est.close()


def test_images_settle_a_wrist_hand_by_turned_passes_and_keep_the_steadier_candidate():
    """Images with hand_tta: at a wrist, the hand from the body region and the hand from a palm region near
    it are each run on their region turned by HAND_TTA_TURNS; the one that comes back the same from every
    turn (the palm's here; the body region's hand turns with its region) is kept."""
    from types import SimpleNamespace
    from depthmarks_ros.core.body.pipeline import HAND_TTA_TURNS, _Track
    steady = drawn_hand(Roi(310, 330, 80, 0.0))          # wrist at (310, 352), near the body's (300, 352)

    class Hands:
        def __call__(self, rgb, roi):
            if roi.cx > 305:                                  # the palm's region and its own: one fixed hand
                return HandLandmarks(steady.copy(), None, 'left', 0.9)
            return HandLandmarks(drawn_hand(Roi(roi.cx, roi.cy, 80, roi.rotation)), None, 'left', 0.9)

        def close(self):
            pass

    kp = np.zeros((33, 2))
    kp[15], kp[17], kp[19] = (300, 352), (290, 330), (300, 328)       # left wrist, pinky, index
    kp[16], kp[18], kp[20] = (100, 352), (90, 330), (100, 328)
    vis = np.zeros(33)
    vis[[15, 17, 19]] = 1.0
    tr = _Track(Roi(300, 300, 200), lm=SimpleNamespace(keypoints=kp, visibility=vis))
    palm_roi = [Roi(312, 320, 120, 0.0)]
    img = np.full((480, 640, 3), 120, np.uint8)
    for tta in (True, False):
        est = BodyPoseEstimator(static=True, hands=True, hand_tta=tta, workers=1)
        est.hand_landmarker.close()
        est.hand_landmarker = Hands()
        calls = est.landmark_passes
        out = est._hands_of(img, tr, palm_roi)
        assert set(out) == {'left'}
        if tta:
            assert np.allclose(out['left'].keypoints, steady)
            assert est.landmark_passes - calls >= 2 * len(HAND_TTA_TURNS)
        else:                                                 # without: the first hand at the wrist, one region
            assert not np.allclose(out['left'].keypoints, steady)
        est.close()


def test_a_person_whose_best_detection_holds_no_pose_is_tried_on_its_other_detections():
    """The detections of one face are one person; when the best one's region gives no pose (an occluded
    person: the region lands on the one in front), its other detections' regions are tried. Such a pose
    counts only with its nose in that detection's face box and its head above its hips, is run once more
    on the region of its own landmarks, and scores SPARE_DOUBT x its visibility."""
    from depthmarks_ros.core.body.pipeline import SPARE_DOUBT
    img = canvas_with([200], size=260, top=100)
    est = BodyPoseEstimator(static=True, hands=False, workers=1)
    real = max(est._run_detector(img, (0, 0, 640, 480)), key=lambda d: d[0])
    empty = Roi(600, 40, 60, 0.0)                           # a region on the grey canvas: no person there
    for face, expected in ((real[2], 1), (real[2] + 150, 0)):
        est._run_detector = lambda rgb, view, face=face: [(0.9, empty, face, False), (0.6, real[1], face, False)]
        passes = est.landmark_passes
        people = est.process(img, K)
        assert len(people) == expected
        # the empty region, the spare one, and (a pose found there) once more on its own landmarks' region
        assert est.landmark_passes - passes == 2 + expected
        if expected:
            p = people[0]
            assert p.score == pytest.approx(SPARE_DOUBT * np.mean(p.visibility[:25]))
            assert 200 < p.keypoints[0, 0] < 460                # the astronaut's nose
    est.close()
    # the rule itself: nose in the face box and above the hips
    from types import SimpleNamespace
    from depthmarks_ros.core.body.pipeline import _head_where_seen
    kp = np.zeros((33, 2))
    kp[0], kp[23], kp[24] = (120, 110), (110, 200), (130, 200)
    fbox = np.array([100.0, 90, 140, 130])
    assert _head_where_seen(SimpleNamespace(keypoints=kp), fbox)
    assert not _head_where_seen(SimpleNamespace(keypoints=kp), fbox + 60)              # nose elsewhere
    upside_down = kp.copy()
    upside_down[[23, 24], 1] = 20
    assert not _head_where_seen(SimpleNamespace(keypoints=upside_down), fbox)        # head below the hips


def test_a_tracked_persons_detection_is_neither_refocused_nor_passed():
    """A detection group of a tracked person's face is dropped before the refocus detector pass."""
    est = BodyPoseEstimator(static=False, hands=False, workers=1)
    face = np.array([300.0, 100, 340, 140])
    views = []
    est._run_detector = lambda rgb, view: views.append(view) or [(0.9, Roi(320, 200, 200, 0.0), face, True)]
    img = np.full((480, 640, 3), 200, np.uint8)
    out = est._detect(img)
    assert len(out) == 1 and len(views) == 2                  # the whole image, then the refocus around the face
    views.clear()
    assert est._detect(img, [face + 3]) == [] and len(views) == 1   # tracked: the whole image only
    est.close()
