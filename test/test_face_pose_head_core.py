"""The pose-head last resort of the face search (core/face/pose_head.py, FaceDetector.detect_pose_head):
keypoints and box from BlazePose's head landmarks, no face on images without a person, run only where
every other view found nothing and never on video, the hybrid's keypoint path on what it finds.
No /work/shared/data (a real BlazePose call on synthetic images and on the astronaut)."""
import numpy as np
import pytest

from depthmarks_ros.core.face.detection import FaceDetector
from depthmarks_ros.core.face.pipeline import FaceLandmarker
from depthmarks_ros.core.face.pose_head import BACK_SOURCE, PoseHeadFinder, facing_away, head_box, head_keypoints
from depthmarks_ros.testing.scenes import FACE_K


def _pose(nose, reye, leye, rear, lear, mouth_r, mouth_l):
    p = np.zeros((33, 2))
    p[0], p[5], p[2], p[8], p[7], p[10], p[9] = nose, reye, leye, rear, lear, mouth_r, mouth_l
    p[1], p[3], p[4], p[6] = leye, leye, reye, reye
    return p


def test_head_keypoints_are_blazeface_order_and_box_covers_a_profile():
    p = _pose((100, 100), (90, 90), (110, 90), (70, 95), (130, 95), (95, 115), (105, 115))
    kp = head_keypoints(p)
    assert np.allclose(kp, [(90, 90), (110, 90), (100, 100), (100, 115), (70, 95), (130, 95)])
    b = head_box(p)
    assert np.isclose(b[2] - b[0], 1.3 * 60) and np.isclose(b[3] - b[1], 1.3 * 60)
    # a full profile: both ears on one point, the nose 40 px in front of them -> side from the nose
    q = _pose((140, 100), (130, 92), (128, 92), (100, 95), (100, 95), (130, 112), (128, 112))
    bq = head_box(q)
    assert np.isclose(bq[2] - bq[0], 1.3 * 2 * np.hypot(40, 5))
    c = (bq[:2] + bq[2:]) / 2
    assert bq[0] < 100 < bq[2] and bq[0] < 140 < bq[2] and bq[1] < c[1] < bq[3]


@pytest.fixture(scope='module')
def finder():
    f = PoseHeadFinder()
    yield f
    f.close()


def test_no_head_on_blank_noise_and_tiny_images(finder):
    rng = np.random.default_rng(0)
    for img in (np.full((480, 640, 3), 128, np.uint8), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
                np.zeros((20, 20, 3), np.uint8), np.zeros((480, 640), np.uint8)):
        assert finder.find(img) == []


def test_head_of_a_real_person_and_too_small_a_head(face_image):
    rgb = face_image
    f = PoseHeadFinder()
    dets = f.find(rgb)
    assert len(dets) == 1 and dets[0].source == 'pose_head' and dets[0].keypoints.shape == (6, 2)
    box = dets[0].box
    eyes = dets[0].keypoints[:2]
    assert eyes[0, 0] < eyes[1, 0]          # the face's right eye on image-left (an upright frontal face)
    assert all(box[0] < x < box[2] and box[1] < y < box[3] for x, y in dets[0].keypoints[:4])
    f.min_head_px = (box[2] - box[0]) + 1   # the same head below the size limit: no face
    assert f.find(rgb) == []
    f.close()


def _nothing_found(det):
    """Every view, MMOD and the oversized view of ``det`` find nothing."""
    det._view = lambda name, which, view, rgb: det._seen.setdefault(name, [])
    det._hog = None
    det._run_mmod = lambda rgb: []


def test_hybrid_takes_the_pose_head_only_where_nothing_else_found_a_face(face_image):
    """With every face view blind, the hybrid's keypoint path gives 68 points on the astronaut's
    face from the pose head; where a view finds the face, the pose model is not even loaded; on
    video it never runs."""
    rgb, K = face_image, FACE_K
    lm = FaceLandmarker('hybrid', static=True)
    assert lm.process(rgb, K)                           # the views find her: no pose model
    det = lm.backend.mesh._detector
    assert det._pose_head is None
    _nothing_found(det)
    lm.backend.mesh._mesh.process = lambda img: type('R', (), {'multi_face_landmarks': None})()
    lm.backend.mesh._crop_mesh.process = lambda img: type('R', (), {'multi_face_landmarks': None})()
    truth = PoseHeadFinder()
    head = truth.find(rgb)[0]
    truth.close()
    faces = lm.process(rgb, K)
    assert len(faces) == 1 and faces[0].layout == 'box68' and det.stage_counts.get('pose_head') == 1
    c = faces[0].landmarks68.mean(axis=0)
    assert head.box[0] < c[0] < head.box[2] and head.box[1] < c[1] < head.box[3]
    assert np.all(np.isfinite(faces[0].cov68))
    blank = np.full_like(rgb, 128)
    assert lm.process(blank, K) == [] and det._pose_head.runs == 2     # ran, found no one
    lm.close()
    video = FaceLandmarker('hybrid', static=False)
    video.backend.mesh._detector.detect_pose_head = lambda rgb: pytest.fail('pose-head search on video')
    assert video.process(blank, K) == []
    video.close()


