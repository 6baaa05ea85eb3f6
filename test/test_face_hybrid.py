"""The hybrid face backend (MediaPipe mesh + dlib's predictor on a box from it, blended per landmark):
blend fit, box placement, artefact errors, bad input and stable ids. No /work/shared/data."""
import json

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.face.backends import BackendError
from depthmarks_ros.core.face.hybrid import (UPRIGHT_MIN_DEG, HybridBlend, box_from_landmarks, disagreement,
                                             mean_box_shape)
from depthmarks_ros.core.face.metrics import nme_interocular
from depthmarks_ros.core.face.pipeline import FaceLandmarker
from depthmarks_ros.core.tracking import CentroidTracker
from depthmarks_ros.testing.scenes import FACE_K

K = FACE_K


@pytest.fixture(scope='module')
def frame(face_image):
    return face_image


@pytest.fixture(scope='module')
def hybrid():
    lm = FaceLandmarker('hybrid', static=True)
    yield lm
    lm.close()


def _shape(rng):
    from depthmarks_ros.core.face.head_pose import face_model_68
    p = face_model_68()[:, :2]
    p = (p - p.min(axis=0)) / np.ptp(p, axis=0).max()
    return 0.2 + 0.6 * p + rng.normal(0, 0.005, p.shape)


def test_box_from_landmarks_inverts_the_mean_box_shape():
    rng = np.random.default_rng(0)
    ref = _shape(rng)
    boxes = [np.array([x, y, x + s, y + s]) for x, y, s in ((10, 20, 100), (200, 50, 60), (5, 5, 300))]
    pts = [ref * (b[2] - b[0]) + b[:2] for b in boxes]
    ref_fit = mean_box_shape(boxes, pts)
    assert np.allclose(ref_fit, ref)
    for b, p in zip(boxes, pts):
        assert np.allclose(box_from_landmarks(ref_fit, p), b, atol=1e-6)
    # rotated points: same centre and size (dlib's boxes are upright)
    c = ref * 100 + [10, 20]
    th = np.radians(20)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    rot = (c - [60, 70]) @ R.T + [60, 70]
    assert np.allclose(box_from_landmarks(ref_fit, rot), [10, 20, 110, 120], atol=1e-6)


def test_blend_fit_recovers_known_weights_per_bin_and_round_trips(tmp_path):
    """Near-frontal faces: dlib's points are exact and the mesh's biased -> weight 1; turned faces
    (|yaw| >= 45): dlib's points far off -> weight 0; the blend then reproduces the truth."""
    rng = np.random.default_rng(1)
    ref = _shape(rng)
    d68s, m68s, gts, yaws = [], [], [], []
    for i in range(80):
        g = _shape(rng) * 200 + 50
        yaw = 10.0 if i % 2 else 60.0
        m = g + rng.normal(0, 3, g.shape)
        d = g.copy() if yaw < 45 else g + rng.normal(0, 30, g.shape)
        d68s.append(d), m68s.append(m), gts.append(g), yaws.append(yaw)
    b = HybridBlend.fit(ref, d68s, m68s, gts, [100.0] * 80, yaws, [1.0] * 80, dis_edges=(0, 1e9))
    assert np.allclose(b.weights[0], 1.0) and np.all(b.weights[3] < 0.05)
    assert np.allclose(b.weights[1:3], 0.5)                    # empty bins
    assert np.allclose(b.blend(d68s[1], m68s[1], 10.0), gts[1])
    assert disagreement(m68s[0], d68s[0]) > disagreement(m68s[1], d68s[1])
    b.save(str(tmp_path / 'h.json'))
    b2 = HybridBlend.load(str(tmp_path / 'h.json'))
    assert np.allclose(b2.weights, b.weights, atol=1e-4) and np.allclose(b2.ref_box, ref, atol=1e-5)


def test_corrupt_hybrid_artefact_is_named_and_missing_one_falls_back_to_the_mesh(tmp_path, frame):
    (tmp_path / 'face_hybrid.json').write_text(json.dumps({'ref_box': [[0, 0]], 'yaw_edges': [0, 1],
                                                           'dis_edges': [0, 1], 'weights': [[0.5]]}))
    with pytest.raises(BackendError, match='face_hybrid.json'):
        FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path))
    (tmp_path / 'face_hybrid.json').write_text('not json')
    with pytest.raises(BackendError, match='face_hybrid.json'):
        FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path))
    (tmp_path / 'face_hybrid.json').unlink()
    lm = FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path))   # no blend: the mesh alone
    faces = lm.process(frame, K)
    lm.close()
    assert len(faces) == 1 and faces[0].landmarks68.shape == (68, 2)


def test_hybrid_finds_the_face_agrees_with_dlib_and_has_a_sane_covariance(hybrid, frame):
    hybrid.tracker = CentroidTracker()
    faces = hybrid.process(frame, K)
    assert len(faces) == 1
    f = faces[0]
    assert f.landmarks.shape == (468, 2) and f.landmarks68.shape == (68, 2)
    dl = FaceLandmarker('dlib', static=True)
    ref = max(dl.process(frame, K), key=lambda g: g.bbox[2] - g.bbox[0])
    dl.close()
    assert nme_interocular(f.landmarks68, ref.landmarks68) < 0.05
    assert np.all(np.isfinite(f.cov68)) and np.all(np.linalg.eigvalsh(f.cov68) > 0)
    iod = np.linalg.norm(f.landmarks68[45] - f.landmarks68[36])
    sig = np.sqrt(np.trace(f.cov68, axis1=1, axis2=2) / 2)
    assert np.all(sig < 0.5 * iod) and np.all(sig > 1e-3 * iod)
    assert f.head_pose is not None and abs(f.head_pose.yaw) < 30


