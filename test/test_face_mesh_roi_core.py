"""MediaPipe's face landmark model on a caller's region (core/body/mp_graphs.FaceMeshByRoi, face_roi):
the graph builds from the wheel, agrees with the legacy Face Mesh on the same face, follows a rotated
region, reports the presence score instead of dropping the face, and refuses regions that cannot hold a
face. Real models on the skimage astronaut face (no /work/shared/data)."""
import cv2
import numpy as np
import pytest

from depthmarks_ros.core.body.mp_graphs import FaceMeshByRoi, face_roi
from depthmarks_ros.core.body.roi import Roi


@pytest.fixture(scope='module')
def roi_mesh():
    m = FaceMeshByRoi()
    yield m
    m.close()


@pytest.fixture(scope='module')
def legacy(face_image):
    """The legacy solution's 468 points (px) of the face in ``face_image``."""
    from depthmarks_ros.core.mediapipe_env import import_mediapipe
    mp = import_mediapipe()
    h, w = face_image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as fm:
        lm = fm.process(face_image).multi_face_landmarks[0]
    return np.array([(p.x * w, p.y * h) for p in lm.landmark])


def _tracking_roi(pts):
    """The region MediaPipe's tracking makes from its own landmarks: box x1.5, eye line level."""
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    e = pts[263] - pts[33]
    return Roi((x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0), float(-np.arctan2(-e[1], e[0])))


def _size(pts):
    return float(np.ptp(pts[:, 0]))


def test_agrees_with_the_legacy_mesh_and_reports_presence(face_image, roi_mesh, legacy):
    m = roi_mesh(face_image, _tracking_roi(legacy))
    assert m.points.shape == (468, 3) and np.isfinite(m.points).all()
    assert m.presence > 0.5
    assert np.linalg.norm(m.points[:, :2] - legacy, axis=1).mean() < 0.03 * _size(legacy)


def test_follows_a_rotated_region(face_image, roi_mesh, legacy):
    h, w = face_image.shape[:2]
    c = legacy.mean(axis=0)
    M = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), 50.0, 1.0)
    img = cv2.warpAffine(face_image, M, (w, h), borderMode=cv2.BORDER_REPLICATE)
    truth = legacy @ M[:, :2].T + M[:, 2]
    turned = roi_mesh(img, _tracking_roi(truth))
    assert turned.presence > 0.5
    assert np.linalg.norm(turned.points[:, :2] - truth, axis=1).mean() < 0.03 * _size(truth)
    # the same region left upright (rotation 0) fits the turned face worse
    r = _tracking_roi(truth)
    upright = roi_mesh(img, Roi(r.cx, r.cy, r.size, 0.0))
    assert (np.linalg.norm(upright.points[:, :2] - truth, axis=1).mean()
            > np.linalg.norm(turned.points[:, :2] - truth, axis=1).mean())


def test_face_roi_from_a_detection_box_and_eye_keypoints():
    box = np.array([100.0, 50.0, 180.0, 150.0])
    r = face_roi(box, np.array([[120.0, 90.0], [160.0, 90.0]]))
    assert (r.cx, r.cy, r.size, r.rotation) == pytest.approx((140.0, 100.0, 150.0, 0.0))
    # eyes on a line rising to the right by 30 deg: the region turns with them (MediaPipe's sign)
    e = 40.0 * np.array([np.cos(np.radians(30)), -np.sin(np.radians(30))])
    r = face_roi(box, np.array([[120.0, 90.0], [120.0, 90.0] + e]))
    assert r.rotation == pytest.approx(-np.radians(30))
    assert face_roi(box, None).rotation == 0.0
    assert face_roi(box, np.array([[1.0, 1.0], [1.0, 1.0]])).rotation == 0.0     # collapsed keypoints


def test_presence_is_low_on_a_region_without_a_face(face_image, roi_mesh):
    blank = np.full_like(face_image, 90)
    m = roi_mesh(blank, Roi(320.0, 240.0, 200.0))
    assert m is not None and m.presence < 0.5      # reported, not gated: the caller judges it


@pytest.mark.parametrize('roi', [Roi(-500.0, -500.0, 100.0), Roi(2000.0, 240.0, 300.0), Roi(320.0, 240.0, 3.0),
                                 Roi(320.0, 240.0, 0.0), Roi(float('nan'), 240.0, 100.0), Roi(320.0, 240.0, -50.0)])
def test_regions_that_cannot_hold_a_face_give_none(face_image, roi_mesh, roi):
    assert roi_mesh(face_image, roi) is None


def test_a_region_cut_by_the_border_still_gives_a_finite_mesh(face_image, roi_mesh, legacy):
    r = _tracking_roi(legacy)
    cut = np.ascontiguousarray(face_image[:, int(r.cx):])        # the face's left half is gone
    m = roi_mesh(cut, Roi(r.cx - int(r.cx), r.cy, r.size, r.rotation))
    assert m is not None and np.isfinite(m.points).all() and 0.0 <= m.presence <= 1.0
    tiny = roi_mesh(np.ascontiguousarray(face_image[:4, :4]), Roi(2.0, 2.0, 100.0))    # a 4x4 image
    assert tiny is not None and np.isfinite(tiny.points).all()


def test_refined_model_gives_478_points(face_image, legacy):
    m = FaceMeshByRoi(refine=True)
    try:
        out = m(face_image, _tracking_roi(legacy))
    finally:
        m.close()
    assert out.points.shape == (478, 3) and out.presence > 0.5
    assert np.linalg.norm(out.points[:468, :2] - legacy, axis=1).mean() < 0.03 * _size(legacy)