def test_cascade_dlib_falls_back_to_the_pose_head(face_image):
    """... and the pose head's score (the mean BlazePose visibility, ~1) is no detector score to the
    sigma model (fitted on BlazeFace's): the face takes the model's low fallback, a wider sigma than
    the same landmarks would get at that score from BlazeFace."""
    from depthmarks_ros.core.face.sigma_model import FEATURES
    rgb, K = face_image, FACE_K
    lm = FaceLandmarker('dlib', static=True, dlib_detector='cascade')
    real = lm.process(rgb, K)[0]
    assert real.extras['det_source'].startswith('mp_') and 0.5 < real.extras['det_score'] <= 1.0
    det = lm.backend._cascade
    _nothing_found(det)
    faces = lm.process(rgb, K)
    assert len(faces) == 1 and det.stage_counts.get('pose_head') == 1
    f, sm = faces[0], lm.sigma_model
    assert f.extras['det_source'] == 'pose_head'
    fallback = sm.meta['det_score_fallback']            # shipped: a low quantile of the fit faces' scores
    assert 0.5 < fallback < 0.9 and sm.det_score_fallback == fallback
    assert f.extras['det_score'] == fallback and f.extras['features'][0, FEATURES.index('det_score')] == fallback
    pose_head_score = det._pose_head.find(rgb)[0].score
    assert pose_head_score > 0.9
    feats = f.extras['features'].copy()
    feats[:, FEATURES.index('det_score')] = pose_head_score      # as if BlazeFace had scored it so
    assert np.trace(f.cov68[30]) > 2 * np.trace(sm.covariance(f.landmarks68, feats, abs(f.extras['yaw0']))[30])
    lm.close()


# BlazePose's left/right pairs: a person seen from behind has them on the other image side
_PAIRS = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(i, i + 1) for i in range(11, 33, 2)]


def _mirrored_labels(lm):
    """BlazePose landmarks with every left/right pair swapped: the same image positions labelled as a
    person facing the other way (seen from behind instead of from the front)."""
    out = np.array(lm, float)
    for a, b in _PAIRS:
        out[[a, b]] = out[[b, a]]
    return out


def _person(lsh_x, rsh_x, lear_x, rear_x, vis_sh=0.9, vis_ear=0.9):
    lm = np.zeros((33, 3))
    lm[:, 2] = 0.9
    lm[:, :2] = (150, 100)
    lm[11, 0], lm[12, 0], lm[11:13, 1], lm[11:13, 2] = lsh_x, rsh_x, 200, vis_sh
    lm[7, 0], lm[8, 0], lm[7:9, 2] = lear_x, rear_x, vis_ear
    return lm


def test_facing_away_needs_the_persons_left_shoulder_and_ear_on_image_left():
    side = 60.0
    assert not facing_away(_person(220, 80, 175, 125), side)            # facing the camera: left on image-right
    assert facing_away(_person(80, 220, 125, 175), side)                # from behind: left on image-left
    assert facing_away(_mirrored_labels(_person(220, 80, 175, 125)), side)
    # no back view where a pair is not seen, the pairs disagree, or they nearly coincide (a profile)
    assert not facing_away(_person(80, 220, 125, 175, vis_sh=0.1), side)
    assert not facing_away(_person(80, 220, 125, 175, vis_ear=0.1), side)
    assert not facing_away(_person(80, 220, 175, 125), side)
    assert not facing_away(_person(220, 80, 125, 175), side)
    assert not facing_away(_person(80, 220, 152, 148), side)             # ears within 0.15 head sides
    assert not facing_away(_person(152, 148, 151, 150), side)
    assert not facing_away(_person(np.nan, 220, 125, 175), side)


def test_a_head_seen_from_behind_is_reported_with_every_face_point_hidden(face_image, monkeypatch):
    """The astronaut's real BlazePose landmarks relabelled as seen from behind: the detection is a back
    view (BACK_SOURCE) and the hybrid's face from it has visibility 0 at all 68 points and no head pose
    (a face template on the back of a head gave one ~180 deg off, as confident as a frontal face's),
    where the same head seen from the front has visible points and a head pose; the dlib cascade's path too."""
    rgb, K = face_image, FACE_K
    real = PoseHeadFinder()
    lm = real.landmarks(rgb)
    assert real.find(rgb)[0].source == 'pose_head'
    monkeypatch.setattr(PoseHeadFinder, 'landmarks', lambda self, img: _mirrored_labels(lm))
    back = real.find(rgb)
    assert len(back) == 1 and back[0].source == BACK_SOURCE
    real.close()
    for backend, kw in (('hybrid', {}), ('dlib', {'dlib_detector': 'cascade'})):
        f = FaceLandmarker(backend, static=True, **kw)
        det = f.backend.mesh._detector if backend == 'hybrid' else f.backend._cascade
        _nothing_found(det)
        if backend == 'hybrid':
            f.backend.mesh._mesh.process = lambda img: type('R', (), {'multi_face_landmarks': None})()
        faces = f.process(rgb, K)
        assert len(faces) == 1 and faces[0].extras['det_source'] == BACK_SOURCE, backend
        assert np.all(faces[0].visibility68 == 0) and np.all(np.isfinite(faces[0].landmarks68)), backend
        assert faces[0].head_pose is None, backend
        # the same head from the front, on the same keypoint path (there the crop mesh would follow her
        # face; on the back view it is not run)
        monkeypatch.setattr(PoseHeadFinder, 'landmarks', lambda self, img: lm)
        if backend == 'hybrid':
            f.backend.mesh._crop_mesh.process = lambda img: type('R', (), {'multi_face_landmarks': None})()
        front = f.process(rgb, K)
        assert front[0].extras['det_source'] == 'pose_head' and front[0].visibility68.max() > 0.5, backend
        assert front[0].head_pose is not None, backend
        monkeypatch.setattr(PoseHeadFinder, 'landmarks', lambda self, img: _mirrored_labels(lm))
        f.close()


def test_detector_close_releases_the_pose_model():
    det = FaceDetector(fallback_hog=False)
    assert det.detect_pose_head(np.full((240, 320, 3), 128, np.uint8)) == []
    assert det._pose_head is not None and det.stage_counts['none'] == 0
    det.close()
    assert det._pose_head is None