def test_an_oversized_view_face_takes_the_fallback_detector_score_not_its_hog_margin(hybrid, frame, monkeypatch):
    """A face of the oversized view (source hog_pad, a HOG margin from -0.5) goes to dlib's predictor and
    the cascade dlib's sigma model, whose det_score input was fitted on BlazeFace scores: it takes that
    model's fallback (a low quantile of the fit faces' scores), not its margin clipped to 0."""
    from depthmarks_ros.core.face.detection import Detection
    hybrid.tracker = CentroidTracker()
    box = hybrid.process(frame, K)[0].bbox
    be = hybrid.backend
    monkeypatch.setattr(be.mesh, 'process', lambda rgb: [])
    monkeypatch.setattr(be.mesh, 'unmeshed', [Detection(np.array(box, float), -0.3, 'hog_pad')])
    hybrid.tracker = CentroidTracker()
    faces = hybrid.process(frame, K)
    assert len(faces) == 1 and faces[0].layout == 'dlib68' and faces[0].extras['det_source'] == 'hog_pad'
    fallback = hybrid.sigma_model_dlib.meta['det_score_fallback']
    assert 0.5 < fallback < 0.9 and faces[0].extras['det_score'] == fallback


@pytest.mark.parametrize('kind', ['noise', 'flat', 'tiny', 'empty', 'dark', 'grey', 'blurred', 'half_outside'])
def test_hybrid_bad_input_gives_empty_or_finite_output(hybrid, frame, kind):
    rng = np.random.default_rng(3)
    img = {'noise': lambda: rng.integers(0, 255, (101, 77, 3), dtype=np.uint8),
           'flat': lambda: np.full((240, 320, 3), 128, np.uint8),
           'tiny': lambda: _tiny(frame),
           'empty': lambda: np.zeros((0, 0, 3), np.uint8),
           'dark': lambda: (frame * 0.15).astype(np.uint8),
           'grey': lambda: cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB),
           'blurred': lambda: cv2.GaussianBlur(frame, (0, 0), 4),
           'half_outside': lambda: _half(frame)}[kind]()
    hybrid.tracker = CentroidTracker()
    faces = hybrid.process(img, K)
    if kind in ('noise', 'flat', 'tiny', 'empty'):
        assert faces == []
    if kind in ('grey', 'blurred', 'dark', 'half_outside'):
        assert len(faces) == 1
    for f in faces:
        assert np.all(np.isfinite(f.landmarks68)) and np.all(np.isfinite(f.cov68))
        assert f.visibility68.shape == (68,) and np.all((f.visibility68 >= 0) & (f.visibility68 <= 1))
    if kind == 'half_outside':
        assert faces[0].visibility68.min() < 0.5          # the points outside the image are not visible


def _tiny(frame):
    out = np.full_like(frame, 90)
    out[200:224, 300:324] = cv2.resize(frame[:, 80:560], (24, 24))
    return out


def _half(frame):
    out = np.full_like(frame, 90)
    out[:, :380] = frame[:, 260:]                 # the face cut by the left edge
    return out


def test_hybrid_video_keeps_the_id_of_a_moving_face_and_drops_a_vanished_one(frame):
    lm = FaceLandmarker('hybrid', static=False)
    ids = []
    for i in range(6):
        shifted = np.roll(frame, 6 * i, axis=1)
        faces = lm.process(shifted, K)
        assert len(faces) == 1
        ids.append(faces[0].face_id)
    assert len(set(ids)) == 1
    assert lm.process(np.full_like(frame, 90), K) == []
    lm.close()


def test_mesh_on_a_rotated_crop_maps_back_to_the_image(frame):
    """The cascade's rotated views give an angle; the mesh then runs on a crop rotated upright and
    its points come back in image coordinates."""
    from depthmarks_ros.core.face.backends import MediaPipeFaceMesh
    mp = MediaPipeFaceMesh(static=True, fallback_detector=False)
    mp._crop_mesh = mp._mesh
    base = mp.process(frame)[0].landmarks
    M = cv2.getRotationMatrix2D((320, 240), -50, 1.0)              # the face tilted by 50 deg
    rot = cv2.warpAffine(frame, M, (640, 480))
    expected = base @ M[:, :2].T + M[:, 2]
    c, half = expected.mean(axis=0), np.ptp(base[:, 0]) / 2
    arr = mp._mesh_in_box(rot, np.r_[c - half, c + half], 50.0)
    mp.close()
    assert arr is not None and arr.shape == (468, 3)
    assert np.median(np.linalg.norm(arr[:, :2] - expected, axis=1)) < 2.0


def test_dlib_runs_upright_on_a_leaning_face(hybrid, frame):
    """The face tilted by 40 deg in the image: dlib's predictor (trained on upright faces) runs on a crop
    turned upright by the mesh's lean, and its points, turned back, land nearer the tilted face's
    than dlib's on the tilted image does; an upright face takes the plain path (same points)."""
    be = hybrid.backend
    (up,) = be.process(frame)
    M = cv2.getRotationMatrix2D(tuple(float(v) for v in up.landmarks68.mean(axis=0)), -40, 1.0)
    rot = cv2.warpAffine(frame, M, (640, 480))
    truth = up.alt68[0] @ M[:, :2].T + M[:, 2]              # dlib's upright points, tilted like the face
    (r,) = be.process(rot)
    m68 = r.alt68[1]
    err = lambda p: np.linalg.norm(p - truth, axis=1).mean()
    assert be.upright_min_deg < 40
    tilted = be.predict_on(rot, m68)
    be.upright_min_deg = 360.0
    try:
        plain = be.predict_on(rot, m68)
        np.testing.assert_allclose(be.predict_on(frame, up.alt68[1]), up.alt68[0])
    finally:
        be.upright_min_deg = UPRIGHT_MIN_DEG
    np.testing.assert_allclose(tilted, r.alt68[0])
    assert err(tilted) < 0.7 * err(plain) and err(tilted) < 0.05 * np.ptp(truth[:, 0])


