"""Face landmarks, core (ROS-free): a real face (skimage astronaut, the ``face_image`` fixture),
both backends, landmarks under known transforms, uncertainty, 3D lifting, head pose and its
convention, fitted artefacts (mesh->68 map, sigma model), the detector cascade."""
import itertools
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from depthmarks_ros.core.face.head_pose import (angles_from_rotation, face_model_68, rotation_from_angles,
                                                solve_head_pose)
from depthmarks_ros.core.face.metrics import calibration_2d, nme_interocular
from depthmarks_ros.core.face.pipeline import FaceLandmarker
from depthmarks_ros.core.tracking import CentroidTracker
from depthmarks_ros.testing.scenes import FACE_K as K


@pytest.fixture(scope='module', params=['mediapipe', 'dlib'])
def landmarker(request):
    lm = FaceLandmarker(request.param, static=True)
    yield lm
    lm.close()


def test_finds_the_face_and_both_backends_agree(face_image):
    mp = FaceLandmarker('mediapipe', static=True).process(face_image, K)
    dl = FaceLandmarker('dlib', static=True).process(face_image, K)
    assert len(mp) == 1 and len(dl) >= 1
    big = max(dl, key=lambda f: (f.bbox[2] - f.bbox[0]))
    assert mp[0].landmarks.shape == (468, 2) and big.landmarks.shape == (68, 2)
    assert nme_interocular(mp[0].landmarks68, big.landmarks68) < 0.06  # the 468 -> 68 mapping is right


def test_landmarks_follow_a_known_transform(landmarker, face_image):
    base = landmarker.process(face_image, K)[0].landmarks68
    A = np.array([[0.92, 0, 30], [0, 0.92, 15]])          # scale + shift
    moved = cv2.warpAffine(face_image, A, (640, 480), borderValue=(90, 90, 90))
    landmarker.tracker = CentroidTracker()
    got = landmarker.process(moved, K)[0].landmarks68
    expected = base @ A[:, :2].T + A[:, 2]
    assert nme_interocular(got, expected) < 0.05


def test_uncertainty_and_visibility_are_sane(landmarker, face_image):
    f = landmarker.process(face_image, K)[0]
    sig = np.sqrt(np.trace(f.cov68, axis1=1, axis2=2) / 2)
    assert np.all(sig > 0) and np.all(sig < 20)
    assert np.all(np.linalg.eigvalsh(f.cov68) > 0)      # positive definite
    assert np.all((f.visibility68 >= 0) & (f.visibility68 <= 1))
    # a face cut by the image border: the landmarks outside lose visibility
    shifted = np.full_like(face_image, 90)
    shifted[:, :460] = face_image[:, 180:]
    landmarker.tracker = CentroidTracker()
    faces = landmarker.process(shifted, K)
    if faces:  # some backends drop a half face entirely, which is also fine
        lm, vis = faces[0].landmarks68, faces[0].visibility68
        assert vis[lm[:, 0] < 0].max(initial=0) == 0


def test_dlib_video_mode_follows_a_moving_face_with_few_full_image_scans(face_image):
    from depthmarks_ros.core.face.backends import DlibFace68
    every, tracked = DlibFace68(redetect_every=1), DlibFace68(redetect_every=5)
    grey = np.full_like(face_image, 90)
    for i in range(12):
        A = np.array([[1.0, 0, 4.0 * i], [0, 1.0, 2.0 * i]])   # the face drifts 4.5 px per face_image
        img = cv2.warpAffine(face_image, A, (640, 480), borderValue=(90, 90, 90))
        ref, got = every.process(img), tracked.process(img)
        assert len(ref) == len(got) == 1
        err = np.linalg.norm(got[0].landmarks - ref[0].landmarks, axis=1)
        assert np.median(err) < 2.0 and err.max() < 6.0, (i, np.median(err))   # as if detected
    assert every.full_scans == 12 and tracked.full_scans == 3      # frames 0, 5, 10
    assert tracked.process(grey) == [] and tracked.process(face_image)   # gone at once; back at the next full scan


def test_no_face_grey_and_odd_sizes(landmarker):
    assert landmarker.process(np.full((240, 320, 3), 128, np.uint8), K) == []
    assert landmarker.process(np.random.default_rng(0).integers(0, 255, (101, 77, 3), dtype=np.uint8), K) == []


def test_depth_lifting_and_head_pose(face_image):
    lm = FaceLandmarker('mediapipe', static=True)
    depth = np.full((480, 640), 1.5, np.float32)
    f = lm.process(face_image, K, depth)[0]
    assert np.nanmedian(f.points3d[:, 2]) == pytest.approx(1.5, abs=0.01)
    assert f.cov3d.shape == (468, 3, 3)
    hp = f.head_pose
    assert hp is not None and abs(hp.yaw) < 25 and abs(hp.roll) < 20 and 0.2 < hp.tvec[2] < 3.0
    assert np.all(np.diag(hp.covariance) > 0)


def test_head_pose_recovers_synthetic_rotations():
    model = face_model_68()
    rng = np.random.default_rng(0)
    errs = []
    for yaw, pitch, roll in ((0, 0, 0), (30, 0, 0), (-20, 15, 5), (10, -10, -15)):
        R = rotation_from_angles(yaw, pitch, roll)
        cam_pts = model @ R.T + np.array([0.05, -0.02, 0.8])
        uv = cam_pts @ K.T
        uv = uv[:, :2] / uv[:, 2:3] + rng.normal(0, 0.5, (68, 2))
        hp = solve_head_pose(uv, K, np.tile(np.eye(2) * 0.25, (68, 1, 1)))
        errs.append(np.abs(np.array([hp.yaw, hp.pitch, hp.roll]) - [yaw, pitch, roll]).max())
        assert np.allclose(angles_from_rotation(R), (yaw, pitch, roll), atol=1e-6)
    assert max(errs) < 3.0


def test_head_pose_covariance_matches_monte_carlo_spread():
    model = face_model_68()
    R = rotation_from_angles(15, -5, 3)
    uv_true = model @ R.T + np.array([0.02, 0.01, 0.9])
    uv_true = uv_true @ K.T
    uv_true = uv_true[:, :2] / uv_true[:, 2:3]
    rng = np.random.default_rng(1)
    sigma_px = np.where(np.arange(68) < 17, 2.0, 0.7)            # jaw noisier than the inner face
    covs = np.eye(2)[None] * sigma_px[:, None, None] ** 2
    poses = [solve_head_pose(uv_true + rng.normal(0, 1, (68, 2)) * sigma_px[:, None], K, covs) for _ in range(300)]
    est = np.array([np.r_[p.rvec, p.tvec] for p in poses])
    predicted = np.sqrt(np.diag(poses[0].covariance))
    np.testing.assert_allclose(est.std(axis=0), predicted, rtol=0.25)


def test_calibration_metric_on_gaussian_errors():
    rng = np.random.default_rng(0)
    covs = np.tile(np.array([[4.0, 1.0], [1.0, 2.0]]), (20000, 1, 1))
    errs = rng.multivariate_normal([0, 0], covs[0], 20000)
    cal = calibration_2d(errs, covs)
    assert cal['within_1'] == pytest.approx(0.393, abs=0.015) and cal['within_2'] == pytest.approx(0.865, abs=0.01)


def test_tracker_keeps_ids():
    t = CentroidTracker()
    a = t.update([np.array([0, 0, 10, 10]), np.array([100, 100, 120, 120])])
    b = t.update([np.array([102, 101, 122, 121]), np.array([1, 1, 11, 11])])
    assert b == [a[1], a[0]]


def test_learned_uncertainty_model_replaces_tta(tmp_path, face_image):
    from depthmarks_ros.core.learning.inference import LandmarkUncertaintyModel
    from depthmarks_ros.core.learning.model import PatchUncertaintyNet
    LandmarkUncertaintyModel(PatchUncertaintyNet(32, 8), {'patch': 32, 'width': 8,
                                                          'patch_side_fraction': 0.2}).save(str(tmp_path / 'm'))
    tta = FaceLandmarker('dlib', static=True).process(face_image, K)[0]
    learned = FaceLandmarker('dlib', static=True, learned_model=str(tmp_path / 'm')).process(face_image, K)[0]
    assert learned.cov68.shape == (68, 2, 2) and not np.allclose(learned.cov68, tta.cov68)
    np.testing.assert_allclose(learned.landmarks68, tta.landmarks68)


