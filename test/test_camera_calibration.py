"""Camera models and calibration files: geometry against closed forms, YAML round trips, errors."""
import os

import numpy as np
import pytest
import yaml

from depthmarks_ros.convert.camera_info import camera_from_info, info_from_camera
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.core.calibration import (default_rig_path, load_camera_yaml, load_rig, resolve_url,
                                             save_camera_yaml, save_rig)
from depthmarks_ros.core.camera import CalibrationError, PinholeCamera, StereoCamera
from depthmarks_ros.core.transforms import (apply_transform, euler_to_matrix, matrix_to_euler,
                                            matrix_to_quaternion, quaternion_to_matrix)


def _cam(**kw):
    K = np.array([[400.0, 0, 160], [0, 410.0, 120], [0, 0, 1]])
    return PinholeCamera(320, 240, K, **kw)


def test_project_back_project_round_trip():
    cam = _cam()
    pts = np.random.default_rng(0).uniform([-1, -1, 0.5], [1, 1, 5], (100, 3))
    uv, z = cam.project(pts)
    np.testing.assert_allclose(cam.back_project(uv, z), pts, atol=1e-9)
    uv_behind, _ = cam.project(np.array([[0, 0, -1.0]]))
    assert np.isnan(uv_behind).all()


def test_depth_to_points_matches_back_project():
    cam = _cam()
    depth = np.full((240, 320), 2.0, np.float32)
    depth[0, 0] = np.nan
    pts = cam.depth_to_points(depth)
    np.testing.assert_allclose(pts[10, 20], cam.back_project([[20, 10]], [2.0])[0], rtol=1e-6)
    assert np.isnan(pts[0, 0]).all()


def test_stereo_baseline_q_and_depth():
    left = PinholeCamera(320, 240, np.array([[400.0, 0, 160], [0, 400.0, 120], [0, 0, 1]]))
    P = left.P.copy()
    P[0, 3] = -400.0 * 0.12
    stereo = StereoCamera(left, PinholeCamera(320, 240, left.K, P=P))
    assert stereo.baseline == pytest.approx(0.12)
    d = np.array([[48.0, 0.0, -1.0, np.nan]], np.float32)
    z = stereo.disparity_to_depth(d)
    assert z[0, 0] == pytest.approx(1.0) and np.isnan(z[0, 1:]).all()
    assert z is not d and d[0, 2] == -1.0                  # a new array; the input is left alone
    off = PinholeCamera(320, 240, left.K, P=P.copy())
    off.P[0, 2] = off.K[0, 2] = 150.0                      # cx_r 10 px left of cx_l: d - 10 is the shift
    shifted = StereoCamera(left, off).disparity_to_depth(np.array([[58.0, 10.0, 9.0, 10.5]], np.float32))
    assert shifted[0, 0] == pytest.approx(1.0) and np.isnan(shifted[0, 1:3]).all() and shifted[0, 3] > 0
    np.testing.assert_allclose(stereo.depth_to_disparity(np.array([1.0, 2.0])), [48.0, 24.0])
    X = stereo.Q @ np.array([200.0, 100.0, 48.0, 1.0])
    np.testing.assert_allclose(X[:3] / X[3], left.back_project([[200, 100]], [1.0])[0], atol=1e-9)
    assert stereo.depth_sigma(np.array([2.0]), 1.0)[0] == pytest.approx(4 / 48.0)


def test_zero_baseline_and_size_mismatch_rejected():
    with pytest.raises(CalibrationError, match='zero baseline'):
        StereoCamera(_cam(), _cam())
    other = PinholeCamera(640, 480, _cam().K, P=np.hstack([_cam().K, [[-10], [0], [0]]]))
    with pytest.raises(CalibrationError, match='sizes differ'):
        StereoCamera(_cam(), other)


def test_rectify_points_inverts_distortion():
    import cv2
    cam = _cam(D=np.array([-0.2, 0.05, 0.001, -0.001, 0.0]))
    assert not cam.is_rectified
    pts = np.array([[30.0, 40.0], [160.0, 120.0], [300.0, 200.0]])
    norm = (pts - [160, 120]) / [400, 410]
    raw, _ = cv2.projectPoints(np.hstack([norm, np.ones((3, 1))]), np.zeros(3), np.zeros(3), cam.K, cam.D)
    np.testing.assert_allclose(cam.rectify_points(raw.reshape(-1, 2)), pts, atol=1e-3)
    m1, m2 = cam.rectify_maps()
    assert m1.shape[:2] == (240, 320)


def test_camera_yaml_round_trip(tmp_path):
    cam = _cam(D=np.array([0.1, -0.2, 0.0, 0.0, 0.01]))
    path = str(tmp_path / 'cam.yaml')
    save_camera_yaml(cam, path)
    back = load_camera_yaml(path)
    for a in ('K', 'D', 'R', 'P'):
        np.testing.assert_array_equal(getattr(back, a), getattr(cam, a))
    assert back.size == cam.size