def test_a_mesh_far_from_the_keypoint_path_gives_way_to_it(frame, monkeypatch):
    """Independent image: the mesh-followed face is checked against the detector keypoints' path of the
    same face (every view); where that path's points lie MESH_SWITCH_DIS outer-eye distances or more
    from the hybrid's, they replace them (layout box68, its covariance); nearer, the hybrid's stay.
    Video (no every-view search) never checks."""
    from depthmarks_ros.core.face.hybrid import MESH_SWITCH_DIS
    lm = FaceLandmarker('hybrid', static=True, mmod=False)
    be = lm.backend
    (plain,) = be.process(frame)
    assert plain.layout.startswith('mediapipe') and any(f.view_keypoints for f in be.mesh.last_faces)
    d = np.linalg.norm(plain.landmarks68[45] - plain.landmarks68[36])
    for shift, switched in ((2.0 * MESH_SWITCH_DIS, True), (0.5 * MESH_SWITCH_DIS, False)):
        moved = plain.landmarks68 + [shift * d, 0.0]
        monkeypatch.setattr(be, '_from_keypoints', lambda rgb, box, kp, views, m=moved: (m, np.tile(np.eye(2), (68, 1, 1))))
        (r,) = be.process(frame)
        assert (r.layout == 'box68') == switched
        np.testing.assert_allclose(r.landmarks68, moved if switched else plain.landmarks68)
        faces = lm.process(frame, K)
        assert len(faces) == 1 and np.all(np.isfinite(faces[0].cov68))
    assert be.switched_faces == 2
    lm.close()
    video = FaceLandmarker('hybrid', static=False)
    monkeypatch.setattr(video.backend, '_check_mesh_face', lambda rgb, r: pytest.fail('checked on video'))
    assert len(video.process(frame, K)) == 1
    video.close()


def test_face_without_a_mesh_takes_the_median_over_every_views_start():
    """The keypoint path of a face without a mesh (per_view): the turned-face predictor started on the
    views' mean regression and on each view's own, in the direction that start chose, per-point
    median: one view far off moves the result less than it moves the mean start alone."""
    from depthmarks_ros.core.face.hybrid import HybridFace68

    class Identity:                 # a predictor that returns its start (looking left: shifted away)
        def predict_from(self, rgb, guess, left, scale=1.0):
            return np.asarray(guess, float) + ([60.0, 0.0] if left else [0.0, 0.0])
    rng = np.random.default_rng(3)
    ref = _shape(rng)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    boxes, kps, gts = _keypoint_faces(rng, 60, 0.0)
    b.fit_keypoint_map(boxes, kps, gts)
    b.profile_cov, b.profile_scale = np.tile(np.eye(2) * 1e-3, (68, 1, 1)), 1.0
    be = HybridFace68.__new__(HybridFace68)
    be.blend, be.profile = b, Identity()
    box, g = boxes[0], gts[0]
    views = [kps[0] + rng.normal(0, 1.0, (6, 2)) for _ in range(6)] + [kps[0] + [0.6 * (box[2] - box[0]), 0.0]]
    err = lambda p: np.linalg.norm(p - g, axis=1).mean()
    mean_only, cov = be._from_keypoints(None, box, views[0], views)
    median, _ = be._from_keypoints(None, box, views[0], views, per_view=True)
    np.testing.assert_allclose(mean_only, b.from_views(box, views[0], views))       # the mean start, not looking left
    assert err(median) < 0.5 * err(mean_only) and cov.shape == (68, 2, 2)
    one, _ = be._from_keypoints(None, box, views[0], views[:1], per_view=True)      # one view: its start alone
    np.testing.assert_allclose(one, b.from_keypoints(box, views[0]))


def test_keypoint_regression_gives_no_points_for_nan_keypoints():
    """A detection whose keypoints hold a NaN (a broken detector output) gives no 68 points (the caller
    falls back to the box template) instead of raising from the similarity's SVD."""
    rng = np.random.default_rng(4)
    ref = _shape(rng)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    boxes, kps, gts = _keypoint_faces(rng, 30, 0.0)
    b.fit_keypoint_map(boxes, kps, gts)
    assert b.from_keypoints(boxes[0], kps[0]) is not None
    bad = kps[0].copy()
    bad[2, 0] = np.nan
    assert b.from_keypoints(boxes[0], bad) is None


def _keypoint_faces(rng, n, noise):
    """n synthetic faces of random size, place and width: boxes, keypoint-like points (+ N(0, noise) px)
    and their 68 points."""
    boxes, kps, gts = [], [], []
    for _ in range(n):
        s, x, y = rng.uniform(80, 200), rng.uniform(0, 300), rng.uniform(0, 300)
        g = (_shape(rng) - 0.5) * s * [rng.uniform(0.6, 1.0), 1.0] + [x + s / 2, y + s / 2]
        kp = g[[42, 36, 30, 62, 16, 0]] + rng.normal(0, noise, (6, 2))
        boxes.append(np.array([x, y, x + s, y + s])), kps.append(kp), gts.append(g)
    return boxes, kps, gts


