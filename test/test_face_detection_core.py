"""The face detector cascade's every-view search on independent images (core/face/detection.py
FaceDetector.detect_all, used by the mesh / hybrid / cascade-dlib backends with ``all_views``):
views merged, known faces left out, views not run twice, single-view faces the mesh cannot follow
dropped, bad input. No /work/shared/data."""
import numpy as np
import pytest

from depthmarks_ros.core.face.backends import MIN_NEIGHBOUR_CORRELATION, neighbour_correlation
from depthmarks_ros.core.face.detection import Detection, FaceDetector
from depthmarks_ros.core.face.pipeline import FaceLandmarker
from depthmarks_ros.testing.scenes import FACE_K

A = [100, 100, 200, 200]        # found by the first view (ends the first-hit cascade)
B = [400, 150, 480, 230]        # only two late views find it (padded, rotated)
C = [300, 300, 340, 340]        # one view alone (often hair, a hand or a flower)


def _fake_views(det, table):
    """Replace the detector's views by canned detections (view name -> [(box, score[, keypoints])])."""
    calls = []

    def view(name, which, view, rgb):
        calls.append(name)
        dets = [Detection(np.array(e[0], np.float64), e[1], name,
                          keypoints=np.array(e[2], np.float64) if len(e) > 2 else None) for e in table.get(name, [])]
        det._seen[name] = dets
        return dets
    det._view = view
    return calls


@pytest.fixture(scope='module')
def detector():
    det = FaceDetector(fallback_hog=False)
    yield det
    det.close()


def test_detect_all_adds_faces_later_views_find_beside_a_known_one():
    det = FaceDetector.__new__(FaceDetector)            # the views are canned: no models needed
    det.stages, det.max_faces, det._seen, det._hog, det._mmod = FaceDetector.STAGES, 4, {}, None, None
    det.stage_counts = {'none': 0}
    table = {'mp_short': [(A, 0.9)], 'mp_full': [(A, 0.8)], 'mp_short_pad': [(B, 0.6)],
             'mp_short_rot+60': [([402, 148, 482, 228], 0.55)], 'mp_short_flip': [(C, 0.7)]}
    calls = _fake_views(det, table)
    first = det.detect(np.zeros((480, 640, 3), np.uint8))
    assert [d.box.tolist() for d in first] == [A] and calls == ['mp_short']     # the first-hit cascade
    more = det.detect_all(np.zeros((480, 640, 3), np.uint8), [d.box for d in first], reuse=True)
    assert sorted((d.box.tolist(), d.views) for d in more) == sorted([(B, 2), (C, 1)])   # A known; B: one face, 2 views
    names = [n for n, _, _ in FaceDetector.ALL_VIEWS]
    assert sorted(calls) == sorted(names)           # every view once: mp_short reused, not run again
    calls.clear()
    assert [d.box.tolist() for d in det.detect_all(np.zeros((480, 640, 3), np.uint8), [A], min_views=2)] == [B]
    assert sorted(calls) == sorted(names)           # no reuse: every view runs
    assert det.detect_all(np.zeros((480, 640, 3), np.uint8), [A, B, [290, 290, 350, 350]]) == []


def test_hybrid_keeps_a_second_face_two_views_find_and_drops_a_single_view_one():
    """A grey image (no mesh can follow anything there): the cascade's first hit is kept as before; of
    the faces the other views find, the one two views agree on is kept, the single-view one dropped;
    without all_views only the first hit. Ids stay the same over repeated frames."""
    grey = np.full((480, 640, 3), 128, np.uint8)
    table = {'mp_short_flip': [(A, 0.7)], 'mp_short_pad': [(B, 0.6)], 'mp_short_rot-60': [(B, 0.6)],
             'mp_short_pad2': [(C, 0.9)]}
    counts = {}
    for all_views in (True, False):
        lm = FaceLandmarker('hybrid', static=True, all_views=all_views)
        _fake_views(lm.backend.mesh._detector, table)
        runs = [lm.process(grey, FACE_K) for _ in range(3)]
        counts[all_views] = len(runs[0])
        boxes = sorted(((f.bbox[0] + f.bbox[2]) / 2 for f in runs[0]))
        assert all(sorted(f.face_id for f in r) == sorted(f.face_id for f in runs[0]) for r in runs)
        if all_views:
            assert np.allclose(boxes, [150, 440], atol=40)      # A and B, not C
        lm.close()
    assert counts == {True: 2, False: 1}