def test_tiny_face_and_grayscale_input(landmarker, face_image):
    landmarker.tracker = CentroidTracker()
    tiny = np.full_like(face_image, 90)
    tiny[200:224, 300:324] = cv2.resize(face_image[:, 80:560], (24, 24))   # a 24 px face: too small
    assert landmarker.process(tiny, K) == []
    grey = cv2.cvtColor(cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    landmarker.tracker = CentroidTracker()
    faces = landmarker.process(grey, K)
    assert len(faces) >= 1 and faces[0].landmarks68.shape == (68, 2)


def _project(points, K_):
    uv = points @ K_.T
    return uv[:, :2] / uv[:, 2:3]


def test_head_pose_angles_follow_the_aflw_biwi_convention_on_a_synthetic_head():
    """yaw > 0 turns the face to image-left, pitch > 0 looks up, roll > 0 turns it clockwise in the
    image; the solver returns the angles the synthetic head was posed with."""
    model = face_model_68()
    t = np.array([0.0, 0.0, 0.8])
    front = _project(model + t, K)
    nose, centre = 30, slice(17, 48)

    def posed(yaw=0.0, pitch=0.0, roll=0.0):
        return _project(model @ rotation_from_angles(yaw, pitch, roll).T + t, K)

    # the nose tip moves relative to the eyes/brows: left for yaw > 0, up for pitch > 0
    def nose_offset(uv):
        return uv[nose] - uv[centre].mean(axis=0)
    assert nose_offset(posed(yaw=30))[0] < nose_offset(front)[0] - 10
    assert nose_offset(posed(yaw=-30))[0] > nose_offset(front)[0] + 10
    assert nose_offset(posed(pitch=20))[1] < nose_offset(front)[1] - 5
    # roll > 0 is clockwise in the image (y down): the image-left eye corner rises, the right one drops
    r = posed(roll=20)
    assert r[36, 1] < front[36, 1] - 5 and r[45, 1] > front[45, 1] + 5
    # the face looks along -z of the head face_image at zero pose (REP-103 optical camera: towards the camera)
    assert model[30, 2] < model[[36, 45], 2].mean()
    for yaw, pitch, roll in ((35, 0, 0), (0, 25, 0), (0, 0, -20), (-40, -15, 10), (60, 20, -25)):
        R = rotation_from_angles(yaw, pitch, roll)
        assert np.allclose(angles_from_rotation(R), (yaw, pitch, roll), atol=1e-9)
        hp = solve_head_pose(_project(model @ R.T + t, K), K)
        assert np.allclose([hp.yaw, hp.pitch, hp.roll], [yaw, pitch, roll], atol=0.05)
        assert np.allclose(hp.rotation, R, atol=1e-3)     # the quaternion's rotation is this one


def test_core_learning_does_not_import_core_face():
    """core/face uses core/learning (losses, patch model); never the other way (issue 16 item 6)."""
    import pathlib
    import depthmarks_ros.core.learning as L
    for path in pathlib.Path(L.__file__).parent.glob('*.py'):
        assert 'core.face' not in path.read_text(), path


def _posed(mesh, angle, scale, shift):
    c, s = np.cos(angle), np.sin(angle)
    R = np.array([[c, -s], [s, c]])
    out = mesh.copy()
    out[:, :2] = mesh[:, :2] @ R.T * scale + shift
    out[:, 2] = mesh[:, 2] * scale
    return out


def test_learned_mesh_to_68_map_recovers_a_known_map_under_similarity_and_round_trips(tmp_path):
    from depthmarks_ros.core.face.mapping import MeshTo68
    rng = np.random.default_rng(0)
    base = rng.normal(0, 50, (468, 3))
    W = np.zeros((468, 68))                    # each iBUG point: a mix of 3 vertices
    for j in range(68):
        W[rng.choice(468, 3, replace=False), j] = rng.dirichlet(np.ones(3))
    modes = rng.normal(0, 3, (5, 468, 3))                        # shape variation: 5 modes
    meshes, targets = [], []
    for _ in range(150):
        m = base + np.tensordot(rng.normal(0, 1, 5), modes, 1)
        m = _posed(m, rng.uniform(-0.4, 0.4), rng.uniform(0.5, 2), rng.uniform(0, 400, 2))
        meshes.append(m)
        targets.append(W.T @ m[:, :2])
    mp = MeshTo68.fit(meshes, targets, ridge=1e-6)
    test = _posed(base + np.tensordot(rng.normal(0, 1, 5), modes, 1), 0.3, 1.3, np.array([200.0, 150.0]))
    np.testing.assert_allclose(mp.apply(test), W.T @ test[:, :2], atol=0.5)
    mp.save(str(tmp_path / 'm.npz'))
    np.testing.assert_allclose(MeshTo68.load(str(tmp_path / 'm.npz')).apply(test), mp.apply(test), atol=0.05)
    (tmp_path / 'bad.npz').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='bad.npz'):
        MeshTo68.load(str(tmp_path / 'bad.npz'))


def test_sigma_model_fitted_by_nll_recovers_a_known_heteroscedastic_sigma(tmp_path):
    from scipy.stats import spearmanr
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel, point_features
    rng = np.random.default_rng(1)
    F = 80
    base = face_model_68()[:, :2] * 1000 + 200
    L = np.array([base + rng.normal(0, 1, (68, 2)) for _ in range(F)])
    yaw = rng.uniform(0, 80, F)
    spread = rng.uniform(0.2, 3.0, (F, 68))
    shape = np.diag([2.0, 0.5])                 # wider than tall in the face face_image
    true_s = 0.5 * spread * np.exp(0.01 * yaw)[:, None]
    E = rng.multivariate_normal([0, 0], shape, (F, 68)) * true_s[..., None]
    iod = np.linalg.norm(L[:, 45] - L[:, 36], axis=1)
    feats = np.array([point_features(spread[i], iod[i], rng.normal(), rng.normal()) for i in range(F)])
    m = LandmarkSigmaModel.fit(E, L, feats, yaw, steps=150)
    cov = np.array([m.covariance(L[i], feats[i], yaw[i]) for i in range(F)])
    sd = np.sqrt(np.trace(cov, axis1=2, axis2=3) / 2)
    assert spearmanr(sd.ravel(), true_s.ravel()).correlation > 0.95
    assert np.median(sd / true_s) == pytest.approx(np.sqrt(1.25), rel=0.1)   # trace/2 of the shape
    assert np.median(cov[..., 0, 0] / cov[..., 1, 1]) == pytest.approx(4.0, rel=0.25)
    cal = calibration_2d(E.reshape(-1, 2), cov.reshape(-1, 2, 2))
    assert abs(cal['within_1'] - 0.393) < 0.03 and abs(cal['within_2'] - 0.865) < 0.03
    m.save(str(tmp_path / 's.json'))
    np.testing.assert_allclose(LandmarkSigmaModel.load(str(tmp_path / 's.json')).a, m.a)


def test_corrupt_or_missing_artefacts(tmp_path, face_image):
    """A corrupt fitted file is a BackendError naming it; an empty data folder falls back to the
    unfitted methods (fixed map, TTA covariance) and still finds the face."""
    from depthmarks_ros.core.face.backends import BackendError
    (tmp_path / 'face_sigma_dlib_hog.json').write_text('{"a": [1, 2]')
    with pytest.raises(BackendError, match='face_sigma_dlib_hog.json'):
        FaceLandmarker('dlib', static=True, data_dir=str(tmp_path))
    (tmp_path / 'face_sigma_dlib_hog.json').unlink()
    (tmp_path / 'face_mesh_to_68.npz').write_bytes(b'\x00' * 10)
    with pytest.raises(BackendError, match='face_mesh_to_68.npz'):
        FaceLandmarker('mediapipe', static=True, data_dir=str(tmp_path))
    (tmp_path / 'face_mesh_to_68.npz').unlink()
    lm = FaceLandmarker('dlib', static=True, data_dir=str(tmp_path))
    assert lm.sigma_model is None and len(lm.process(face_image, K)) == 1
    lm.close()


def test_a_fitted_folder_s_3d_mean_face_is_the_one_every_step_uses(tmp_path, face_image):
    """A folder's face_model_68.npy (fit-face --parts model -o DIR) is read once per folder and again once
    rewritten; FaceLandmarker(data_dir=DIR) solves the head pose, the sigma model's pose features
    (plain-solve yaw, reprojection residual) and the hybrid blend's yaw on it, never on the shipped one."""
    import os
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    shipped = face_model_68()
    assert face_model_68(DATA_DIR) is shipped
    deeper = shipped * [1.0, 1.0, 2.5]             # another face: its pose and residuals differ
    np.save(tmp_path / 'face_model_68.npy', deeper)
    assert np.array_equal(face_model_68(str(tmp_path)), deeper)
    assert face_model_68(str(tmp_path)) is face_model_68(str(tmp_path))
    out = {}
    for key, folder in (('shipped', DATA_DIR), ('folder', str(tmp_path))):
        lm = FaceLandmarker('dlib', static=True, dlib_detector='hog', data_dir=folder, all_views=False, mmod=False)
        assert lm.face_model is face_model_68(folder)
        f = max(lm.process(face_image, K), key=lambda f: f.bbox[2] - f.bbox[0])
        assert f.extras['yaw0'] == solve_head_pose(f.landmarks68, K, model=lm.face_model).yaw
        out[key] = (f.head_pose.rvec, f.extras['reproj68'])
        lm.close()
    assert not np.allclose(out['shipped'][0], out['folder'][0], atol=1e-3)
    assert not np.allclose(out['shipped'][1], out['folder'][1], atol=1e-2)
    lm = FaceLandmarker('hybrid', static=True, data_dir=str(tmp_path), uncertainty=False)    # to its blend's yaw
    assert lm.backend.face_model is face_model_68(str(tmp_path))
    lm.close()
    mtime = os.stat(tmp_path / 'face_model_68.npy').st_mtime_ns
    np.save(tmp_path / 'face_model_68.npy', shipped)            # rewritten (fit-face's model part): read again,
    os.utime(tmp_path / 'face_model_68.npy', ns=(mtime, mtime))  # even with the old mtime and the same size
    assert np.array_equal(face_model_68(str(tmp_path)), shipped)
    from depthmarks_ros.core.face import head_pose
    assert sum(k.startswith(os.path.realpath(tmp_path) + os.sep) for k in head_pose._MODELS) == 1    # one entry per file