def test_keypoint_map_and_template_for_faces_without_a_mesh(tmp_path):
    """Faces the mesh cannot follow get 68 points from the detector's 6 keypoints (ridge map on
    keypoints aligned to their mean configuration, fitted with mirrored copies: it follows a face
    turned in the image plane) or, without keypoints, a mean template in the box; both round-trip."""
    rng = np.random.default_rng(4)
    ref = _shape(rng)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    boxes, kps, gts = _keypoint_faces(rng, 60, 0.5)
    cv = b.fit_keypoint_map(boxes, kps, gts)
    assert cv < 0.03
    p = b.from_keypoints(boxes[0], kps[0])
    assert np.linalg.norm(p - gts[0], axis=1).mean() < 0.05 * (boxes[0][2] - boxes[0][0])
    a = np.radians(60.0)              # learned on upright faces: a face turned in the image plane comes out turned
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    turned = b.from_keypoints(boxes[0], kps[0] @ R.T + [40.0, -20.0])
    assert np.linalg.norm(turned - (gts[0] @ R.T + [40.0, -20.0]), axis=1).mean() < 0.05 * (boxes[0][2] - boxes[0][0])
    b.fit_template(boxes, [1.0] * 60, gts)
    t = b.from_box(boxes[1], 1.0)
    assert np.linalg.norm(t.mean(axis=0) - gts[1].mean(axis=0)) < 0.1 * (boxes[1][2] - boxes[1][0])
    cov = b.template_covariance(boxes[1], -1.0)
    assert cov.shape == (68, 2, 2) and np.all(np.linalg.eigvalsh(cov) > 0)
    b.save(str(tmp_path / 'h.json'))
    b2 = HybridBlend.load(str(tmp_path / 'h.json'))
    np.testing.assert_allclose(b2.from_keypoints(boxes[0], kps[0]), p, atol=1e-2)
    # a file whose covariance, edges or shape cannot be used is refused when loaded, not used per frame
    good = json.loads((tmp_path / 'h.json').read_text())
    for key, bad in (('kp_cov', np.full((68, 2, 2), np.nan).tolist()), ('yaw_edges', 5.0),
                     ('dis_edges', [1.0, 0.0]), ('template_cov', [[1.0]])):
        (tmp_path / 'bad.json').write_text(json.dumps(dict(good, **{key: bad}), allow_nan=True))
        with pytest.raises(ValueError, match='not a hybrid blend file'):
            HybridBlend.load(str(tmp_path / 'bad.json'))


def test_fit_faces_without_a_mesh_leave_out_the_oversized_view_and_the_pose_head(tmp_path, monkeypatch):
    """fit-face's mesh runs without MMOD, so the oversized view and the pose head run where MMOD would
    find the face at run time: their detections train neither the box template nor the keypoint map; nor
    does a head seen from behind (pose_head_back: no face in its box)."""
    from types import SimpleNamespace
    from depthmarks_ros.core.face import backends, model_fit
    from depthmarks_ros.core.face.detection import Detection
    rng = np.random.default_rng(5)
    ref = _shape(rng)
    HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0]).save(str(tmp_path / 'face_hybrid.json'))
    boxes, kps, gts = _keypoint_faces(rng, 5, 0.5)
    sources = ['mp_short', 'hog_pad', 'pose_head', 'mp_full_flip', 'pose_head_back']

    class Mesh:
        def __init__(self, **kw):
            self.unmeshed = []

        def process(self, rgb):
            i = int(rgb[0, 0, 0])
            self.unmeshed = [Detection(np.asarray(boxes[i], float), 0.9, sources[i], keypoints=kps[i])]
            return []

        def close(self):
            pass
    monkeypatch.setattr(backends, 'MediaPipeFaceMesh', Mesh)
    samples = [SimpleNamespace(load_rgb=lambda i=i: np.full((8, 8, 3), i, np.uint8), landmarks68=gts[i], stem=str(i))
               for i in range(5)]
    for i, want in enumerate([1, 0, 0, 1, 0]):      # the selection _fit_profile's keypoint faces use too
        m = Mesh()
        m.process(samples[i].load_rgb())
        assert len(model_fit._unmeshed_near(m, gts[i])) == want
    lines = list(model_fit._fit_hybrid_template(samples, str(tmp_path), 'test'))
    assert HybridBlend.load(str(tmp_path / 'face_hybrid.json')).meta['template']['faces'] == 2, lines


def test_guess_from_every_view_is_nearer_the_face_than_one_view():
    """A face without a mesh: the 68 points regressed from each detector view's keypoints, averaged
    (from_views), land nearer the truth than those of one view when each view's keypoints are noisy;
    without view keypoints it is the one view's regression; a view whose keypoints collapsed is skipped."""
    rng = np.random.default_rng(7)
    ref = _shape(rng)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    boxes, kps, gts = _keypoint_faces(rng, 80, 0.0)
    b.fit_keypoint_map(boxes, kps, gts)
    one, every = [], []
    for box, kp, g in zip(boxes[:20], kps[:20], gts[:20]):
        views = [kp + rng.normal(0, 0.06 * (box[2] - box[0]), kp.shape) for _ in range(8)]
        err = lambda p: np.linalg.norm(p - g, axis=1).mean()
        one.append(err(b.from_keypoints(box, views[0])))
        every.append(err(b.from_views(box, views[0], views + [np.zeros((6, 2))])))
        np.testing.assert_allclose(b.from_views(box, views[0], None), b.from_keypoints(box, views[0]))
    assert np.mean(every) < 0.7 * np.mean(one)
    assert b.from_views(boxes[0], np.zeros((6, 2)), [np.zeros((6, 2))]) is None
    # fitted on every view's keypoints (a list per face), cross-validated through from_views: nearer
    # than the map fitted on one noisy view per face
    noisy = [[kp + rng.normal(0, 0.06 * (box[2] - box[0]), kp.shape) for _ in range(6)] for box, kp in zip(boxes, kps)]
    cv_one = b.fit_keypoint_map(boxes, [v[0] for v in noisy], gts)
    cv_every = b.fit_keypoint_map(boxes, noisy, gts)
    assert cv_every < 0.8 * cv_one and b.kp_cov.shape == (68, 2, 2)


def test_a_corrupt_dlib_model_file_is_a_clear_error(tmp_path, monkeypatch):
    """A truncated shape-predictor file (or MMOD file): BackendError naming it, for every backend
    that loads it (the node turns it into a start-up message), not dlib's bare RuntimeError."""
    from depthmarks_ros.core.face import backends
    bad = tmp_path / 'models'
    bad.mkdir()
    for name in ('shape_predictor_68_face_landmarks.dat', 'mmod_human_face_detector.dat'):
        (bad / name).write_bytes(b'\x00' * 64)
    monkeypatch.setattr(backends, 'dlib_model_path', lambda name: str(bad / name))
    for backend in ('hybrid', 'dlib'):
        with pytest.raises(BackendError, match=r'models/(shape_predictor_68_face_landmarks|mmod_human_face_detector).dat cannot be read'):
            FaceLandmarker(backend, static=True)