def test_detect_all_on_real_pixels_and_bad_input(detector, face_image):
    """The one real face: found in most views, covering detect()'s (a spurious detection of one view
    elsewhere is dropped by the hybrid: no mesh follows it); nothing in grey, dark or tiny images."""
    first = detector.detect(face_image)
    every = [d for d in detector.detect_all(face_image, reuse=True) if d.views >= 2]
    assert len(every) == 1 and every[0].views > len(FaceDetector.ALL_VIEWS) // 2     # most views
    lm = FaceLandmarker('hybrid', static=True)
    assert len(lm.process(face_image, FACE_K)) == 1
    lm.close()
    c = (every[0].box[:2] + every[0].box[2:]) / 2
    assert first[0].box[0] < c[0] < first[0].box[2] and first[0].box[1] < c[1] < first[0].box[3]
    assert [d for d in detector.detect_all(face_image, [first[0].box]) if d.views >= 2] == []
    half_out = np.full_like(face_image, 90)
    half_out[:, :400] = face_image[:, 240:]                     # the face cut by the left edge
    lm = FaceLandmarker('hybrid', static=True, mmod=False)
    faces = lm.process(half_out, FACE_K)
    assert len(faces) == 1 and np.isfinite(faces[0].landmarks68).all()     # one face, no duplicate of it
    assert lm.process((face_image * 0.02).astype(np.uint8), FACE_K) == []  # too dark to see: nothing
    lm.close()
    for img in (np.full((480, 640, 3), 128, np.uint8), np.zeros((200, 300, 3), np.uint8),
                np.full((1, 1, 3), 90, np.uint8), np.full((8, 8, 3), 90, np.uint8), np.full((2, 300, 3), 90, np.uint8)):
        assert detector.detect_all(img) == []


def test_all_views_only_on_independent_images():
    video = FaceLandmarker('hybrid', static=False)
    still = FaceLandmarker('hybrid', static=True, all_views=False, mmod=False)
    assert not video.backend.mesh.all_views and not still.backend.mesh.all_views
    assert video.backend.mesh._detector._mmod is None and still.backend.mesh._detector._mmod is None
    video.close()
    still.close()


def test_a_single_view_false_hit_does_not_take_a_two_view_faces_place():
    """max_faces 2: the first hit A, then a better-scored single-view hit C (dropped: no mesh follows
    it) must not use the last place that the two-view face B needs."""
    grey = np.full((480, 640, 3), 128, np.uint8)
    table = {'mp_short_flip': [(A, 0.7)], 'mp_short_pad': [(B, 0.6)], 'mp_short_rot-60': [(B, 0.6)],
             'mp_short_pad2': [(C, 0.9)]}
    lm = FaceLandmarker('hybrid', static=True, max_faces=2, mmod=False)
    _fake_views(lm.backend.mesh._detector, table)
    faces = lm.process(grey, FACE_K)
    assert np.allclose(sorted((f.bbox[0] + f.bbox[2]) / 2 for f in faces), [150, 440], atol=40)
    lm.close()