@pytest.mark.parametrize('edit, match', [
    (lambda d: d.pop('camera_matrix'), "missing field 'camera_matrix'"),
    (lambda d: d['projection_matrix'].update(data=[1, 2, 3]), "'projection_matrix' has 3 values"),
    (lambda d: d.update(image_width=0), 'image size'),
    (lambda d: d['camera_matrix'].update(data=[0] * 9), 'focal'),
    (lambda d: d.update(distortion_model='weird'), 'distortion_model'),
])
def test_bad_camera_yaml_names_file_and_field(tmp_path, edit, match):
    path = str(tmp_path / 'cam.yaml')
    save_camera_yaml(_cam(), path)
    data = yaml.safe_load(open(path))
    edit(data)
    yaml.safe_dump(data, open(path, 'w'))
    with pytest.raises(CalibrationError, match=match) as err:
        load_camera_yaml(path)
    assert 'cam.yaml' in str(err.value)


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(CalibrationError, match='not found'):
        load_camera_yaml(str(tmp_path / 'nope.yaml'))
    (tmp_path / 'bad.yaml').write_text('a: [1, 2\n')
    with pytest.raises(CalibrationError, match='not valid YAML'):
        load_camera_yaml(str(tmp_path / 'bad.yaml'))


def test_shipped_rigs_load_and_agree():
    rig = load_rig(default_rig_path('sim_rig'))
    stereo = rig.stereo()
    assert stereo.baseline == pytest.approx(0.12)
    # left -> right extrinsic agrees with the projection matrices: right = left shifted by -B in x
    left2right = rig.transform('left', 'right')
    np.testing.assert_allclose(left2right[:3, 3], [-0.12, 0, 0], atol=1e-9)
    np.testing.assert_allclose(left2right[:3, :3], np.eye(3), atol=1e-9)
    assert rig.frame_of('rgb') == rig.frame_of('left')
    assert all(rig.frame_of(n).endswith('_optical_frame') for n in ('left', 'right'))
    kitti = load_rig(default_rig_path('kitti'))
    # a point 10 m ahead of the velodyne lands near the image centre row-wise
    uv, z = kitti.camera('rgb').project(apply_transform(kitti.transform('lidar', 'rgb'), [[10.0, 0, 0]]))
    assert z[0] == pytest.approx(10.0, abs=0.5) and 0 < uv[0, 0] < 1242 and 0 < uv[0, 1] < 375


def test_rig_round_trip_and_errors(tmp_path):
    rig = load_rig(default_rig_path('sim_rig'))
    out = str(tmp_path / 'rig.yaml')
    save_rig(rig, out)
    back = load_rig(out)
    np.testing.assert_allclose(back.transform('lidar', 'left'), rig.transform('lidar', 'left'), atol=1e-12)
    data = yaml.safe_load(open(out))
    data['sensors']['lidar']['rotation'] = [0, 0, 0, 2]
    yaml.safe_dump(data, open(out, 'w'))
    with pytest.raises(CalibrationError, match='sensors.lidar.*unit quaternion'):
        load_rig(out)
    with pytest.raises(CalibrationError, match="no sensor 'radar'"):
        rig.sensor('radar')


def test_resolve_url():
    path = resolve_url('package://depthmarks_ros/config/sim_rig/left.yaml')
    assert os.path.isfile(path)
    assert resolve_url('file:///tmp/x.yaml') == '/tmp/x.yaml'


def test_camera_info_round_trip_and_bad_info():
    cam = _cam(D=np.array([0.1, 0, 0, 0, 0]))
    cam.frame_id = 'cam_optical_frame'
    msg = info_from_camera(cam)
    back = camera_from_info(msg)
    np.testing.assert_array_equal(back.P, cam.P)
    assert back.frame_id == 'cam_optical_frame'
    msg.k = [0.0] * 9
    with pytest.raises(ConversionError, match='no calibration'):
        camera_from_info(msg)
    msg = info_from_camera(cam)
    msg.binning_x = msg.binning_y = 2
    assert camera_from_info(msg).size == (160, 120)
    assert camera_from_info(msg).fx == pytest.approx(200.0)


def test_rotations():
    R = euler_to_matrix(0.1, -0.2, 0.3)
    np.testing.assert_allclose(matrix_to_euler(R), (0.1, -0.2, 0.3))
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)


def test_assumed_camera_for_an_image_without_calibration():
    from depthmarks_ros.core.camera import assumed_K
    K = assumed_K(640, 480)
    assert K[0, 0] == K[1, 1] == 640 and (K[0, 2], K[1, 2]) == (319.5, 239.5)
    assert assumed_K(480, 640)[0, 0] == 640                       # portrait: the larger side too
    assert assumed_K(640, 480, 500.0)[1, 1] == 500 and assumed_K(640, 480, 0.0)[0, 0] == 640


def test_centred_pinhole_builders_share_assumed_K():
    """The video source's uncalibrated camera and stereo's focal+baseline pair put the principal point
    where assumed_K does ((w - 1) / 2, (h - 1) / 2) and differ from it only in their focal."""
    from depthmarks_ros.core.camera import assumed_K
    from depthmarks_ros.core.stereo.pipeline import cameras_from_focal_baseline
    from depthmarks_ros.core.video.calibration import uncalibrated_camera
    cam = uncalibrated_camera(640, 480, 90.0)                     # 90 deg across 640 px: f = 320
    np.testing.assert_allclose(cam.K, assumed_K(640, 480, 320.0), atol=1e-9)
    assert (cam.cx, cam.cy) == (319.5, 239.5)
    left, right = cameras_from_focal_baseline(321, 241, 300.0, 0.1)
    np.testing.assert_array_equal(left.K, assumed_K(321, 241, 300.0))
    np.testing.assert_array_equal(right.P[:, :3], assumed_K(321, 241, 300.0))
    assert right.P[0, 3] == pytest.approx(-300.0 * 0.1) and (left.cx, left.cy) == (160.0, 120.0)