def test_the_3d_mean_face_file_is_hashed_once_per_version(tmp_path, monkeypatch):
    """Outside a node (`depthmarks face`, the benchmarks) face_model_68 is asked once per face: a file
    that has not changed since it was read is not read or hashed again (one stat), one that changed is."""
    import hashlib
    import os
    import types
    from depthmarks_ros.core.face import head_pose
    hashed = []

    def sha1(raw):
        hashed.append(len(raw))
        return hashlib.sha1(raw)
    monkeypatch.setattr(head_pose, 'hashlib', types.SimpleNamespace(sha1=sha1))
    monkeypatch.setattr(head_pose, '_SETTLE_NS', -10**12)     # as if read long after it was written
    shipped = face_model_68()
    path = tmp_path / 'face_model_68.npy'
    np.save(path, shipped)
    before = len(hashed)
    first = face_model_68(str(tmp_path))
    assert np.array_equal(first, shipped) and len(hashed) == before + 1
    assert all(face_model_68(str(tmp_path)) is first for _ in range(3)) and len(hashed) == before + 1
    mtime = os.stat(path).st_mtime_ns
    np.save(path, shipped * [1.0, 1.0, 2.5])                   # rewritten, the same size
    os.utime(path, ns=(mtime, mtime + 1_000_000_000))
    assert np.array_equal(face_model_68(str(tmp_path)), shipped * [1.0, 1.0, 2.5]) and len(hashed) == before + 2


def test_a_rewrite_the_stat_cannot_show_is_seen_while_the_file_is_new(tmp_path, monkeypatch):
    """A rewrite of the same size within the file system's timestamp tick leaves the file's stat as it
    was (here: a frozen stat): a file whose timestamps are that recent is hashed on every call."""
    import time
    from depthmarks_ros.core.face import head_pose
    frozen = ((1, 2, 3, 4, 5), time.time_ns() + 10**12)   # 'recent' however long the machine takes
    monkeypatch.setattr(head_pose, '_file_version', lambda path: frozen)
    shipped = face_model_68()
    np.save(tmp_path / 'face_model_68.npy', shipped)
    assert np.array_equal(face_model_68(str(tmp_path)), shipped)
    np.save(tmp_path / 'face_model_68.npy', shipped * [1.0, 1.0, 2.5])
    assert np.array_equal(face_model_68(str(tmp_path)), shipped * [1.0, 1.0, 2.5])


@pytest.mark.parametrize('content', [b'', b'\x93NUMPY\x01\x00v\x00{', 'pickle', 'shape', 'npz', 'int'])
def test_an_unreadable_3d_mean_face_is_a_backend_error_naming_the_file(tmp_path, content):
    """An empty, truncated, pickled, wrongly shaped, integer-typed or .npz (under the .npy name)
    face_model_68.npy is the BackendError the node and `depthmarks face` catch (a clear start error /
    message), naming the file and a runnable fix; not an EOFError, an AttributeError or an unnamed
    ValueError with a traceback."""
    from depthmarks_ros.core.face.backends import BackendError
    path = tmp_path / 'face_model_68.npy'
    if content == 'pickle':
        np.save(path, np.array([{'a': 1}], dtype=object), allow_pickle=True)
    elif content == 'shape':
        np.save(path, np.zeros((5, 3)))
    elif content == 'npz':
        with open(path, 'wb') as f:                     # np.savez(path) would append .npz to the name
            np.savez(f, model=face_model_68())
    elif content == 'int':
        np.save(path, np.round(face_model_68() * 1000).astype(np.int64))
    else:
        path.write_bytes(content)
    for call in (lambda: face_model_68(str(tmp_path)), lambda: FaceLandmarker('dlib', static=True, data_dir=str(tmp_path))):
        with pytest.raises(BackendError, match='face_model_68.npy') as err:
            call()
        assert 'fit-face --data DATA -o <folder> --parts model' in str(err.value)


def test_detector_cascade_finds_dark_blurred_and_border_faces_and_nothing_in_noise(face_image):
    from depthmarks_ros.core.face.detection import FaceDetector
    det = FaceDetector()
    dark = (face_image.astype(np.float32) * 0.25).astype(np.uint8)
    blurred = cv2.GaussianBlur(face_image, (0, 0), 3)
    border = np.full_like(face_image, 90)
    border[:, :420] = face_image[:, 220:]                       # the face cut by the left edge
    for img in (face_image, dark, blurred, border):
        found = det.detect(img)
        assert len(found) >= 1 and found[0].box[2] > found[0].box[0]
    assert det.detect(np.full((120, 160, 3), 128, np.uint8)) == []
    raw = det.detect(face_image)[0].box
    det.stages = (('mp_full_pad2', 'full', 'pad2'),)            # the widest padded view maps its box back
    padded = det.detect(face_image)
    assert len(padded) == 1 and np.abs(padded[0].box - raw).max() < 0.1 * (raw[2] - raw[0])
    det.stages = det.STAGES
    for size in (1, 8):                                         # dlib's MMOD raises on images this small
        assert det.detect(np.full((size, size, 3), 128, np.uint8)) == []
    det.close()


def test_sigma_fit_weights_the_sets_equally_and_learns_luvli_visibility(tmp_path):
    """Records of two sets (one 3x the faces of the other, self-occlusion labels on the big one):
    each set has the same total weight; the LUVLi term learns which points are hidden from yaw and
    widens their sigma; the shares of each set come out near a Gaussian's; the visibility and h
    survive a save/load."""
    from scipy.stats import spearmanr
    from depthmarks_ros.core.face.metrics import roc_auc
    from depthmarks_ros.core.face.sigma_fit import evaluate, fit_sigma, load_records, save_records, set_weights
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel, record_features
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    rec, true_s = synthetic_sigma_records(np.random.default_rng(3))
    w = set_weights(rec['dataset'])
    assert w[rec['dataset'] == '300w'].sum() == pytest.approx(w[rec['dataset'] == 'aflw2000_3d'].sum())
    save_records(str(tmp_path / 'r.npz'), rec)
    rec = load_records(str(tmp_path / 'r.npz'))
    m = fit_sigma(rec, steps=100)
    vis = m.visibility(record_features(rec))
    lab = rec['has_hidden']
    assert roc_auc(~rec['hidden'][lab], vis[lab]) > 0.95 and m.h > 0.5
    assert m.w[m.features.index('sharp')] == pytest.approx(-1.0, abs=0.2)     # soft faces: wider sigma
    cov = m.covariances_records(rec)
    assert spearmanr(np.sqrt(np.trace(cov, axis1=2, axis2=3) / 2).ravel(), true_s.ravel()).correlation > 0.9
    fresh, _ = synthetic_sigma_records(np.random.default_rng(4))   # scored on records it was not fitted on
    for name, cal in evaluate(m, fresh).items():
        assert abs(cal['within_1'] - 0.393) < 0.05 and abs(cal['within_2'] - 0.865) < 0.05, name
    m.save(str(tmp_path / 's.json'))
    back = LandmarkSigmaModel.load(str(tmp_path / 's.json'))
    np.testing.assert_allclose(back.covariances_records(rec), cov, rtol=1e-9)
    d = m.to_json()
    d['vis_b'] = d['vis_b'][:3]
    (tmp_path / 'bad.json').write_text(__import__('json').dumps(d))
    with pytest.raises(ValueError, match='bad.json'):
        LandmarkSigmaModel.load(str(tmp_path / 'bad.json'))


def test_reprojection_residual_flags_the_point_off_the_posed_mean_face():
    """The sigma model's plausibility feature: points projected from the 3D mean face in a known pose
    sit on it (< 0.5 px); one point moved 20 px off gets about that residual, the others stay small."""
    from depthmarks_ros.core.face.sigma_model import reprojection_residual
    R = rotation_from_angles(25.0, -10.0, 5.0)
    rvec, _ = cv2.Rodrigues(R)
    pts, _ = cv2.projectPoints(face_model_68(), rvec, np.array([0.0, 0.0, 0.8]), K, None)
    pts = pts.reshape(-1, 2)
    assert reprojection_residual(pts, solve_head_pose(pts, K), K).max() < 0.5
    moved = pts.copy()
    moved[30] += [20.0, 0.0]
    r = reprojection_residual(moved, solve_head_pose(moved, K), K)
    assert r[30] > 12 and np.median(r) < 2
    assert np.all(np.isnan(reprojection_residual(pts, None, K)))