def test_a_partial_box_inside_a_face_is_that_face_not_a_second_one():
    """A full-face box and a box of part of it (IoU 0.25), each seen in two views: one face, 4 views, with
    the full-face box even where the partial one scored higher (a cheek-sized box would misplace the face)."""
    det = FaceDetector.__new__(FaceDetector)
    det.stages, det.max_faces, det._seen, det._hog, det._mmod = FaceDetector.STAGES, 4, {}, None, None
    part = [150, 150, 200, 200]
    _fake_views(det, {'mp_short': [(A, 0.9)], 'mp_full': [(A, 0.8)],
                      'mp_short_flip': [(part, 0.95)], 'mp_short_pad': [(part, 0.6)]})
    found = det.detect_all(np.zeros((480, 640, 3), np.uint8))
    assert [(d.box.tolist(), d.views) for d in found] == [(A, 4)]      # the enclosing box, every view
    assert found[0].score == 0.95 and found[0].source == 'mp_short'    # with the best score of the face
    _fake_views(det, {'mp_short': [(A, 0.9)], 'mp_full': [(A, 0.8)],
                      'mp_short_flip': [(part, 0.7)], 'mp_short_pad': [(part, 0.6)], 'mp_short_half': [(B, 0.5)]})
    found = det.detect_all(np.zeros((480, 640, 3), np.uint8))
    assert [(d.box.tolist(), d.views) for d in found] == [(A, 4), (B, 1)]


def test_a_crop_mesh_landing_on_a_face_already_found_is_not_a_second_face():
    """Two detections whose crop meshes both follow the same face: one result."""
    lm = FaceLandmarker('mediapipe', static=True, mmod=False)
    mesh = lm.backend
    _fake_views(mesh._detector, {'mp_short': [(A, 0.9), ([190, 100, 290, 200], 0.8)]})
    pts = np.random.default_rng(0).uniform(110, 190, (468, 3))
    mesh._mesh_in_box = lambda rgb, box, angle=0.0: pts.copy()      # every crop finds the face in A
    faces = mesh.process(np.full((480, 640, 3), 128, np.uint8))
    assert len(faces) == 1 and np.allclose(faces[0].landmarks, pts[:, :2])
    lm.close()


def test_cascade_dlib_keeps_max_faces():
    from depthmarks_ros.core.face.backends import create_backend
    table = {'mp_short_pad': [(B, 0.6)], 'mp_short_rot-60': [(B, 0.6)],
             'mp_short_flip': [(A, 0.7)], 'mp_short_half': [(A, 0.7)]}
    for n in (1, 2):
        be = create_backend('dlib', max_faces=n, static=True, mmod=False)
        assert be._cascade.max_faces == n
        _fake_views(be._cascade, table)
        assert len(be.process(np.full((480, 640, 3), 128, np.uint8))) == n
        be.close()


class _FakeMMOD:
    """dlib's MMOD CNN replaced: records its calls, finds ``box``."""
    def __init__(self, box):
        import dlib
        self.calls, self.rect = 0, dlib.rectangle(*box)

    def __call__(self, rgb, upsample):
        from types import SimpleNamespace
        self.calls += 1
        return [SimpleNamespace(rect=self.rect, confidence=1.0)]


@pytest.mark.parametrize('backend', ['hybrid', 'dlib'])
def test_mmod_runs_only_where_no_view_finds_a_face(backend):
    """On independent images with every view, dlib's slow MMOD CNN runs after the cheap rotated views,
    only where none of them finds a face either."""
    grey = np.full((480, 640, 3), 128, np.uint8)
    lm = FaceLandmarker(backend, static=True, dlib_detector='cascade')
    det = lm.backend.mesh._detector if backend == 'hybrid' else lm.backend._cascade
    det._mmod = _FakeMMOD([300, 300, 380, 380])
    _fake_views(det, {'mp_short_rot+60': [(B, 0.6)], 'mp_short_rot-60': [(B, 0.6)]})
    faces = lm.process(grey, FACE_K)
    assert det._mmod.calls == 0 and len(faces) == 1 and abs((faces[0].bbox[0] + faces[0].bbox[2]) / 2 - 440) < 40
    _fake_views(det, {})
    faces = lm.process(grey, FACE_K)
    assert det._mmod.calls == 1 and len(faces) == 1 and abs((faces[0].bbox[0] + faces[0].bbox[2]) / 2 - 340) < 40
    lm.close()