def test_independent_image_keeps_a_face_the_mesh_passed_over_beside_another(frame):
    """The mesh's landmark model drops faces it cannot follow (turned ones) even where its detector saw
    them; on an independent image the short-range detector runs once more and a face no mesh covers
    gets its own crop mesh. Here the full-image mesh is made blind to the right half."""
    from depthmarks_ros.core.face.backends import MediaPipeFaceMesh
    small = cv2.resize(frame, (320, 240))
    two = np.full_like(frame, 90)
    two[120:360, :320], two[120:360, 320:] = small, small

    def half_blind(mp):
        full = mp._mesh.process

        def process(img):
            img = img.copy()
            img[:, 320:] = 90
            return full(img)
        mp._mesh.process = process
        return mp
    static = half_blind(MediaPipeFaceMesh(static=True, fallback_detector=True))
    faces = static.process(two)
    xs = sorted(float(f.landmarks[:, 0].mean()) for f in faces)
    assert len(faces) == 2 and xs[0] < 320 < xs[1]
    assert len(static.process(np.roll(frame, -160, axis=1))) == 1     # a face the mesh has is not added twice
    static.close()


def _turned_face(rng, left: bool, spin: float = 0.0):
    """A synthetic turned 'face': 68 points of the 3D mean face at 60 deg of yaw, drawn as dots and
    outlines on noise, at a random position, size and tilt (mirrored when it looks left), turned in
    the image plane by ``spin`` deg."""
    from depthmarks_ros.core.face.head_pose import face_model_68, rotation_from_angles
    X = face_model_68() @ rotation_from_angles(60.0 if left else -60.0, 0.0, float(rng.uniform(-15, 15))).T
    a = np.radians(spin)
    p = X[:, :2] @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    p = p / np.ptp(X[:, 1]) * rng.uniform(70, 100) + rng.uniform(100, 140, 2)
    img = rng.integers(0, 60, (240, 240, 3), dtype=np.uint8)
    for part in (slice(0, 17), slice(17, 22), slice(22, 27), slice(27, 36), slice(36, 42), slice(42, 48), slice(48, 60)):
        cv2.polylines(img, [np.round(p[part]).astype(np.int32)], False, (200, 180, 160), 2)
    for q in p:
        cv2.circle(img, (int(q[0]), int(q[1])), 2, (255, 255, 255), -1)
    return img, p


def test_turned_face_predictor_learns_mirrors_and_round_trips(tmp_path):
    """core/face/profile.py: trained on faces looking both ways (mirrored to one), it moves a shifted
    start towards the truth for either direction; save/load keeps it; a corrupt file is named."""
    from depthmarks_ros.core.face.profile import ProfilePredictor, _size, box_of, train_profile_predictor
    rng = np.random.default_rng(7)
    train = [_turned_face(rng, i % 2 == 0) + (i % 2 == 0,) for i in range(40)]
    sp = train_profile_predictor([t[0] for t in train], [t[1] for t in train], [t[2] for t in train], copies=2,
                                 trees=15, tree_depth=3, cascade_depth=6, meta={'split_rule': 'test'})
    for left in (False, True):
        errs, starts = [], []
        for _ in range(4):
            img, p = _turned_face(rng, left)
            n = _size(p)
            box = box_of(p, p.mean(axis=0) + rng.normal(0, 0.06, 2) * n)
            errs.append(np.linalg.norm(sp.predict(img, box, left) - p, axis=1).mean() / n)
            wrong = np.linalg.norm(sp.predict(img, box, not left) - p, axis=1).mean() / n
            starts.append(wrong)
        assert np.mean(errs) < 0.08 and np.mean(errs) < 0.7 * np.mean(starts), (errs, starts)
    guess = p + rng.normal(0, 2, p.shape)
    assert np.linalg.norm(sp.predict_like(img, guess) - p, axis=1).mean() / _size(p) < 0.1   # picks the direction
    sp.save(str(tmp_path / 'p.dat'))
    back = ProfilePredictor.load(str(tmp_path / 'p.dat'))
    assert back.meta['split_rule'] == 'test' and back.meta['options']['trees'] == 15
    np.testing.assert_allclose(back.predict(img, box, True), sp.predict(img, box, True))
    (tmp_path / 'bad.dat').write_bytes(b'not a model')
    with pytest.raises(ValueError, match='bad.dat'):
        ProfilePredictor.load(str(tmp_path / 'bad.dat'))


def test_upright_turned_face_predictor_follows_strong_tilts(tmp_path):
    """An ``upright`` predictor learns faces turned upright by their chin -> nose-root angle and
    predict_from turns the crop the same way about a rough guess: trained on faces tilted by at most
    15 deg, it follows faces tilted by 40-70 deg either way (looking left or right, points back in
    image coordinates), where the same training without it does not; the option survives save/load."""
    from depthmarks_ros.core.face.profile import ProfilePredictor, _size, train_profile_predictor
    rng = np.random.default_rng(11)
    train = [_turned_face(rng, i % 2 == 0) + (i % 2 == 0,) for i in range(40)]
    opts = dict(copies=2, trees=15, tree_depth=3, cascade_depth=6, rotation_deg=10.0)
    up = train_profile_predictor(*zip(*train), upright=True, **opts)
    plain = train_profile_predictor(*zip(*train), **opts)
    assert up.upright and not plain.upright
    errs, plain_errs = [], []
    for i in range(8):
        left, sign = i % 2 == 0, 1.0 if i % 4 < 2 else -1.0
        img, p = _turned_face(rng, left, sign * rng.uniform(40, 70))
        n = _size(p)
        guess = p + rng.normal(0, 0.05, 2) * n + rng.normal(0, 0.02 * n, p.shape)
        errs.append(np.linalg.norm(up.predict_from(img, guess, left) - p, axis=1).mean() / n)
        plain_errs.append(np.linalg.norm(plain.predict_from(img, guess, left) - p, axis=1).mean() / n)
    assert np.mean(errs) < 0.06 and np.mean(errs) < 0.7 * np.mean(plain_errs), (errs, plain_errs)
    up.save(str(tmp_path / 'u.dat'))
    back = ProfilePredictor.load(str(tmp_path / 'u.dat'))
    assert back.upright
    np.testing.assert_allclose(back.predict_from(img, guess, left), up.predict_from(img, guess, left))


