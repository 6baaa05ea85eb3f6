"""Body pose: a real person (skimage astronaut), transforms, COCO mapping, occlusion-aware 3D, node."""
import json

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import cloud_to_array
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.body.backends import BackendError, MediaPipePose
from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17, COCO17_NAMES
from depthmarks_ros.core.body.lifting3d import SOURCE_DEPTH, SOURCE_MODEL, lift_keypoints
from depthmarks_ros.core.body.metrics import oks, pck
from depthmarks_ros.core.body.pipeline import BodyPoseEstimator
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.testing.ros_harness import NodeProcess

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


@pytest.fixture(scope='module')
def frame():
    from skimage import data
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 80:560] = cv2.resize(data.astronaut(), (480, 480))
    return canvas


@pytest.fixture(scope='module')
def estimator():
    est = BodyPoseEstimator(static=True)
    yield est
    est.close()


def test_finds_the_upper_body_and_maps_to_coco(estimator, frame):
    people = estimator.process(frame, K)
    assert len(people) == 1
    kp, vis, _ = people[0].coco17()
    names = dict(zip(COCO17_NAMES, range(17)))
    ls, rs = kp[names['left_shoulder']], kp[names['right_shoulder']]
    nose = kp[names['nose']]
    assert vis[names['nose']] > 0.5 and vis[names['left_shoulder']] > 0.5
    assert ls[0] > rs[0]                        # the subject's left shoulder is on the image right
    assert nose[1] < min(ls[1], rs[1])          # the nose is above the shoulders
    assert len(set(BLAZEPOSE_TO_COCO17)) == 17


def test_keypoints_follow_a_flip(estimator, frame):
    base = estimator.process(frame, K)[0]
    flipped = estimator.process(np.ascontiguousarray(frame[:, ::-1]), K)[0]
    names = dict(zip(COCO17_NAMES, range(17)))
    kb, kf = base.coco17()[0], flipped.coco17()[0]
    # the person's left shoulder in the flipped image is the mirror of the right one in the original
    mirrored = np.array([639 - kb[names['right_shoulder'], 0], kb[names['right_shoulder'], 1]])
    assert np.linalg.norm(kf[names['left_shoulder']] - mirrored) < 25


def test_no_person_and_odd_sizes(estimator):
    assert estimator.process(np.full((240, 320, 3), 128, np.uint8), K) == []
    assert estimator.process(np.zeros((33, 57, 3), np.uint8), K) == []


def test_model_complexity_other_than_1_fails_clearly():
    with pytest.raises(BackendError, match='not bundled'):
        MediaPipePose(model_complexity=2)


def test_occlusion_aware_lifting_picks_the_person_not_the_wall():
    kp = np.array([[300.0, 200], [340, 200], [300, 300], [340, 300]] * 9)[:33]
    vis = np.ones(33)
    depth = np.full((480, 640), 5.0, np.float32)      # wall
    depth[150:350, 280:360] = 2.0                      # the person
    kp[0] = [282, 200]                                 # on the person's edge: window sees the wall too
    kp[5] = [500, 200]                                 # off the person (background): rejected
    xyz, cov, source, sig = lift_keypoints(kp, vis, K, depth, world=np.zeros((33, 3)))
    assert xyz[0, 2] == pytest.approx(2.0, abs=0.01) and source[0] == SOURCE_DEPTH
    assert source[5] == SOURCE_MODEL and abs(xyz[5, 2] - 2.0) < 0.5   # placed at the torso instead
    assert np.all(np.linalg.eigvalsh(cov[source == SOURCE_DEPTH]) > 0)


def test_pck_and_oks():
    gt = np.random.default_rng(0).uniform(0, 100, (17, 2))
    lab = np.ones(17, bool)
    assert pck(gt, gt, lab, 100) == 1.0 and oks(gt, gt, lab, 1e4) == pytest.approx(1.0)
    assert pck(gt + 30, gt, lab, 100) == 0.0 and oks(gt + 30, gt, lab, 1e4) < 0.5


def test_body_command_writes_coco_results(tmp_path, frame):
    from depthmarks_ros.cli.main import main
    cv2.imwrite(str(tmp_path / 'astro.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert main(['body', str(tmp_path / 'astro.png'), '-o', str(tmp_path / 'res.json')]) == 0
    res = json.loads((tmp_path / 'res.json').read_text())
    assert len(res) == 1 and len(res[0]['keypoints']) == 51 and res[0]['category_id'] == 1


@pytest.mark.dds
def test_node_lifts_with_depth_and_survives_bad_input(probe, frame):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.body_pose import BodyPoseNode
    node = BodyPoseNode(parameter_overrides=[Parameter('depth_topic', value='depth')])
    probe.add_node(node)
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(Image, 'depth')]
    kps = probe.subscribe(PointCloud2, 'body/keypoints', node.output_qos())
    coco = probe.subscribe(PointCloud2, 'body/keypoints_coco', node.output_qos())
    markers = probe.subscribe(MarkerArray, 'body/markers', node.output_qos())
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    cam = PinholeCamera(640, 480, K)

    def send(img, depth):
        stamp = node.get_clock().now().to_msg()
        msgs = (numpy_to_image(img, 'rgb8'), info_from_camera(cam), depth)
        for m in msgs:
            m.header.stamp = stamp
        for p, m in zip(pubs, msgs):
            p.publish(m)
        probe.spin_for(0.1)
        node.worker.wait_idle(10)
        probe.spin_for(0.1)

    send(frame, numpy_to_image(np.full((10, 10), 2.0, np.float32), '32FC1'))     # depth of another size
    assert 'depth image is 10x10' in node.stats.last_error
    send(np.full((480, 640, 3), 90, np.uint8), numpy_to_image(np.full((480, 640), 2.0, np.float32), '32FC1'))
    n0 = len(kps)
    send(frame, numpy_to_image(np.full((480, 640), 2.0, np.float32), '32FC1'))
    assert probe.spin_until(lambda: len(kps) > n0 and coco and markers, 10)
    arr = cloud_to_array(kps[-1])
    assert len(arr) == 33 and len(cloud_to_array(coco[-1])) == 17
    torso = arr[[11, 12]]
    assert np.all(torso['source'] == SOURCE_DEPTH) and np.allclose(torso['z'], 2.0, atol=0.02)
    assert any(m.width == 0 for m in kps)  # no person: empty cloud


@pytest.mark.dds
def test_node_process_exits_cleanly(probe):
    with NodeProcess('body_pose') as node:
        assert probe.wait_for_publishers('body/keypoints', timeout=30), node.output
        assert node.stop() == 0, node.output