def test_cascade_dlib_runs_its_predictor_upright_on_a_face_only_a_rotated_view_found(face_image):
    """The real face tilted by 60 deg, found (canned) only by the +60 deg views: dlib's predictor
    (trained on upright faces) runs on a crop turned upright, its points land where the upright
    face's points go under the tilt."""
    import cv2
    from depthmarks_ros.core.face.backends import create_backend
    be = create_backend('dlib', static=True, mmod=False)
    upright = be.process(face_image)
    assert len(upright) == 1
    h, w = face_image.shape[:2]
    M = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -60.0, 1.0)    # tilted; +60 makes it upright
    tilted = cv2.warpAffine(face_image, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
    truth = upright[0].landmarks68 @ M[:, :2].T + M[:, 2]
    found = be._cascade.detect(face_image)[0].box               # the detector's box, moved with the tilt
    c = M[:, :2] @ ((found[:2] + found[2:]) / 2) + M[:, 2]
    half = max(found[2] - found[0], found[3] - found[1]) / 2
    box = [c[0] - half, c[1] - half, c[0] + half, c[1] + half]

    def view(name, which, v, rgb):
        dets = [Detection(np.array(box), 0.8, name, angle=60.0)] if name.endswith('rot+60') else []
        if name == 'mp_short_rot-60':           # a second, weaker view agrees (detect_all: faces in 2+ views)
            dets = [Detection(np.array(box), 0.5, name, angle=-60.0)]
        be._cascade._seen[name] = dets
        return dets
    be._cascade._view = view
    be._cascade._hog = None
    faces = be.process(tilted)
    assert len(faces) == 1
    err = np.linalg.norm(faces[0].landmarks68 - truth, axis=1).mean()
    assert err < 0.05 * 2 * half, err
    be.close()


def _kp(box, dx=0.0):
    """Six keypoint-like points inside ``box`` (shifted by dx px)."""
    x0, y0, x1, y1 = box
    u = np.array([[0.35, 0.4], [0.65, 0.4], [0.5, 0.55], [0.5, 0.75], [0.1, 0.45], [0.9, 0.45]])
    return (u * [x1 - x0, y1 - y0] + [x0 + dx, y0]).tolist()


def test_detect_all_keeps_the_keypoints_of_every_view_of_a_face():
    """A face three views find (one of them a partial box inside it) carries the keypoints of all three,
    also where it is a known face (left out of the answer, kept in last_faces); the hybrid hands them to
    a face its mesh cannot follow, which the first-hit cascade found."""
    det = FaceDetector.__new__(FaceDetector)
    det.stages, det.max_faces, det._seen, det._hog, det._mmod = FaceDetector.STAGES, 4, {}, None, None
    part = [150, 150, 200, 200]
    table = {'mp_short': [(A, 0.9, _kp(A))], 'mp_full': [(A, 0.8, _kp(A, 4.0))],
             'mp_short_flip': [(part, 0.95, _kp(part))], 'mp_short_pad': [(B, 0.6)]}
    _fake_views(det, table)
    found = det.detect_all(np.zeros((480, 640, 3), np.uint8))
    assert [len(d.view_keypoints) for d in found] == [3, 0]         # B: no keypoints in its one view
    assert any(np.allclose(k, _kp(A, 4.0)) for k in found[0].view_keypoints)
    assert det.detect_all(np.zeros((480, 640, 3), np.uint8), known=[A], min_views=2) == []
    assert [len(d.view_keypoints) for d in det.last_faces if d.box.tolist() == A] == [3]
    lm = FaceLandmarker('hybrid', static=True, mmod=False)         # grey: no mesh follows anything
    _fake_views(lm.backend.mesh._detector, {k: v for k, v in table.items() if k != 'mp_short_flip'})
    lm.backend.mesh.process(np.full((480, 640, 3), 128, np.uint8))
    (un,) = lm.backend.mesh.unmeshed
    assert un.views == 0 and len(un.view_keypoints) == 2           # its own view and mp_full's
    lm.close()


class _FakeHOG:
    """dlib's HOG detector: one box in the coordinates of the image it is given, only on images of
    ``shape`` (the padded, shrunk view); records every call's image shape and threshold."""

    def __init__(self, rect, shape):
        self.rect, self.shape, self.calls = rect, shape, []

    def run(self, grey, upsample, threshold):
        import dlib
        self.calls.append((grey.shape, threshold))
        if grey.shape != self.shape:
            return [], [], []
        return [dlib.rectangle(*self.rect)], [-0.2], [0]


def test_oversized_face_search_runs_only_where_nothing_else_found_a_face():
    """The last resort for a face larger than the frame (HOG on the image padded by a quarter of its
    larger side and shrunk to 450 px, threshold below HOG's usual 0): not run where a view found a face;
    run after MMOD found nothing, its box mapped back to the image (past the border), dlib's predictor on it."""
    h, w = 480, 640
    p, s = w // 4, 450 / (w + 2 * (w // 4))
    box = np.array([100.0, -40.0, 560.0, 420.0])                   # taller than the frame's top
    lm = FaceLandmarker('hybrid', static=True)
    det = lm.backend.mesh._detector
    mmod_runs = []
    det._run_mmod = lambda rgb: mmod_runs.append(1) or []           # MMOD finds nothing
    det._hog = _FakeHOG([int(round(v)) for v in (box + p) * s], (round((h + 2 * p) * s), round((w + 2 * p) * s)))
    grey = np.full((h, w, 3), 128, np.uint8)
    _fake_views(det, {'mp_short_rot+60': [(B, 0.6)], 'mp_short_rot-60': [(B, 0.6)]})
    faces = lm.process(grey, FACE_K)
    assert len(faces) == 1 and not mmod_runs and all(shape == (h, w) for shape, _ in det._hog.calls)  # B only
    det._hog.calls.clear()
    _fake_views(det, {})
    faces = lm.process(grey, FACE_K)
    assert mmod_runs == [1] and [t for shape, t in det._hog.calls if shape != (h, w)] == [FaceDetector.OVERSIZE_MIN_SCORE]
    assert len(faces) == 1 and faces[0].layout == 'dlib68'
    c = (faces[0].bbox[:2] + faces[0].bbox[2:]) / 2
    assert np.linalg.norm(c - (box[:2] + box[2:]) / 2) < 0.25 * (box[2] - box[0])
    assert det.stage_counts.get('hog_pad') == 1
    lm.close()
    video = FaceLandmarker('hybrid', static=False)                  # video / the node: never
    video.backend.mesh._detector.detect_oversized = lambda rgb: pytest.fail('oversized search on video')
    assert video.backend.mesh._detector._mmod is None                # MMOD is not even loaded
    assert video.process(grey, FACE_K) == []
    video.close()


def test_same_face_is_the_overlapping_detection_of_highest_iou():
    """A smaller, better-scored face behind this one's head overlaps its box too: the face of a box is
    the overlapping detection with the highest IoU, not the first (best-scored) one."""
    from depthmarks_ros.core.face.detection import same_face
    a = Detection(np.array([100.0, 100.0, 200.0, 200.0]), 0.90, 'mp_short')
    b = Detection(np.array([185.0, 60.0, 245.0, 120.0]), 0.93, 'mp_short')
    mesh_box = np.array([90.0, 40.0, 210.0, 215.0])                # a's mesh: forehead to chin
    assert same_face(mesh_box, [b, a]) is a and same_face(mesh_box, [a, b]) is a
    assert same_face(np.array([185.0, 60.0, 245.0, 120.0]), [a, b]) is b
    assert same_face(np.array([400.0, 400.0, 450.0, 450.0]), [a, b]) is None


def test_no_face_in_noise_where_the_detector_finds_one(detector, face_image):
    """Real detectors: the short-range detector finds a face in this noise image (issue 18: the keypoint
    path made it a face); the hybrid returns none (its box does not look like a photograph), the real
    face is still found."""
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    (hit,) = detector.detect(noise)                                 # the false hit is there
    assert neighbour_correlation(noise, hit.box) < MIN_NEIGHBOUR_CORRELATION
    lm = FaceLandmarker('hybrid', static=True, mmod=False)
    assert lm.process(noise, FACE_K) == []
    (face,) = lm.process(face_image, FACE_K)
    assert neighbour_correlation(face_image, face.bbox) > 0.8
    lm.close()


def test_neighbour_correlation_of_flat_tiny_and_out_of_frame_boxes():
    img = np.full((40, 40, 3), 90, np.uint8)
    assert neighbour_correlation(img, np.array([5.0, 5.0, 30.0, 30.0])) == 1.0      # flat: no evidence
    assert neighbour_correlation(img, np.array([50.0, 50.0, 80.0, 80.0])) == 1.0    # outside the image
    ramp = np.repeat(np.repeat(np.arange(40, dtype=np.uint8)[None, :, None] * 5, 40, 0), 3, 2)
    assert neighbour_correlation(ramp, np.array([-10.0, 0.0, 30.0, 40.0])) > 0.99   # smooth, clipped box


def test_neighbour_correlation_samples_a_large_box_like_the_whole_and_takes_any_layout():
    """A box larger than max_lines a side is sampled (rows and pairs with a stride), which keeps the
    statistic: a smooth image stays ~1, noise ~0, and a smooth image with noise added scores as the
    whole box does; a box of up to max_lines px is used whole; grey (H, W) and (H, W, 1) images,
    a tiny textured box and a non-finite box are handled."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:1200, 0:1600]
    smooth = (120 + 60 * np.sin(xx / 37.0) * np.cos(yy / 53.0)).astype(np.float64)
    mixed = np.clip(smooth + rng.normal(0, 25, smooth.shape), 0, 255).astype(np.uint8)
    box = np.array([0.0, 0.0, 1600.0, 1200.0])
    whole = neighbour_correlation(mixed, box, max_lines=10_000)
    sampled = neighbour_correlation(mixed, box)
    assert 0.3 < whole < 0.95 and abs(sampled - whole) < 0.03, (whole, sampled)
    assert neighbour_correlation(smooth.astype(np.uint8)[..., None], box) > 0.95
    assert neighbour_correlation(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8), box) < 0.1
    small = np.array([100.0, 100.0, 300.0, 300.0])
    assert neighbour_correlation(mixed, small) == neighbour_correlation(mixed, small, max_lines=10_000)
    tiny = np.array([[0, 255, 0], [255, 0, 255]], np.uint8)          # 3 x 2, alternating: anti-correlated
    assert neighbour_correlation(tiny, np.array([0.0, 0.0, 3.0, 2.0])) < 0
    assert neighbour_correlation(mixed, np.array([np.nan, 0.0, 50.0, 50.0])) == 1.0
    assert neighbour_correlation(mixed, np.array([0.0, 0.0, np.inf, 50.0])) == 1.0
    holed = mixed.astype(np.float32)
    holed[::7, ::5] = np.nan                                        # NaN pixels: left out, not NaN out
    assert abs(neighbour_correlation(holed, small) - neighbour_correlation(mixed, small)) < 0.05
    assert neighbour_correlation(np.full((40, 40), np.nan, np.float32), np.array([0.0, 0.0, 40.0, 40.0])) == 1.0