def test_fit_profile_options_reach_the_trainer_and_are_recorded(tmp_path, monkeypatch):
    """fit-face's `profile` part (model_fit._fit_profile) trains its turned-face predictors with
    model_fit.PROFILE_OPTIONS on the fit faces turned >= PROFILE_MIN_YAW, and the saved file records
    the options, so the shipped .json says how its predictor was trained. Run through _fit_profile up
    to its first training (the heavy steps before it stubbed); the spy stops the fit there."""
    import shutil
    from types import SimpleNamespace
    from depthmarks_ros.core.face import backends, model_fit, profile
    from depthmarks_ros.core.face.model_fit import PROFILE_MIN_YAW, PROFILE_OPTIONS
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    from depthmarks_ros.core.face.profile import ProfilePredictor, train_profile_predictor
    from depthmarks_ros.core.split import fold_of
    rng = np.random.default_rng(3)
    faces = []
    for i in range(14):
        img, pts = _turned_face(rng, i % 2 == 0)
        yaw = (60.0 if i % 2 == 0 else -60.0) if i < 12 else 20.0          # the last two: not turned enough
        faces.append(SimpleNamespace(stem=f'face{i:03d}', pose_deg=np.array([yaw, 0.0, 0.0]), landmarks68=pts,
                                     load_rgb=lambda img=img: img, dataset='aflw2000_3d'))
    shutil.copy(f'{DATA_DIR}/face_hybrid.json', tmp_path / 'face_hybrid.json')

    class NoMesh:
        unmeshed = []

        def __init__(self, **_kw):
            pass

        def process(self, _rgb):
            return []

        def close(self):
            pass
    monkeypatch.setattr(backends, 'MediaPipeFaceMesh', NoMesh)
    monkeypatch.setattr(model_fit, '_hybrid_inputs', lambda *a: ([], np.zeros(0, int), [], [], []))
    monkeypatch.setattr(model_fit, '_cross_fitted_blends', lambda *a: [])
    calls = []

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        raise Stop
    monkeypatch.setattr(profile, 'train_profile_predictor', spy)
    with pytest.raises(Stop):
        list(model_fit._fit_profile(faces, [], [], [], [], [], 1e-2, str(tmp_path), 'cmd'))
    (images, points, left), kwargs = calls[0]
    turned = [f for f in faces if abs(f.pose_deg[0]) >= PROFILE_MIN_YAW and fold_of(f.stem) != 0]   # fold 0 held out
    assert [id(x) for x in images] == [id(f.load_rgb()) for f in turned]
    assert list(left) == [model_fit.turned_left(f) for f in turned]
    assert {k: kwargs.get(k) for k in PROFILE_OPTIONS} == PROFILE_OPTIONS
    # the trainer records the options it was given in the saved file
    sp = train_profile_predictor(images, points, left, copies=2, trees=4, tree_depth=2, cascade_depth=2, **kwargs)
    sp.save(str(tmp_path / 'p.dat'))
    options = ProfilePredictor.load(str(tmp_path / 'p.dat')).meta['options']
    assert {k: options[k] for k in PROFILE_OPTIONS} == PROFILE_OPTIONS


def test_profile_weights_fit_mirror_and_round_trip(tmp_path):
    """Per |yaw| bin and landmark, the weight of the turned-face predictor against the blend is the
    least-squares one (exact predictor -> 1, useless -> 0), mirrored for faces turned the other way,
    unused below the first edge; face_hybrid.json keeps it; a wrong shape is refused."""
    from depthmarks_ros.core.face.ibug68 import FLIP_68
    rng = np.random.default_rng(3)
    ref = _shape(rng)
    g = [ref * 100 + rng.normal(0, 1, (68, 2)) for _ in range(20)]
    good = [x.copy() for x in g]                                      # exact at 45-60 deg
    bad = [x + rng.normal(0, 30, (68, 2)) for x in g]                 # far off at >= 60
    blended = [x + rng.normal(0, 3, (68, 2)) for x in g]
    yaws = [50.0] * 10 + [-70.0] * 10
    preds = good[:10] + bad[10:]
    edges = np.array([30.0, 45.0, 60.0, 360.0])
    v = HybridBlend.fit_profile_weights(edges, preds, blended, g, [1.0] * 20, yaws, [1.0] * 20)
    assert np.all(v[1] > 0.95) and np.all(v[2] < 0.1) and np.all(v[0] == 0.5)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    b.profile_edges, b.profile_weights, b.profile_cov = edges, v, np.tile(np.eye(2) * 1e-3, (68, 1, 1))
    b.profile_weights[1, 0] = 0.3
    assert b.profile_point_weights(20.0) is None
    assert b.profile_point_weights(50.0)[0] == 0.3 and b.profile_point_weights(-50.0)[FLIP_68[0]] == 0.3
    b.save(str(tmp_path / 'h.json'))
    b2 = HybridBlend.load(str(tmp_path / 'h.json'))
    np.testing.assert_allclose(b2.profile_weights, b.profile_weights, atol=1e-4)
    d = json.loads((tmp_path / 'h.json').read_text())
    d['profile']['weights'] = d['profile']['weights'][:2]
    (tmp_path / 'h.json').write_text(json.dumps(d))
    with pytest.raises(ValueError, match='h.json'):
        HybridBlend.load(str(tmp_path / 'h.json'))