def test_share_scale_puts_as_many_shares_within_tolerance_as_one_factor_can():
    """Two sets whose errors differ 1.6x at the same features (no model can tell them apart): the
    share factor meets as many of the four 1/2-sigma shares (within 5 points) as the best factor
    on a fine grid, where minimising the largest miss would meet fewer."""
    from depthmarks_ros.core.face.sigma_model import FEATURES, SHARE_TOLERANCE, LandmarkSigmaModel
    rng = np.random.default_rng(5)
    F = 300
    L = np.tile(face_model_68()[:, :2] * 1000 + 200, (F, 1, 1))
    iod = np.linalg.norm(L[0, 45] - L[0, 36])
    groups = np.repeat(['a', 'b'], F // 2)
    E = rng.normal(0, 1, (F, 68, 2)) * iod * np.where(groups == 'a', 1.0, 1.6)[:, None, None]
    feats = np.zeros((F, 68, len(FEATURES)))
    m = LandmarkSigmaModel(np.zeros(68), np.zeros(68), np.zeros(1), np.zeros((68, 3)), features=FEATURES[:1])

    r0 = m.radii(E, L, feats, np.zeros(F))           # at scale 1

    def met(k):
        r = r0 / k
        return sum(abs(np.mean(r[groups == g] <= t) - p) <= SHARE_TOLERANCE
                   for g in 'ab' for t, p in ((1, 0.3935), (2, 0.8647)))
    m.fit_share_scale(E, L, feats, np.zeros(F), groups=groups)
    best = max(met(k) for k in np.exp(np.linspace(np.log(0.3), np.log(3.0), 400)))
    assert best >= 2 and met(m.scale) == best


def test_angle_scales_multiply_each_angle_sigma_and_keep_the_correlations():
    from depthmarks_ros.core.face.head_pose import angles_jacobian, scale_angle_covariance
    model = face_model_68()
    uv = model @ rotation_from_angles(30, -10, 5).T + np.array([0.02, 0.01, 0.9])
    uv = uv @ K.T
    hp = solve_head_pose(uv[:, :2] / uv[:, 2:3] + np.random.default_rng(2).normal(0, 1, (68, 2)), K,
                         np.tile(np.eye(2), (68, 1, 1)))
    J = angles_jacobian(hp.rvec)
    before = J @ hp.covariance[:3, :3] @ J.T
    scales = np.array([1.5, 0.7, 2.0])
    cov = scale_angle_covariance(hp, scales)
    after = J @ cov[:3, :3] @ J.T
    np.testing.assert_allclose(np.sqrt(np.diag(after)), scales * np.sqrt(np.diag(before)), rtol=1e-6)
    corr = lambda c: c / np.sqrt(np.outer(np.diag(c), np.diag(c)))     # noqa: E731
    np.testing.assert_allclose(corr(after), corr(before), atol=1e-6)
    np.testing.assert_allclose(np.diag(cov[3:, 3:]), np.diag(hp.covariance[3:, 3:]) * np.prod(scales) ** (2 / 3))
    assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_image_quality_sees_an_upsampled_face_and_a_flat_one(face_image):
    from depthmarks_ros.core.face.sigma_model import image_quality
    grey = cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    l68 = face_model_68()[:, :2] * 1500 + [w / 2, h / 2]
    soft = cv2.resize(cv2.resize(grey, (w // 3, h // 3), interpolation=cv2.INTER_AREA), (w, h))
    flat = (grey.astype(np.float32) * 0.3 + 120).astype(np.uint8)
    sharp0, contrast0 = image_quality(grey, l68)
    assert image_quality(soft, l68)[0] < sharp0 - 0.1
    assert image_quality(flat, l68)[1] < contrast0 - 0.5
    assert image_quality(grey, l68[:, :] * 0 + 5) == (0.0, 0.0)        # no crop: neutral values


def test_landmarker_applies_its_own_backends_angle_scales(face_image):
    """face_fit.json head_pose.angle_scales[<sigma key>] scales that backend's angle sigmas."""
    import copy
    from depthmarks_ros.core.face.head_pose import angles_jacobian
    lm = FaceLandmarker('dlib', static=True)
    fit = copy.deepcopy(lm.fit)
    sds = []
    for scales in ([1.0, 1.0, 1.0], [2.0, 1.0, 0.5]):
        lm.fit = copy.deepcopy(fit)
        lm.fit.setdefault('head_pose', {})['angle_scales'] = {lm.sigma_key: scales}
        hp = lm.process(face_image, K)[0].head_pose
        J = angles_jacobian(hp.rvec)
        sds.append(np.sqrt(np.diag(J @ hp.covariance[:3, :3] @ J.T)))
    lm.close()
    np.testing.assert_allclose(sds[1] / sds[0], [2.0, 1.0, 0.5], rtol=1e-6)


def test_old_records_get_their_image_quality_from_the_images(face_image):
    """Records cached before sharp / contrast existed get both from the images, matched by stem;
    a record without its image is a clear error."""
    from types import SimpleNamespace
    from depthmarks_ros.core.face.sigma_fit import add_image_quality
    from depthmarks_ros.core.face.sigma_model import image_quality
    from depthmarks_ros.testing.face_records import synthetic_sigma_records
    rec, _ = synthetic_sigma_records(np.random.default_rng(0), faces=(2, 1))
    old = {k: v for k, v in rec.items() if k not in ('sharp', 'contrast')}
    old['L'] = old['L'] - old['L'].mean(axis=1, keepdims=True) + [320, 240]
    soft = cv2.GaussianBlur(face_image, (0, 0), 3)
    samples = [SimpleNamespace(stem=str(s), load_rgb=lambda img=(soft if i == 0 else face_image): img)
               for i, s in enumerate(old['stem'])]
    new = add_image_quality(old, samples)
    grey = cv2.cvtColor(face_image, cv2.COLOR_RGB2GRAY)
    assert new['sharp'][1] == pytest.approx(image_quality(grey, old['L'][1])[0])
    assert new['sharp'][0] < new['sharp'][1] and new['E'] is old['E']
    with pytest.raises(FileNotFoundError, match=str(old['stem'][2])):
        add_image_quality(old, samples[:2])


def test_share_misses_counts_shares_off_the_gaussian_then_the_largest_miss():
    from depthmarks_ros.core.face.sigma_fit import calibration_score
    from depthmarks_ros.core.face.sigma_model import share_misses
    assert share_misses([(0.3935, 0.8647)]) == (0, 0.0)
    n, worst = share_misses([(0.50, 0.86), (0.39, 0.80)])
    assert n == 2 and abs(worst - 0.1065) < 1e-9
    assert share_misses([(0.42, 0.84)])[0] == 0                         # within 5 points: no miss
    cal = {'300w': {'within_1': 0.50, 'within_2': 0.86}, 'aflw': {'within_1': 0.39, 'within_2': 0.80}}
    assert calibration_score(cal) == (n, worst)


def test_quantile_stage_follows_the_bulk_where_a_feature_flags_rare_gross_failures():
    """One face-level input (here ``sharp``) raises the chance of a gross failure (errors x8) but not
    the error of the faces that did not fail. The Gaussian NLL widens every such face's sigma to
    cover the few failures, so the bulk of those faces sits too deep inside its ellipses; the
    quantile stage (pinball losses at the 1- and 2-sigma shares) keeps their 1-sigma share near
    39.3 % and gives the input a much smaller weight."""
    from depthmarks_ros.core.face.sigma_model import FEATURES, LandmarkSigmaModel
    rng = np.random.default_rng(7)
    F = 240
    L = np.tile(face_model_68()[:, :2] * 1000 + 200, (F, 1, 1))
    iod = np.linalg.norm(L[0, 45] - L[0, 36])
    g = rng.uniform(0, 1, F)
    failed = rng.uniform(0, 1, F) < 0.12 * g
    E = rng.normal(0, 1, (F, 68, 2)) * 0.03 * iod * np.where(failed, 8.0, 1.0)[:, None, None]
    feats = np.zeros((F, 68, len(FEATURES)))
    feats[..., FEATURES.index('sharp')] = g[:, None]
    fits = {q: LandmarkSigmaModel.fit(E, L, feats, np.zeros(F), steps=100, features=('sharp',), quantile=q)
            for q in (False, True)}
    bulk = (g > 0.6) & ~failed
    share1 = {q: np.mean(m.radii(E[bulk], L[bulk], feats[bulk], np.zeros(bulk.sum())) <= 1) for q, m in fits.items()}
    assert abs(share1[True] - 0.393) < 0.08 < abs(share1[False] - 0.393)
    assert abs(fits[True].w[0]) < 0.5 * abs(fits[False].w[0])


def test_pose_factors_from_error_records_recover_a_known_landmark_noise(tmp_path):
    """Angle factors from records (fit-face --parts pose --cache): faces posed at known angles, their
    68 points the mean face's projections plus Gaussian noise of a known sigma. With a sigma model
    that states that sigma, 68.3 % of the angle errors lie within about 1 sigma (factor ~1); with
    points twice as noisy the factor is ~2. The hybrid's records solve on their pose points P."""
    from depthmarks_ros.core.face.datasets import FaceSample
    from depthmarks_ros.core.face.model_fit import camera_for, pose_z_records
    from depthmarks_ros.core.face.sigma_model import LandmarkSigmaModel
    rng = np.random.default_rng(11)
    img = tmp_path / 'blank.png'
    cv2.imwrite(str(img), np.zeros((450, 450, 3), np.uint8))
    samples, clean = [], []
    for i in range(80):
        ang = np.array([rng.uniform(-50, 50), rng.uniform(-20, 20), rng.uniform(-20, 20)])
        s = FaceSample(f'f{i:03d}', str(img), np.zeros((68, 2)), pose_deg=ang, dataset='aflw2000_3d')
        rvec, _ = cv2.Rodrigues(rotation_from_angles(*ang))
        p, _ = cv2.projectPoints(face_model_68(), rvec, np.array([0.0, 0.0, 0.9]), camera_for(s, (450, 450)), None)
        samples.append(s)
        clean.append(p.reshape(-1, 2))
    clean = np.array(clean)
    iod = np.linalg.norm(clean[:, 45] - clean[:, 36], axis=1).mean()
    sigma_px = 1.5
    m = LandmarkSigmaModel(np.full(68, np.log(sigma_px / iod)), np.zeros(68), np.zeros(1), np.zeros((68, 3)),
                           features=('log_interocular',))
    m.w[0] = 0.0
    for noise, want in ((1.0, 1.0), (2.0, 2.0)):
        L = clean + rng.normal(0, sigma_px * noise, clean.shape)
        rec = {'L': L, 'stem': np.array([s.stem for s in samples]), 'spread68': np.ones((80, 68)),
               'yaw0': np.zeros(80), 'pitch0': np.zeros(80), 'blur': np.zeros(80), 'dark': np.zeros(80)}
        z, yaw = pose_z_records(rec, m, {}, samples)
        assert z.shape == (80, 3) and np.median(np.abs(yaw - [s.pose_deg[0] for s in samples])) < 3
        for j in range(3):
            assert np.quantile(z[:, j], 0.6827) == pytest.approx(want, rel=0.3), (noise, j)
    rec['P'] = clean + rng.normal(0, sigma_px, clean.shape)       # the pose points: the noise of the first case
    z, _ = pose_z_records(rec, m, {}, samples)
    assert np.quantile(z, 0.6827, axis=0) == pytest.approx([1.0] * 3, rel=0.3)
    # the hybrid's keypoint-path records carry their own covariances (no sigma model): the same answer
    box = {'L': rec['P'], 'stem': rec['stem'], 'C': m.covariances_records(rec)}
    z_box, _ = pose_z_records(box, None, {}, samples)
    np.testing.assert_allclose(z_box, z, rtol=1e-6)


def test_angle_factors_grow_with_yaw_where_the_errors_do():
    """Angle errors whose spread relative to sigma grows with |yaw| (x e^1.5 at 90 deg for yaw, flat
    for pitch): the fitted factors put ~68 % within 1 sigma in every yaw band, where one factor per
    angle over-covers frontal faces and under-covers turned ones."""
    from depthmarks_ros.core.face.head_pose import angle_factors, fit_angle_factors
    rng = np.random.default_rng(2)
    yaw = rng.uniform(-80, 80, 3000)
    true = np.column_stack([2.0 * np.exp(1.5 * np.abs(yaw) / 90), np.full(3000, 3.0), 1.5 * np.exp(0.8 * np.abs(yaw) / 90)])
    z = np.abs(rng.normal(0, 1, (3000, 3))) * true
    scales, slopes, rng = fit_angle_factors(z, yaw)
    assert slopes == pytest.approx([1.5, 0.0, 0.8], abs=0.25) and scales == pytest.approx([2.0, 3.0, 1.5], rel=0.15)
    assert rng == pytest.approx([0.0, 80.0], abs=0.5)
    f = np.array([angle_factors(scales, slopes, y, rng) for y in yaw])
    flat = np.quantile(z, 0.6827, axis=0)
    for lo, hi in ((0, 20), (60, 80)):
        m = (np.abs(yaw) >= lo) & (np.abs(yaw) < hi)
        assert np.all(np.abs(np.mean(z[m] <= f[m], axis=0) - 0.683) < 0.05)
        assert abs(np.mean(z[m, 0] <= flat[0]) - 0.683) > 0.1      # one factor: off in the outer bands


def _turned_head(yaw, rng):
    model = face_model_68()
    uv = model @ rotation_from_angles(yaw, -5, 3).T + np.array([0.01, 0.0, 0.8])
    uv = uv @ K.T
    return uv[:, :2] / uv[:, 2:3] + rng.normal(0, 0.5, (68, 2))


def test_weighted_head_pose_applies_the_yaw_slopes_clamped_to_the_fit_range_and_pooled_factors_elsewhere():
    """face_fit.json head_pose: a path's angle factors grow (or shrink) with |yaw| by its slopes up to the
    |yaw| range its factors were fitted on, and stay there beyond it (no extrapolation); a path without
    factors of its own takes the pooled ones, none at all leaves the covariance unscaled."""
    from depthmarks_ros.core.face.head_pose import POOLED_KEY, angles_jacobian, weighted_head_pose

    def sds(hp):
        J = angles_jacobian(hp.rvec)
        return np.sqrt(np.diag(J @ hp.covariance[:3, :3] @ J.T))
    cov = np.tile(np.eye(2) * 2.0, (68, 1, 1))
    fit = {'angle_scales': {'a': [2.0, 1.0, 1.5], POOLED_KEY: [3.0, 3.0, 3.0]},
           'angle_scale_yaw_slopes': {'a': [1.8, 0.0, -0.9], POOLED_KEY: [0.9, 0.0, 0.0]},
           'angle_scale_yaw_range': {'a': [5.0, 40.0], POOLED_KEY: [0.0, 60.0]}}
    for yaw in (20.0, 70.0, 0.5):
        lm = _turned_head(yaw, np.random.default_rng(int(yaw)))
        plain = weighted_head_pose(lm, K, cov, {})
        hp = weighted_head_pose(lm, K, cov, fit, 'a')
        assert abs(abs(hp.yaw) - yaw) < 3           # the pose's own (estimated) |yaw| picks the factor
        used = 40.0 if yaw > 40 else 5.0 if yaw < 5 else abs(hp.yaw)      # clamped to the fit range
        want = np.array([2.0, 1.0, 1.5]) * np.exp(np.array([1.8, 0.0, -0.9]) * used / 90)
        np.testing.assert_allclose(sds(hp) / sds(plain), want, rtol=1e-6)
        other = weighted_head_pose(lm, K, cov, fit, 'no such path')
        used = 60.0 if yaw > 60 else abs(hp.yaw)
        np.testing.assert_allclose(sds(other) / sds(plain), 3.0 * np.exp(np.array([0.9, 0.0, 0.0]) * used / 90),
                                   rtol=1e-6)
    lm = _turned_head(30.0, np.random.default_rng(3))
    np.testing.assert_allclose(weighted_head_pose(lm, K, cov, {'angle_scales': {'a': [2.0, 2.0, 2.0]}}, 'b').covariance,
                               weighted_head_pose(lm, K, cov, {}).covariance)


def test_fit_angle_factors_weights_faces_and_keeps_one_factor_for_few_faces():
    """Weighted faces count by their weight (a set given all the weight decides the factor); below
    MIN_FACES_FOR_SLOPE faces no |yaw| slope is fitted."""
    from depthmarks_ros.core.face.head_pose import MIN_FACES_FOR_SLOPE, fit_angle_factors
    rng = np.random.default_rng(4)
    yaw = rng.uniform(0, 60, 400)
    z = np.abs(rng.normal(0, 1, (400, 3)))
    z[200:] *= 4.0
    w = np.r_[np.ones(200), np.full(200, 1e-6)]
    s_w, _, _ = fit_angle_factors(z, yaw, weights=w, slope=False)
    s_all, _, _ = fit_angle_factors(z, yaw, slope=False)
    s_first, _, _ = fit_angle_factors(z[:200], yaw[:200], slope=False)
    assert s_w == pytest.approx(s_first, rel=0.02) and np.all(np.array(s_all) > 1.5 * np.array(s_w))
    few = MIN_FACES_FOR_SLOPE - 1
    _, slopes, _ = fit_angle_factors(z[:few] * np.exp(2 * yaw[:few, None] / 90), yaw[:few])
    assert slopes == [0.0, 0.0, 0.0]


def test_face_fit_file_needs_its_version(tmp_path):
    """face_fit.json of another version (or none: written before versions) stops the landmarker with a
    message naming the file and the version; version 2 loads."""
    import json
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    from depthmarks_ros.core.face.pipeline import load_fit
    path = tmp_path / 'face_fit.json'
    for bad in ({}, {'version': 1}, {'version': 3}, {'version': '2'}, {'version': True}, []):
        path.write_text(json.dumps(bad))
        with pytest.raises(BackendError, match='face_fit.json: face fit file version'):
            load_fit(str(path))
    path.write_text(json.dumps({'version': FIT_VERSION, 'head_pose': {}}))
    assert load_fit(str(path))['version'] == FIT_VERSION
    assert load_fit(str(tmp_path / 'none.json')) == {}


def test_fit_face_version_message_only_for_an_older_file_and_stale_path_factors_go(tmp_path):
    """fit-face on a fresh output folder writes a version-2 face_fit.json without claiming to have
    dropped an older one's factors; on an older file it says so. A path with too few faces to calibrate
    loses an earlier fit's factors (it then takes the pooled ones), not keeps them."""
    import json
    import os
    import shutil
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    from depthmarks_ros.core.face.model_fit import _fit_pose_scales, fit_landmark_artefacts
    from depthmarks_ros.core.face.pipeline import DATA_DIR
    fresh = tmp_path / 'fresh'
    fresh.mkdir()
    lines = list(fit_landmark_artefacts([], [], str(fresh), [], 'test'))
    assert not any('version' in x for x in lines), lines
    assert json.loads((fresh / 'face_fit.json').read_text())['version'] == FIT_VERSION
    old = tmp_path / 'old'
    old.mkdir()
    (old / 'face_fit.json').write_text(json.dumps({'version': 1, 'head_pose': {'covariance_scale': 2.0}}))
    lines = list(fit_landmark_artefacts([], [], str(old), [], 'test'))
    assert any('version 1 -> 2' in x for x in lines), lines
    assert 'covariance_scale' not in json.loads((old / 'face_fit.json').read_text())['head_pose']
    shutil.copy(os.path.join(DATA_DIR, 'face_model_68.json'), fresh)
    fit = {'version': FIT_VERSION, 'head_pose': {
        'angle_scales': {'dlib_hog': [2.0] * 3, 'pooled': [1.5] * 3}, 'angle_scale_yaw_slopes': {'dlib_hog': [0.5] * 3},
        'angle_scale_yaw_range': {'dlib_hog': [0.0, 50.0]}, 'angle_scales_from': {'dlib_hog': 'an earlier fit'}}}
    lines = list(_fit_pose_scales([], str(fresh), 'test', fit, ['dlib_hog'], lambda: None))
    assert any('not calibrated' in x for x in lines), lines
    hp = fit['head_pose']
    assert all('dlib_hog' not in hp[k] for k in ('angle_scales', 'angle_scale_yaw_slopes', 'angle_scale_yaw_range',
                                                 'angle_scales_from'))
    assert hp['angle_scales']['pooled'] == [1.5] * 3


def test_a_convention_s_profile_part_keeps_the_shared_predictor_and_names_it(tmp_path, monkeypatch):
    """`fit-face --convention 3d --parts profile` fits its turned-face weights for the shared predictor in -o
    without retraining or rewriting it (the '2d' profile part trains it), recording its sha1 in the
    convention's blend (a missing one refused before anything trains); a hybrid whose predictor no longer has
    that sha1 warns. Both of the hybrid's sigma fits and its stack records record the convention. The fit's
    stages are stubbed (no image is run)."""
    import os
    import warnings
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.core.face import hybrid, model_fit, sigma_fit
    from depthmarks_ros.core.face.artefacts import file_sha1
    from depthmarks_ros.core.face.hybrid import HybridBlend
    from depthmarks_ros.core.face.pipeline import _check_profile_hash
    out = str(tmp_path / 'out')
    seed_output(out)
    dat = os.path.join(out, 'face_profile_68.dat')
    before = open(dat, 'rb').read()
    one = np.zeros((68, 2))
    trained, metas = [], []

    class Saved:
        def save(self, path):
            trained.append(path)
            open(path, 'wb').write(b'retrained')
    monkeypatch.setattr(model_fit, '_hybrid_inputs', lambda *a: ([one], np.array([0]), [one], [0.0], [1.0]))
    monkeypatch.setattr(model_fit, '_cross_fitted_blends', lambda *a: [one])
    monkeypatch.setattr(model_fit, 'train_turned_face_predictor', lambda *a, meta=None: trained.append(meta) or Saved())
    monkeypatch.setattr(hybrid.HybridBlend, 'fit_profile_weights', staticmethod(lambda *a: np.ones((3, 68))))
    monkeypatch.setattr(sigma_fit, 'error_records', lambda *a, **kw: {})

    def capture(key, rec, output, meta, cache=''):
        metas.append((key, meta))
        yield f'sigma {key}'
    monkeypatch.setattr(sigma_fit, 'fit_and_save', capture)
    monkeypatch.setattr(model_fit, 'stack_records', lambda *a: {'stem': np.array(['a'])})
    cache = str(tmp_path / 'cache')
    list(model_fit._fit_profile([], [], [], [], [], [], 1e-2, out, 'cmd3', cache, write=True, convention='3d'))
    assert len(trained) == 5 and open(dat, 'rb').read() == before         # the fold predictors only
    # its stack records say their convention themselves (their command names none)
    assert model_fit.records_convention(os.path.join(cache, 'hybrid_stack_inputs_3d.npz')) == '3d'
    blend = HybridBlend.load(os.path.join(out, 'face_hybrid_3d.json'))
    assert blend.meta['profile']['predictor_sha1'] == file_sha1(dat)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        _check_profile_hash(blend, 'b', dat)          # the same predictor: silent
    list(model_fit._fit_hybrid([], [], [], [], [], 1e-2, out, 'cmd3', '', write_blend=False, convention='3d'))
    assert [(k, m['convention']) for k, m in metas] == [('hybrid_3d', '3d')] * 2
    trained.clear()
    list(model_fit._fit_profile([], [], [], [], [], [], 1e-2, out, 'cmd2', '', write=True))
    assert len(trained) == 7 and trained[-1] == dat and open(dat, 'rb').read() == b'retrained'   # '2d' trains it
    assert 'predictor_sha1' not in HybridBlend.load(os.path.join(out, 'face_hybrid.json')).meta['profile']
    with pytest.warns(UserWarning, match='refit them with depthmarks fit-face --convention'):
        _check_profile_hash(blend, 'b', dat)
    trained.clear()
    os.remove(dat)              # no shared predictor: refused before any fold predictor trains
    with pytest.raises(FileNotFoundError, match='face_profile_68.dat missing.*the .2d. profile part trains'):
        list(model_fit._fit_profile([], [], [], [], [], [], 1e-2, out, 'cmd3', '', write=True, convention='3d'))
    assert trained == []


def test_angle_factors_of_an_unknown_yaw_take_the_larger_end_of_the_range():
    from depthmarks_ros.core.face.head_pose import angle_factors
    scales, slopes, rng = [1.0, 2.0, 1.0], [0.9, 0.0, -0.9], (10.0, 60.0)
    f = angle_factors(scales, slopes, float('nan'), rng)
    assert np.all(np.isfinite(f))
    assert f[0] == pytest.approx(angle_factors(scales, slopes, 60.0, rng)[0])     # rising: the upper end
    assert f[1] == pytest.approx(2.0)
    assert f[2] == pytest.approx(angle_factors(scales, slopes, 10.0, rng)[2])     # falling: the lower end
    assert np.all(np.isfinite(angle_factors(scales, slopes, float('inf'), rng)))


def test_hybrid_paths_take_their_own_pose_factors():
    """The hybrid's faces the mesh follows take 'hybrid', its keypoint-path faces 'hybrid_box68', its
    dlib-only faces the cascade dlib's 'dlib' (the same points and sigma model); other backends their
    sigma key whatever the layout."""
    from types import SimpleNamespace
    hy = SimpleNamespace(backend_name='hybrid', sigma_key='hybrid')
    assert [FaceLandmarker.pose_key(hy, k) for k in ('mediapipe478', 'box68', 'dlib68')] == \
        ['hybrid', 'hybrid_box68', 'dlib']
    assert FaceLandmarker.pose_key(SimpleNamespace(backend_name='dlib', sigma_key='dlib_hog'), 'dlib68') == 'dlib_hog'
    # a landmark convention's mesh faces: its own factors through the real sigma key ('hybrid_3d'; a folder
    # without them is refused at start), its keypoint-path and dlib-only faces the shared ones
    for convention, own in (('2d', 'hybrid'), ('3d', 'hybrid_3d')):
        lm = FaceLandmarker.__new__(FaceLandmarker)
        lm.backend_name, lm.convention, lm.backend = 'hybrid', convention, SimpleNamespace(detector='hog')
        assert [lm.pose_key(k) for k in ('mediapipe478', 'box68', 'dlib68')] == [own, 'hybrid_box68', 'dlib']


def test_an_unknown_backend_is_named_as_such_under_the_default_convention():
    """The default landmark convention checks nothing of the backend: an unknown one is the backend
    factory's 'unknown face backend' (not a convention message); under '3d' the convention names it."""
    from depthmarks_ros.core.face.backends import BackendError
    with pytest.raises(BackendError, match="unknown face backend 'nope'"):
        FaceLandmarker('nope')
    with pytest.raises(BackendError, match="landmark_convention '3d' is fitted for the hybrid backend only"):
        FaceLandmarker('nope', convention='3d')


def test_detector_score_reaches_the_sigma_inputs(face_image):
    """The detector's score of each face is a sigma-model input (det_score, clipped to DET_SCORE_RANGE,
    0 where not finite), the same value in the face's extras and its feature row."""
    from depthmarks_ros.core.face.sigma_model import DET_SCORE_RANGE, FEATURES, point_features
    col = FEATURES.index('det_score')
    args = (np.ones(68), 60.0, 0.0, 0.0)
    assert point_features(*args, det_score=0.7)[:, col] == pytest.approx(np.full(68, 0.7))
    assert point_features(*args, det_score=9.0)[0, col] == DET_SCORE_RANGE[1] == 1.0
    assert point_features(*args, det_score=float('nan'))[0, col] == 0.0
    # fit records: a face no BlazeFace view detected is NaN there and takes the low quantile of the others
    from depthmarks_ros.core.face.sigma_model import DET_SCORE_FALLBACK_QUANTILE, det_score_fallback, record_features
    n = 40
    scores = np.r_[np.linspace(0.2, 1.1, n - 1), np.nan]
    rec = {'L': np.tile(np.random.default_rng(0).normal(100, 20, (68, 2)), (n, 1, 1)), 'spread68': np.ones((n, 68)),
           'blur': np.zeros(n), 'dark': np.zeros(n), 'yaw0': np.zeros(n), 'pitch0': np.zeros(n), 'det_score': scores}
    fb = det_score_fallback(scores)
    assert fb == pytest.approx(np.quantile(np.clip(scores[:-1], 0, 1), DET_SCORE_FALLBACK_QUANTILE)) and 0.2 < fb < 0.4
    feats = record_features(rec)
    assert feats[-1, 0, col] == pytest.approx(fb) and feats[0, 0, col] == pytest.approx(0.2)
    assert record_features(rec, 0.5)[-1, 0, col] == 0.5
    lm = FaceLandmarker('dlib', static=True, dlib_detector='cascade')
    f = lm.process(face_image, K)[0]
    lm.close()
    assert np.isfinite(f.extras['det_score']) and f.extras['det_score'] > 0
    assert f.extras['features'][0, col] == pytest.approx(np.clip(f.extras['det_score'], *DET_SCORE_RANGE))


def test_the_score_design_only_where_the_records_hold_scores():
    """HOG's and MMOD's fit faces carry no BlazeFace score (their records hold no det_score, or an
    all-NaN one from an older cache): no score design is cross-validated and no fallback written."""
    from depthmarks_ros.core.face.sigma_fit import candidate_designs, has_scores
    from depthmarks_ros.core.face.sigma_model import FIT_DESIGNS, SCORE_DESIGN
    assert candidate_designs({}) == FIT_DESIGNS and not has_scores({})
    assert candidate_designs({'det_score': np.full(5, np.nan)}) == FIT_DESIGNS
    assert candidate_designs({'det_score': np.r_[np.nan, 0.8]}) == FIT_DESIGNS + (SCORE_DESIGN,)


class _Stop(Exception):
    pass


def test_fit_face_s_later_parts_use_the_output_folder_s_3d_mean_face(tmp_path, monkeypatch):
    """fit-face's parts after the model part (the dlib sigma models' error records, the self-occlusion
    triangulation, the hybrid's and turned-face predictor's quick yaw and error records, the pose part on
    cached records) compute on the 3D mean face of the output folder, not the shipped one: each stage's
    consumer is stubbed to record the model it gets (no image is run)."""
    import os
    import types
    from depthmarks_ros.cli.fit_face import seed_output
    from depthmarks_ros.core.face import hybrid, model_fit, sigma_fit, visibility
    out = str(tmp_path / 'out')
    seed_output(out)
    np.save(os.path.join(out, 'face_model_68.npy'), face_model_68() * [1.0, 1.0, 2.5])
    seen = []

    def record(*args, model=None, **kw):
        seen.append(model)
        raise _Stop

    monkeypatch.setattr(sigma_fit, 'error_records', record)
    monkeypatch.setattr(visibility, 'triangulation', lambda model=None: record(model=model))
    monkeypatch.setattr(model_fit, 'pose_z_records', lambda *a, **kw: record(model=a[4] if len(a) > 4 else kw.get('model')))
    for parts in (['sigma-dlib'], ['visibility']):
        with pytest.raises(_Stop):
            list(model_fit.fit_landmark_artefacts([], [], out, parts, 'test'))
    cache = tmp_path / 'cache'
    cache.mkdir()
    sigma_fit.save_records(str(cache / 'sigma_dlib_hog.npz'), {'stem': np.array(['x'])})
    with pytest.raises(_Stop):
        list(model_fit._fit_pose_scales([], out, 'test', {}, ['dlib_hog'], lambda: None, str(cache)))
    # the hybrid's stages: its quick-yaw inputs record the model and go on with one dummy face
    one = np.zeros((68, 2))

    def inputs(*args):
        seen.append(args[7])
        return [one], np.array([0]), [one], [0.0], [1.0]
    monkeypatch.setattr(model_fit, '_hybrid_inputs', inputs)
    monkeypatch.setattr(model_fit, '_cross_fitted_blends', lambda *a: [])
    monkeypatch.setattr(model_fit, 'train_turned_face_predictor', lambda *a, **kw: None)
    monkeypatch.setattr(hybrid.HybridBlend, 'fit', classmethod(lambda cls, *a, **kw: types.SimpleNamespace(weights=[one])))
    monkeypatch.setattr(hybrid.HybridBlend, 'fit_profile_weights', staticmethod(lambda *a: None))
    for fit in (model_fit._fit_hybrid, lambda *a, **kw: model_fit._fit_profile([], *a, **kw)):
        with pytest.raises(_Stop):
            list(fit([], [], [], [], [], 1e-2, out, 'test', '', write_blend=False) if fit is model_fit._fit_hybrid
                 else fit([], [], [], [], [], 1e-2, out, 'test', '', write=False))
    assert len(seen) == 7 and all(m is face_model_68(out) for m in seen), [m is None for m in seen]


def test_damaged_3d_convention_files_are_clear_errors_not_crashes(tmp_path):
    """Hand-damaged inputs of the '3d' convention: a records file that is no .npz (fit-face names it and
    how to rewrite it), a face_fit.json whose head_pose is no mapping and a blend whose meta.profile is
    no mapping (the face node / `depthmarks face` get a BackendError or go on, never an AttributeError)."""
    import json
    import shutil
    from types import SimpleNamespace
    from depthmarks_ros.core.face import model_fit
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.head_pose import FIT_VERSION
    from depthmarks_ros.core.face.pipeline import _check_profile_hash, check_convention_folder, fitted_data_dir
    garbage = tmp_path / 'sigma_hybrid_3d.npz'
    garbage.write_bytes(b'not an npz at all')
    msg = model_fit._convention_pose_missing('hybrid_3d', str(garbage), str(tmp_path))
    assert 'not readable as records' in msg and 'fit-face' in msg
    shipped = fitted_data_dir()
    folder = tmp_path / 'data'
    shutil.copytree(shipped, folder)
    (folder / 'face_fit.json').write_text(json.dumps({'version': FIT_VERSION, 'head_pose': []}))
    with pytest.raises(BackendError, match='not mappings'):
        check_convention_folder(str(folder), 'hybrid', convention='3d')
    _check_profile_hash(SimpleNamespace(meta={'profile': ['x']}), 'b', str(garbage))   # no hash recorded: nothing to check
    with pytest.raises(BackendError, match='cannot be read'):
        _check_profile_hash(SimpleNamespace(meta={'profile': {'predictor_sha1': 'ab'}}), 'b', str(tmp_path / 'none.dat'))


@pytest.mark.parametrize('key, split', [
    ('hybrid', ('hybrid', '2d')), ('mediapipe', ('mediapipe', '2d')), ('dlib', ('dlib', '2d')),
    ('dlib_hog', ('dlib_hog', '2d')), ('dlib_mmod', ('dlib_mmod', '2d')),        # underscores, no suffix
    ('mediapipe_fixed', ('mediapipe_fixed', '2d')), ('hybrid_box68', ('hybrid_box68', '2d')),
    ('hybrid_3d', ('hybrid', '3d')),
    ('hybrid_4d', 'unknown landmark convention'), ('hybrid_3d_3d', 'unknown landmark convention'),
    ('hybrid_2d', 'carry no convention suffix'), ('dlib_3d', "convention '3d' has files of its own"),
    ('hybrid_box68_3d', "the key of 'hybrid_box68'"), ('dlib_hog_3d', "the key of 'dlib_hog'"),
    ('_3d', 'no sigma / head-pose key'), ('', 'no sigma / head-pose key'), ('3d', 'no sigma / head-pose key'),
    ('face_3d', 'no sigma / head-pose key')])
def test_a_key_splits_into_backend_and_convention_or_is_a_clear_error(key, split):
    """core/face/convention.py split_key: the one reading of a sigma / head-pose key's convention suffix. A
    '2d' key with underscores of its own (dlib_hog, hybrid_box68) is not read as a convention; a suffix that
    is no convention, or a convention without its own files for that backend, is a ValueError (a wrong split
    would name a wrong fit-face command or read another convention's records)."""
    from depthmarks_ros.core.face.convention import sigma_key, split_key
    if isinstance(split, tuple):
        assert split_key(key) == split
        assert sigma_key(*split) == key                     # the inverse of sigma_key
    else:
        with pytest.raises(ValueError, match=split):
            split_key(key)


def test_every_key_the_fits_and_the_landmarker_use_splits_back():
    """Every sigma key (sigma_fit.sigma_keys of each convention), head-pose path (model_fit.POSE_KEYS) and
    FaceLandmarker sigma key (of every backend, dlib_detector and convention choice of the node's parameter
    spec) round-trips through split_key: a key or choice added there and not to convention.BACKEND_KEYS
    fails here, not as a ValueError in a fit."""
    from depthmarks_ros.core.face.convention import CONVENTION_BACKENDS, CONVENTIONS, sigma_key, split_key
    from depthmarks_ros.core.face.model_fit import POSE_KEYS
    from depthmarks_ros.core.face.sigma_fit import sigma_keys
    from depthmarks_ros.params.face_landmarks import FaceLandmarksParams
    keys = set(POSE_KEYS) | {k for c in CONVENTIONS for k in sigma_keys(c)}
    keys |= {sigma_key(b, c) for c in CONVENTIONS for b in CONVENTION_BACKENDS[c]}
    spec = FaceLandmarksParams.param_fields()           # FaceLandmarker._sigma_key of every backend / detector choice
    for b, d, m, c in itertools.product(spec['backend'].info.choices, spec['dlib_detector'].info.choices,
                                        (None, 'fitted'), CONVENTIONS):
        keys.add(FaceLandmarker._sigma_key(SimpleNamespace(backend_name=b, mapping=m, convention=c), d))
    for key in keys:
        assert sigma_key(*split_key(key)) == key
    assert {split_key(k)[1] for k in sigma_keys('3d')} == {'3d'}


def test_similarity_recovers_a_known_transform_and_align_round_trips():
    """core/face/mapping.py similarity / align / unalign (the one 2D Procrustes of the face code: mesh map,
    hybrid, studies): a known scale, rotation and shift are recovered to rounding, align then unalign gives
    the points back, and a mirrored target still gets a rotation (never a reflection)."""
    from depthmarks_ros.core.face.mapping import align, similarity, unalign
    rng = np.random.default_rng(3)
    src = rng.normal(0, 40, (68, 2)) + [300, 200]
    a = np.deg2rad(-37.0)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    dst = 1.7 * src @ R.T + [12.5, -80.0]
    s, R2, t = similarity(src, dst)
    assert s == pytest.approx(1.7, abs=1e-12)
    np.testing.assert_allclose(R2, R, atol=1e-12)
    np.testing.assert_allclose(t, [12.5, -80.0], atol=1e-9)
    moved, T = align(src, dst)
    np.testing.assert_allclose(moved, dst, atol=1e-9)
    np.testing.assert_allclose(unalign(moved, T), src, atol=1e-9)
    s, R3, _ = similarity(src, src * [-1.0, 1.0])
    assert np.linalg.det(R3) == pytest.approx(1.0) and s > 0


def test_mirror_68_swaps_the_sides_and_is_its_own_inverse():
    """core/face/ibug68.py mirror_68 (the one 68-point mirror: hybrid, turned-face predictor, studies):
    twice is the identity (also of a batch, and about an image width); the subject's right eye (36-41)
    takes the left eye's points (45 -> 36: outer corner onto outer corner) with x negated; the shipped mean
    face, centred on its nose bridge, mirrors onto itself within 1.5 % of its width (a wrong pairing is
    off by more than half of it); with ``width`` a point at pixel column x goes to column width - 1 - x."""
    from depthmarks_ros.core.face.head_pose import face_model_68
    from depthmarks_ros.core.face.ibug68 import FLIP_68, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, mirror_68
    rng = np.random.default_rng(4)
    p = rng.normal(0, 30, (3, 68, 2))
    np.testing.assert_array_equal(mirror_68(mirror_68(p)), p)
    np.testing.assert_allclose(mirror_68(mirror_68(p[0], 640), 640), p[0], rtol=0, atol=1e-12)
    m = mirror_68(p[0])
    np.testing.assert_array_equal(m[RIGHT_EYE_OUTER], p[0][LEFT_EYE_OUTER] * [-1.0, 1.0])
    np.testing.assert_array_equal(m[36:42], p[0][[45, 44, 43, 42, 47, 46]] * [-1.0, 1.0])
    assert sorted(FLIP_68[36:42]) == list(range(42, 48)) and sorted(FLIP_68) == list(range(68))
    face = face_model_68()[:, :2]
    face = face - [face[27:31, 0].mean(), 0.0]
    width = np.ptp(face[:, 0])
    assert np.abs(mirror_68(face) - face).max() < 0.015 * width
    assert np.abs(face[::-1] * [-1.0, 1.0] - face).max() > 0.5 * width
    px = rng.integers(0, 640, (68, 2)).astype(float)
    np.testing.assert_array_equal(mirror_68(px, 640)[np.argsort(FLIP_68)][:, 0], 639 - px[:, 0])


def test_wrap_deg_and_the_nme_normaliser_of_each_set():
    """head_pose.wrap_deg (the one angle wrap: the angle Jacobian, angle_z, bench_face, the back-view study):
    differences across +-180 come out short and signed, in [-180, 180); metrics.nme_norm (the fits and
    bench_face): AFLW2000-3D faces by their box size sqrt(w h), 300-W faces by the outer eye corners."""
    from depthmarks_ros.core.face.head_pose import wrap_deg
    from depthmarks_ros.core.face.metrics import bbox_size, nme_norm
    np.testing.assert_allclose(wrap_deg(np.array([179.0, -179.0]) - np.array([-179.0, 179.0])), [-2.0, 2.0])
    assert wrap_deg(180.0) == -180.0 and wrap_deg(-540.0) == -180.0 and wrap_deg(725.5) == pytest.approx(5.5)
    d = np.random.default_rng(5).uniform(-2000, 2000, 1000)
    w = wrap_deg(d)
    assert np.all((w >= -180) & (w < 180)) and np.allclose(np.cos(np.radians(w)), np.cos(np.radians(d)))
    p = face_model_68()[:, :2] * 1000 + [300, 200]
    assert nme_norm(p, 'aflw2000_3d') == bbox_size(p) == pytest.approx(np.sqrt(np.ptp(p[:, 0]) * np.ptp(p[:, 1])))
    assert bbox_size(np.zeros((68, 2))) == pytest.approx(np.sqrt(1e-9))      # a collapsed face: floored, not 0
    assert nme_norm(p, '300w') == pytest.approx(np.linalg.norm(p[45] - p[36])) != bbox_size(p)


def test_the_face_crop_of_the_image_features_is_clipped_to_the_image():
    """sigma_model._crop_box (the one face crop of image_features and image_quality): the landmarks'
    box, floor / ceil + 1 (exclusive), clipped to the image; a face wholly off the image gives an empty
    crop, and both features are then 0 (no crash on an empty crop)."""
    from depthmarks_ros.core.face.sigma_model import _crop_box, image_features, image_quality
    grey = np.zeros((100, 200), np.uint8)
    p = np.array([[-5.5, 10.2], [150.4, 120.0]])
    assert [int(v) for v in _crop_box(grey, p)] == [0, 10, 152, 100]
    assert [int(v) for v in _crop_box(grey, np.array([[3.0, 4.0], [7.5, 9.0]]))] == [3, 4, 9, 10]
    off = np.array([[250.0, 150.0], [300.0, 190.0]])
    x0, y0, x1, y1 = _crop_box(grey, off)
    assert x1 <= x0 and y1 <= y0
    assert image_features(grey, off) == (0.0, 0.0) and image_quality(grey, off) == (0.0, 0.0)


def test_face_set_loaders_pair_annotations_with_images_and_split_them(tmp_path):
    """datasets.load_pts_folder / load_aflw2000_3d (one scan, datasets._annotated): an annotation without an
    image beside it is skipped, a .pts of another point count too; 300-W points become 0-based, AFLW2000-3D's
    z flips and Pose_Para (pitch, yaw, roll, radians) becomes (yaw, pitch, roll) degrees; the 'fit' and
    'report' splits partition 'all' by core/split.py's rule."""
    from scipy.io import savemat
    from depthmarks_ros.core.face.datasets import load_aflw2000_3d, load_pts_folder
    from depthmarks_ros.core.pts_io import write_pts
    from depthmarks_ros.core.split import is_report
    img = np.zeros((8, 8, 3), np.uint8)
    pts = np.arange(136, dtype=float).reshape(68, 2) + 1.0
    stems = [f'face{i:02d}' for i in range(12)]
    for d in ('w', 'a'):
        (tmp_path / d).mkdir()
    for s in stems:
        write_pts(str(tmp_path / 'w' / f'{s}.pts'), pts)
        cv2.imwrite(str(tmp_path / 'w' / f'{s}.png'), img)
        savemat(str(tmp_path / 'a' / f'{s}.mat'), {'pt3d_68': np.vstack([pts.T, np.ones((1, 68))]),
                                                   'Pose_Para': np.radians([[10.0, 20.0, 30.0, 0, 0, 0, 1]])})
        cv2.imwrite(str(tmp_path / 'a' / f'{s}.jpg'), img)
    write_pts(str(tmp_path / 'w' / 'noimage.pts'), pts)
    savemat(str(tmp_path / 'a' / 'noimage.mat'), {'pt3d_68': np.zeros((3, 68)), 'Pose_Para': np.zeros((1, 7))})
    write_pts(str(tmp_path / 'w' / 'short.pts'), pts[:5])
    cv2.imwrite(str(tmp_path / 'w' / 'short.png'), img)
    w = load_pts_folder(str(tmp_path / 'w'))
    assert [s.stem for s in w] == stems and w[0].dataset == '300w'
    np.testing.assert_array_equal(w[0].landmarks68, pts - 1.0)
    a = load_aflw2000_3d(str(tmp_path / 'a'))
    assert [s.stem for s in a] == stems and a[0].image_path.endswith('.jpg')
    np.testing.assert_allclose(a[0].pose_deg, [20.0, 10.0, 30.0])
    np.testing.assert_array_equal(a[0].points3d[:, 2], -1.0)
    np.testing.assert_array_equal(a[0].landmarks68, pts)
    for load, folder in ((load_pts_folder, 'w'), (load_aflw2000_3d, 'a')):
        report = [s.stem for s in load(str(tmp_path / folder), 'report')]
        fit = [s.stem for s in load(str(tmp_path / folder), 'fit')]
        assert report == [s for s in stems if is_report(s)] and fit == [s for s in stems if not is_report(s)]
        assert report and fit


def test_mean_shape_of_similar_copies_is_the_shape_up_to_a_similarity():
    """mapping.mean_shape (generalised Procrustes of the mesh map and study_face_stack): copies of one shape
    under random scale, rotation and shift give that shape back up to a similarity, centred with unit RMS
    radius; without ``unit_rms`` it keeps the starting reference's frame (size and place)."""
    from depthmarks_ros.core.face.mapping import align, mean_shape
    rng = np.random.default_rng(6)
    base = rng.normal(0, 1, (68, 2))
    copies = []
    for _ in range(20):
        a, s = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 3.0)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        copies.append(s * base @ R.T + rng.uniform(-100, 100, 2))
    ref = mean_shape(copies, copies[0] - copies[0].mean(axis=0))
    np.testing.assert_allclose(ref.mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt((ref ** 2).sum(axis=1).mean()) == pytest.approx(1.0)
    np.testing.assert_allclose(align(base, ref)[0], ref, atol=1e-9)
    kept = mean_shape(copies, copies[0], unit_rms=False)
    np.testing.assert_allclose(kept, copies[0], atol=1e-9)


def test_predict_on_box_rounds_the_box_and_returns_float_points():
    """backends.predict_on_box / dlib_rect / shape_points (the one way the hybrid, its fits and the
    turned-face predictor run a dlib predictor on a placed box): the box's corners are rounded to pixels
    (not truncated) and the predictor's parts come back as (N, 2) float64 in order."""
    from types import SimpleNamespace
    from depthmarks_ros.core.face.backends import dlib_rect, predict_on_box
    r = dlib_rect((10.4, 20.6, 49.6, 80.2))
    assert (r.left(), r.top(), r.right(), r.bottom()) == (10, 21, 50, 80)
    seen = []

    def predictor(rgb, rect):
        seen.append((rgb.shape, rect.left(), rect.top(), rect.right(), rect.bottom()))
        return SimpleNamespace(parts=lambda: [SimpleNamespace(x=i, y=2 * i) for i in range(68)])
    p = predict_on_box(predictor, np.zeros((90, 60, 3), np.uint8), np.array([0.6, 1.4, 30.5001, 40.0]))
    assert seen == [((90, 60, 3), 1, 1, 31, 40)]
    assert p.dtype == np.float64 and p.shape == (68, 2)
    np.testing.assert_array_equal(p[5], [5.0, 10.0])
