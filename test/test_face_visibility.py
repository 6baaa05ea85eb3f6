"""Self-occlusion labels from 3D landmarks and the per-landmark visibility model (no shared data)."""
import numpy as np
import pytest

from depthmarks_ros.core.face.head_pose import face_model_68, rotation_from_angles
from depthmarks_ros.core.face.metrics import roc_auc
from depthmarks_ros.core.face.visibility import VisibilityModel, self_occlusion


def _posed(yaw, pitch=0.0):
    """The mean face at a pose, as AFLW2000-3D points: x, y px, z px away from the camera."""
    X = face_model_68() @ rotation_from_angles(yaw, pitch, 0.0).T
    return X * 2000 + [225, 225, 0]


def test_self_occlusion_hides_the_far_jaw_of_a_turned_head_only():
    assert not self_occlusion(_posed(0.0)).any()
    for yaw in (60.0, -60.0):
        hidden = self_occlusion(_posed(yaw))
        jaw = hidden[:8] if yaw > 0 else hidden[9:17]      # the side turned away (yaw > 0: image-left)
        other = hidden[9:17] if yaw > 0 else hidden[:8]
        assert jaw.sum() >= 3 and not other.any(), (yaw, hidden.nonzero())


def test_visibility_model_learns_the_side_and_round_trips(tmp_path):
    yaws = np.linspace(-80, 80, 81)
    hidden = np.array([self_occlusion(_posed(y)) for y in yaws])
    m = VisibilityModel.fit(yaws, np.zeros_like(yaws), hidden)
    p_front, p_left, p_right = m.predict(0, 0), m.predict(70, 0), m.predict(-70, 0)
    assert p_front.min() > 0.8
    assert p_left[2] < 0.3 and p_right[2] > 0.8 and p_right[14] < 0.3 and p_left[14] > 0.8
    P = np.array([m.predict(y, 0) for y in yaws])
    assert roc_auc(~hidden, P) > 0.95
    m.save(str(tmp_path / 'v.json'))
    np.testing.assert_allclose(VisibilityModel.load(str(tmp_path / 'v.json')).b, m.b, atol=1e-5)


def test_roc_auc():
    assert roc_auc([True, True, False, False], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([True, True], [0.1, 0.2]))


def test_corrupt_visibility_file_is_named(tmp_path):
    from depthmarks_ros.core.face.backends import BackendError
    from depthmarks_ros.core.face.pipeline import FaceLandmarker
    (tmp_path / 'face_visibility.json').write_text('{"b": [[1, 2]]}')
    with pytest.raises(BackendError, match='face_visibility.json'):
        FaceLandmarker('dlib', static=True, data_dir=str(tmp_path))


def test_landmark_commands_read_aflw_with_self_occlusion_and_keep_to_the_split(tmp_path):
    """train-landmarks / eval-landmarks --aflw: visibility labels from the 3D landmarks, only the
    images of --split (sha1 rule on the stem)."""
    import argparse
    import cv2
    from scipy.io import savemat
    from depthmarks_ros.cli.train_landmarks import real_samples
    from depthmarks_ros.core.face.datasets import is_report
    stems = [f'image{i:05d}' for i in range(10)]
    for i, stem in enumerate(stems):
        yaw = 70.0 if i % 2 else 0.0
        pts = _posed(yaw)
        pts[:, 2] *= -1                                   # AFLW's z points towards the viewer
        savemat(str(tmp_path / f'{stem}.mat'), {'pt3d_68': pts.T, 'Pose_Para': np.radians([[0, yaw, 0, 0, 0, 0, 1]])})
        cv2.imwrite(str(tmp_path / f'{stem}.jpg'), np.zeros((450, 450, 3), np.uint8))
    for split in ('fit', 'report'):
        got = real_samples(argparse.Namespace(aflw=str(tmp_path), data=None, coco=None, split=split, limit=0))
        assert sorted(s.name for s in got) == sorted(s for s in stems if is_report(s) == (split == 'report'))
        for s in got:
            turned = int(s.name[-5:]) % 2 == 1
            assert s.visible.shape == (68,) and (not s.visible.all()) == turned