def test_turned_face_joins_the_blend_and_its_file_is_checked(tmp_path, frame, monkeypatch):
    """With the shipped face_profile_68.dat, a face the quick PnP solve calls turned (here: made to)
    gets the turned-face predictor's points weighted in; a near-frontal one does not; a corrupt file is
    named at start-up, a missing one leaves the blend alone."""
    import shutil
    from depthmarks_ros.core.face import hybrid as hybrid_mod
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    for name in ('face_hybrid.json', 'face_mesh_to_68.npz', 'face_profile_68.dat', 'face_profile_68.json'):
        shutil.copy(f'{DATA_DIR}/{name}', tmp_path / name)
    lm = FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path), uncertainty=False)
    assert lm.backend.profile is not None
    frontal = lm.process(frame, K)[0].landmarks68
    monkeypatch.setattr(hybrid_mod, 'quick_yaw', lambda pts, size, model=None: 50.0)
    turned = lm.process(frame, K)[0].landmarks68
    lm.close()
    moved = np.linalg.norm(turned - frontal, axis=1)
    assert np.all(np.isfinite(turned)) and 0.0 < np.median(moved) < 0.3 * np.ptp(frontal[:, 0])
    (tmp_path / 'face_profile_68.dat').write_bytes(b'garbage')
    with pytest.raises(BackendError, match='face_profile_68.dat'):
        FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path))
    (tmp_path / 'face_profile_68.dat').unlink()
    monkeypatch.undo()
    lm = FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path), uncertainty=False)
    assert lm.backend.profile is None
    np.testing.assert_allclose(lm.process(frame, K)[0].landmarks68, frontal, atol=1e-6)   # the blend alone
    lm.close()


def test_older_keypoint_map_in_box_units_and_collapsed_keypoints(tmp_path):
    """A face_hybrid.json from before kp_ref (kp_map, no kp_ref) is read as the old map in detector-box
    units about the box centre; keypoints collapsed onto one point (no similarity to kp_ref) fall back
    to the box template, in the blend and in the backend."""
    rng = np.random.default_rng(7)
    ref = _shape(rng)
    b = HybridBlend.fit(ref, [ref], [ref], [ref], [1.0], [0.0], [1.0])
    b.kp_map, b.kp_cov = rng.normal(0, 0.1, (13, 136)), np.tile(np.eye(2) * 1e-3, (68, 1, 1))
    b.save(str(tmp_path / 'old.json'))
    assert 'kp_ref' not in json.loads((tmp_path / 'old.json').read_text())
    old = HybridBlend.load(str(tmp_path / 'old.json'))
    assert old.kp_ref is None
    box, kp = np.array([100.0, 80.0, 220.0, 200.0]), rng.uniform(110, 210, (6, 2))
    u = (kp - [160.0, 140.0]) / 120.0
    np.testing.assert_allclose(old.from_keypoints(box, kp),
                               (np.concatenate([u.ravel(), [1.0]]) @ b.kp_map).reshape(68, 2) * 120.0 + [160.0, 140.0],
                               atol=1e-3)
    lm = FaceLandmarker('hybrid', static=True, mmod=False)
    blend = lm.backend.blend
    assert blend.kp_ref is not None and blend.box_template is not None
    collapsed = np.tile([160.0, 140.0], (6, 1))
    assert blend.from_keypoints(box, collapsed) is None
    from depthmarks_ros.core.face.detection import Detection
    det = lm.backend.mesh._detector

    def view(name, which, v, rgb):      # the first view finds a face whose keypoints collapsed
        dets = [Detection(box.copy(), 0.9, name, keypoints=collapsed.copy())] if name == 'mp_short' else []
        det._seen[name] = dets
        return dets
    det._view = view
    faces = lm.process(np.full((480, 640, 3), 128, np.uint8), FACE_K)
    assert len(faces) == 1 and faces[0].layout == 'box68'
    np.testing.assert_allclose(faces[0].landmarks68, blend.from_box(box, 0.0))
    lm.close()


def test_the_mesh_check_uses_the_keypoints_of_the_same_face_not_a_neighbours(frame, monkeypatch):
    """A smaller, better-scored face behind the checked face's head overlaps its mesh box too: the check
    runs the keypoint path on the face of highest IoU with the mesh box (before: the first in score
    order, which replaced the face by its neighbour's points and lost it)."""
    from types import SimpleNamespace
    lm = FaceLandmarker('hybrid', static=True, mmod=False)
    be = lm.backend
    (plain,) = be.process(frame)
    x0, y0, x1, y1 = plain.bbox
    w, h = x1 - x0, y1 - y0
    own = SimpleNamespace(box=np.array([x0 + 0.1 * w, y0 + 0.25 * h, x1 - 0.1 * w, y1 - 0.05 * h]), keypoints='own',
                          view_keypoints=['own'], views=2, score=0.90)
    behind = SimpleNamespace(box=np.array([x1 - 0.2 * w, y0 - 0.1 * h, x1 + 0.3 * w, y0 + 0.3 * h]), keypoints='behind',
                             view_keypoints=['behind'], views=2, score=0.93)
    be.mesh._detector.last_faces = [behind, own]
    used = []
    monkeypatch.setattr(be, '_from_keypoints', lambda rgb, box, kp, views: used.append(kp) or None)
    assert be._check_mesh_face(frame, plain) is plain and used == ['own']
    lm.close()


def test_no_camera_means_the_assumed_camera(hybrid, frame):
    """Without K the pipeline's sigma features are those with core/camera.assumed_K (the `face`
    command's default too): one default camera, not one per caller."""
    from depthmarks_ros.core.camera import assumed_K
    h, w = frame.shape[:2]
    (a,) = hybrid.process(frame, None)
    (b,) = hybrid.process(frame, assumed_K(w, h))
    assert a.head_pose is None and b.head_pose is not None
    assert a.extras['yaw0'] == b.extras['yaw0']
    np.testing.assert_array_equal(a.cov68, b.cov68)
    (c,) = hybrid.process(frame, assumed_K(w, h, 3.0 * max(w, h)))   # another camera: other features
    assert c.extras['yaw0'] != a.extras['yaw0']


def test_the_blend_s_yaw_is_solved_on_the_fitted_folder_s_3d_mean_face(tmp_path, frame, monkeypatch):
    """The hybrid blend's per-face yaw (quick_yaw in blend_mesh_face) takes the 3D mean face of the folder
    FaceLandmarker reads (data_dir), not the shipped one."""
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.core.face import hybrid as hybrid_mod
    from depthmarks_ros.core.face.head_pose import face_model_68
    seed_output(str(tmp_path))
    np.save(tmp_path / 'face_model_68.npy', face_model_68() * [1.0, 1.0, 2.5])
    seen = []
    real = hybrid_mod.quick_yaw
    monkeypatch.setattr(hybrid_mod, 'quick_yaw', lambda pts, size, model=None: seen.append(model) or real(pts, size, model))
    lm = FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path), uncertainty=False)
    try:
        assert len(lm.process(frame, K)) == 1
    finally:
        lm.close()
    assert seen and all(m is face_model_68(str(tmp_path)) for m in seen)


def test_stack_records_keep_each_faces_estimates_and_mark_the_missing_turned_face_points(tmp_path):
    """fit-face's cross-fitted hybrid estimates in --cache (model_fit.stack_records, STACK_RECORDS, read by
    benchmarks/study_face_stack.py): per face, in the faces' order, its stem, set, fold, m / d / output /
    ground truth, the turned-face predictor's points where it ran and NaN where it did not; they survive
    the records' save and load."""
    from types import SimpleNamespace
    from depthmarks_ros.core.face.model_fit import stack_records
    from depthmarks_ros.core.face.sigma_fit import load_records, save_records
    rng = np.random.default_rng(5)
    faces = [SimpleNamespace(stem=f'f{i}', dataset='aflw2000_3d' if i < 3 else '300w_lfpw_test',
                             landmarks68=rng.normal(100, 20, (68, 2))) for i in range(4)]
    m, d, out = (list(rng.normal(100, 20, (4, 68, 2))) for _ in range(3))
    e = {1: rng.normal(100, 20, (68, 2)), 3: rng.normal(100, 20, (68, 2))}     # turned faces only
    rec = stack_records(faces, [0, 4, 2, 1], m, d, e, out, [5.0, 40.0, -10.0, -50.0], [1.0, 2.0, 3.0, 4.0])
    save_records(str(tmp_path / 's.npz'), rec)
    back = load_records(str(tmp_path / 's.npz'))
    assert back['stem'].tolist() == ['f0', 'f1', 'f2', 'f3']
    assert back['dataset'].tolist() == ['aflw2000_3d'] * 3 + ['300w_lfpw_test']
    assert back['fold'].tolist() == [0, 4, 2, 1]
    for k, v in (('m68', m), ('d68', d), ('out68', out), ('gt68', [f.landmarks68 for f in faces])):
        np.testing.assert_array_equal(back[k], np.array(v))
    np.testing.assert_array_equal(back['e68'][1], e[1])
    np.testing.assert_array_equal(back['e68'][3], e[3])
    assert np.isnan(back['e68'][[0, 2]]).all()
    np.testing.assert_array_equal(back['yaw'], [5.0, 40.0, -10.0, -50.0])
    np.testing.assert_array_equal(back['norm'], [1.0, 2.0, 3.0, 4.0])


def test_the_shipped_3d_convention_artefacts_record_their_set_split_and_command():
    """The '3d' landmark convention's own files ship beside the '2d' ones (core/face/convention.py), each
    fitted on AFLW2000-3D's fit split alone and saying so (convention, split rule, command, faces), small,
    the blend naming the shipped turned-face predictor by its sha1 (so a later '2d' profile refit in a
    fit-face -o folder, seeded with both, warns); a hybrid in that convention reads them (not the '2d' map)."""
    import os
    from depthmarks_ros.core.face.artefacts import file_sha1
    from depthmarks_ros.core.face.convention import OWN_FILES, artefact_name
    from depthmarks_ros.core.face.head_pose import DATA_DIR
    from depthmarks_ros.core.face.mapping import MeshTo68
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel
    paths = {n: os.path.join(DATA_DIR, artefact_name(n, '3d')) for n in OWN_FILES}
    assert sum(os.path.getsize(p) for p in paths.values()) < 1.5e6
    metas = [MeshTo68.load(paths['face_mesh_to_68.npz']).meta, HybridBlend.load(paths['face_hybrid.json']).meta,
             LandmarkSigmaModel.load(paths['face_sigma_hybrid.json']).meta]
    for meta in metas:
        assert meta['convention'] == '3d' and 'sha1' in meta['split_rule'] and '--convention 3d' in meta['command']
        assert meta['faces'] > 500
    assert 'AFLW2000-3D alone' in metas[0]['data'] and 'AFLW2000-3D alone' in metas[1]['data']
    assert list(metas[2]['faces_per_set']) == ['aflw2000_3d']
    assert metas[1]['profile']['predictor_sha1'] == file_sha1(os.path.join(DATA_DIR, 'face_profile_68.dat'))
    two = MeshTo68.load(os.path.join(DATA_DIR, 'face_mesh_to_68.npz'))
    three = FaceLandmarker('hybrid', static=True, convention='3d')
    try:
        assert three.convention == '3d' and not np.allclose(three.mapping.W, two.W)
        assert three.pose_key('mediapipe478') == 'hybrid_3d'         # its own head-pose angle factors
        made = three.fit['head_pose']['angle_scales_made_by_path']['hybrid_3d']
        assert '--convention 3d' in made['command'] and 'sha1' in made['split_rule']
    finally:
        three.close()
