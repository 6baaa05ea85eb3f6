"""Body pose: real person (skimage astronaut), transforms, no/partial person, depth lifting, files, node."""
import json

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.cloud import cloud_to_array
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.body.backends import BackendError, create_backend
from depthmarks_ros.core.body.coco17 import BLAZEPOSE_TO_COCO17, COCO17_NAMES
from depthmarks_ros.core.body.coco_io import load_annotations, result_entry, write_results
from depthmarks_ros.core.body.lifting3d import SOURCE_DEPTH, SOURCE_MODEL, lift_keypoints
from depthmarks_ros.core.body.metrics import oks, pck
from depthmarks_ros.core.body.pipeline import BodyPoseEstimator, coco17_in_box
from depthmarks_ros.core.camera import PinholeCamera
from depthmarks_ros.testing.ros_harness import NodeProcess
from depthmarks_ros.testing.scenes import camera_input_publishers, publish_stamped

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
UPPER = [0, 1, 2, 3, 4, 5, 6]  # nose, eyes, ears, shoulders: what the astronaut shows clearly


@pytest.fixture(scope='module')
def frame():
    from skimage import data
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 80:560] = cv2.resize(data.astronaut(), (480, 480))
    return canvas


@pytest.fixture(scope='module')
def est():
    e = BodyPoseEstimator(static=True)
    yield e
    e.close()


def upper17(est, img, k=K, depth=None):
    people = est.process(img, k, depth)
    assert len(people) == 1
    return people[0].coco17()[0][UPPER]


def test_astronaut_keypoints_are_anatomically_placed(est, frame):
    kp, vis, _ = est.process(frame, K)[0].coco17()
    nose, leye, reye, lsh, rsh = kp[0], kp[1], kp[2], kp[5], kp[6]
    assert 200 < nose[0] < 360 and 60 < nose[1] < 180           # the face is in the upper middle
    assert leye[0] > reye[0] and lsh[0] > rsh[0]                 # subject's left is image right
    assert lsh[1] > nose[1] + 60 and rsh[1] > nose[1] + 60       # shoulders below the head
    assert np.linalg.norm(lsh - rsh) > 2.5 * np.linalg.norm(leye - reye)
    assert np.all(vis[UPPER] > 0.8) and COCO17_NAMES[BLAZEPOSE_TO_COCO17.tolist().index(23)] == 'left_hip'


def assert_close(got, expected, base):
    """Head points within 0.2 ear-to-ear, shoulders within 0.35 shoulder width (the astronaut's right
    shoulder is a bulky suit cut by the image edge: BlazePose places it less repeatably)."""
    head = np.linalg.norm(got[:5] - expected[:5], axis=1)
    sh = np.linalg.norm(got[5:] - expected[5:], axis=1)
    assert head.max() < 0.2 * np.linalg.norm(base[3] - base[4]), head
    assert sh.max() < 0.35 * np.linalg.norm(base[5] - base[6]), sh


def test_keypoints_follow_shift_scale_and_flip(est, frame):
    base = upper17(est, frame)
    A = np.array([[0.8, 0, 70], [0, 0.8, 40]])
    moved = cv2.warpAffine(frame, A, (640, 480), borderValue=(90, 90, 90))
    assert_close(upper17(est, moved), base @ A[:, :2].T + A[:, 2], base * 0.8)
    flipped = upper17(est, np.ascontiguousarray(frame[:, ::-1]))
    swap = [0, 2, 1, 4, 3, 6, 5]                                 # left <-> right
    assert_close(flipped, base[swap] * [-1, 1] + [639, 0], base)


def test_odd_size_padding_keeps_keypoints(est, frame):
    base = upper17(est, frame)
    padded = cv2.copyMakeBorder(frame, 13, 40, 7, 31, cv2.BORDER_CONSTANT, value=(90, 90, 90))  # 527x678
    assert_close(upper17(est, padded), base + [7, 13], base)


def test_no_person_and_partial_body(est, frame):
    assert est.process(np.full((240, 320, 3), 128, np.uint8), K) == []
    assert est.process(np.random.default_rng(0).integers(0, 255, (101, 77, 3), dtype=np.uint8), K) == []
    head_only = np.ascontiguousarray(frame[:200])                  # partial: the head, no hips
    people = est.process(head_only, K)
    for p in people:                                                # dropping it is fine; no crash, sane shapes
        assert p.keypoints.shape == (33, 2) and p.xyz.shape == (33, 3)


def test_model_complexity_other_than_1_fails_clearly():
    with pytest.raises(BackendError, match='needs internet'):
        create_backend('mediapipe', model_complexity=2)
    with pytest.raises(BackendError, match='unknown body backend'):
        create_backend('hrnet')


def synthetic_person(z_person=2.0, z_wall=4.0):
    """A person-shaped plane (torso + head) at z_person in front of a wall; keypoints on it."""
    depth = np.full((480, 640), z_wall, np.float32)
    depth[150:400, 260:380] = z_person           # torso
    depth[90:150, 295:345] = z_person            # head
    kp = np.full((33, 2), np.nan)
    kp[0] = (320, 120)
    kp[11], kp[12] = (370, 160), (262, 160)      # shoulders 2 px inside the torso edge: windows see the wall
    kp[23], kp[24] = (350, 390), (290, 390)
    kp[15], kp[16] = (420, 300), (200, 300)      # wrists held out beside the body: only the wall behind
    world = np.zeros((33, 3))
    world[11], world[12], world[23], world[24] = (0.2, -0.5, 0), (-0.2, -0.5, 0), (0.1, 0, 0), (-0.1, 0, 0)
    world[15], world[16] = (0.4, -0.2, -0.1), (-0.4, -0.2, -0.1)
    world[0] = (0, -0.7, -0.05)
    return depth, kp, world


def test_lifting_takes_the_person_not_the_wall():
    depth, kp, world = synthetic_person()
    vis = np.where(np.isfinite(kp[:, 0]), 0.9, 0.0)
    xyz, cov, src, sig = lift_keypoints(kp, vis, K, depth, world)
    for i in (0, 11, 12, 23, 24):
        assert src[i] == SOURCE_DEPTH and xyz[i, 2] == pytest.approx(2.0, abs=1e-3)
        assert xyz[i, 0] == pytest.approx((kp[i, 0] - 320) / 500 * 2.0, abs=1e-3)
        assert np.all(np.linalg.eigvalsh(cov[i]) > 0)
    # wrists over the wall: depth 2 m behind the torso is background -> the model's guess near the torso
    for i in (15, 16):
        assert src[i] == SOURCE_MODEL and abs(xyz[i, 2] - 2.0) < 0.3
    assert cov[15, 2, 2] > cov[11, 2, 2] and np.all(sig[[0, 11]] > 0)


def test_lifting_without_depth_uses_the_model_at_a_plausible_distance():
    depth, kp, world = synthetic_person()
    vis = np.where(np.isfinite(kp[:, 0]), 0.9, 0.0)
    xyz, _, src, _ = lift_keypoints(kp, vis, K, None, world)
    assert np.all(src[[0, 11, 12, 23, 24]] == SOURCE_MODEL)
    # shoulders 108 px apart, 0.4 m in the model -> 500 * 0.4 / 108 = 1.85 m
    assert np.nanmedian(xyz[[11, 12, 23, 24], 2]) == pytest.approx(1.85, abs=0.05)
    xyz, _, src, _ = lift_keypoints(kp, vis, K, None, None)
    assert np.all(src == 0) and np.all(np.isnan(xyz))


def test_astronaut_on_a_depth_plane(est, frame):
    depth = np.full((480, 640), 3.0, np.float32)
    p = est.process(frame, K, depth)[0]
    uv = np.round(p.keypoints)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 480)
    assert np.all(p.source[inside] == SOURCE_DEPTH) and np.allclose(p.xyz[inside, 2], 3.0)
    assert np.all(p.source[~inside] == SOURCE_MODEL)               # below the image: placed from the model
    assert (~inside).sum() >= 4                                    # knees and ankles are off the image


def test_sim_rig_person_is_lifted_within_5cm_at_2m(est):
    """The sim rig's person billboard (~2 m, in front of a wall) with its ground-truth depth made
    worse: 1 cm noise and 30% holes. Keypoints on the billboard must keep < 5 cm depth error."""
    from depthmarks_ros.core.sim import SimConfig, SimRig
    sim = SimRig(SimConfig(width=640, height=480, seed=0))
    f = sim.render(0.0)
    rng = np.random.default_rng(1)
    depth = f.depth_gt + rng.normal(0, 0.01, f.depth_gt.shape).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.nan
    people = est.process(f.left_rgb, sim.stereo.left.intrinsics(), depth)
    assert len(people) == 1
    p = people[0]
    uv = np.round(p.keypoints).astype(int)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < 640) & (uv[:, 1] >= 0) & (uv[:, 1] < 480)
    on_person = np.zeros(33, bool)
    on_person[inside] = f.person_mask[uv[inside, 1], uv[inside, 0]]
    on_person &= p.visibility > 0.5
    assert on_person.sum() >= 10
    gt = f.depth_gt[uv[on_person, 1], uv[on_person, 0]]
    assert np.all(p.source[on_person] == SOURCE_DEPTH)
    assert np.abs(p.xyz[on_person, 2] - gt).max() < 0.05 and 1.5 < np.median(gt) < 2.5


def test_metrics():
    gt = np.random.default_rng(0).uniform(0, 200, (17, 2))
    lab = np.ones(17, bool)
    assert oks(gt, gt, lab, 5000.0) == pytest.approx(1.0)
    assert oks(gt + 30, gt, lab, 5000.0) < oks(gt + 3, gt, lab, 5000.0) < 1.0
    pred = gt.copy()
    pred[:4] += 100
    assert pck(pred, gt, lab, 100.0, 0.2) == pytest.approx(13 / 17)
    assert np.isnan(pck(pred, gt, np.zeros(17, bool), 100.0))


def test_body_command_writes_coco_results(tmp_path, frame, est):
    from depthmarks_ros.cli.main import main
    cv2.imwrite(str(tmp_path / '000000000042.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert main(['body', str(tmp_path / '000000000042.png'), '-o', str(tmp_path / 'res.json')]) == 0
    res = json.loads((tmp_path / 'res.json').read_text())
    assert len(res) == 1 and res[0]['image_id'] == 42 and res[0]['category_id'] == 1
    assert len(res[0]['keypoints']) == 51
    whole = np.array(res[0]['keypoints']).reshape(17, 3)[UPPER, :2]
    # top-down with an annotation file: one crop per person box, image ids from the file
    ann = {'images': [{'id': 7, 'file_name': '000000000042.png'}],
           'annotations': [{'image_id': 7, 'bbox': [150, 40, 340, 440], 'area': 1.5e5, 'iscrowd': 0,
                            'keypoints': [1, 1, 2] * 17}]}
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    assert main(['body', str(tmp_path / '000000000042.png'), '-o', str(tmp_path / 'res2.json'),
                 '--annotations', str(tmp_path / 'ann.json')]) == 0
    res2 = json.loads((tmp_path / 'res2.json').read_text())
    assert res2[0]['image_id'] == 7
    crop = np.array(res2[0]['keypoints']).reshape(17, 3)[UPPER, :2]
    assert np.abs(crop - whole).max() < 25                          # crop offsets are undone
    people = load_annotations(str(tmp_path / 'ann.json'))['000000000042.png']
    single = create_backend("mediapipe", static=True)
    r = coco17_in_box(single, frame, people[0]["bbox"])
    single.close()
    write_results(str(tmp_path / 'x.json'), [result_entry(7, r[0], r[1], r[2])])
    assert json.loads((tmp_path / 'x.json').read_text())[0]['keypoints'][:2] == pytest.approx(r[0][0], abs=0.01)


@pytest.mark.dds
def test_node_publishes_keypoints_markers_and_survives_bad_input(probe, frame):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.body_pose import BodyPoseNode
    node = BodyPoseNode(parameter_overrides=[Parameter('depth_topic', value='depth'),
                                             Parameter('detect_tiles', value=2), Parameter('redetect_every', value=1)])
    probe.add_node(node)
    pubs = camera_input_publishers(probe, 'depth')
    kps = probe.subscribe(PointCloud2, 'body/keypoints', node.output_qos())
    native = probe.subscribe(PointCloud2, 'body/keypoints_native', node.output_qos())
    hands = probe.subscribe(PointCloud2, 'hands/keypoints', node.output_qos())
    whole = probe.subscribe(PointCloud2, 'body/wholebody', node.output_qos())
    markers = probe.subscribe(MarkerArray, 'body/markers', node.output_qos())
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    cam = PinholeCamera(640, 480, K)

    def send(img, depth, camera=cam):
        publish_stamped(probe, node, pubs, (numpy_to_image(img, 'rgb8'), info_from_camera(camera), depth))

    plane = numpy_to_image(np.full((480, 640), 2.5, np.float32), '32FC1')
    send(frame, numpy_to_image(np.full((240, 320), 2.5, np.float32), '32FC1'))    # depth of another size
    assert node.stats.errors >= 1 and 'depth image is 320x240' in node.stats.last_error
    send(frame, plane, PinholeCamera(320, 240, K))                                # camera_info of another size
    assert 'camera_info is 320x240' in node.stats.last_error
    n_before = len(kps)
    send(np.full((480, 640, 3), 90, np.uint8), plane)                             # nobody there
    assert probe.spin_until(lambda: len(kps) > n_before, 10) and kps[-1].width == 0
    n_before = len(kps)
    send(frame, plane)                                                            # a later good frame
    assert probe.spin_until(lambda: len(kps) > n_before and native and markers, 10)
    arr = cloud_to_array(kps[-1])
    assert len(arr) == 17 and list(arr['keypoint_index']) == list(range(17)) and len(set(arr['person_id'])) == 1
    on_image = arr['v'] < 470
    assert np.allclose(arr['z'][on_image], 2.5, atol=0.01) and np.all(arr['source'][on_image] == 1)
    assert np.all(arr['sigma'] > 0) and np.all(arr['cov_zz'] > 0)
    assert len(cloud_to_array(native[-1])) == 33
    assert probe.spin_until(lambda: whole and hands, 5)
    wb = cloud_to_array(whole[-1])
    assert len(wb) == 133 and np.allclose(wb['u'][:17], arr['u'], atol=1e-3)   # COCO-WholeBody: body 17 first
    assert {f.name for f in hands[-1].fields} >= {'person_id', 'hand_id', 'side', 'cov_zz'}
    bones = [m for m in markers[-1].markers if m.ns == 'body_bones']
    assert bones and len(bones[0].points) >= 8
    assert node.diagnostic_values()['people'] == 1
    # three people side by side: every one on body/keypoints with its own id, a marker colour per id
    from skimage import data
    group = np.full((480, 640, 3), 200, np.uint8)
    for i in range(3):
        group[140:353, i * 213:(i + 1) * 213] = cv2.resize(data.astronaut(), (213, 213))
    for _ in range(5):                                                            # the tiles are scanned in turn
        n_before = len(kps)
        send(group, plane)
        assert probe.spin_until(lambda: len(kps) > n_before, 10)
    ids = set(cloud_to_array(kps[-1])['person_id'])
    assert len(ids) == 3
    colours = {(m.color.r, m.color.g, m.color.b) for m in markers[-1].markers if m.ns == 'body_bones'}
    assert len(colours) == 3


@pytest.mark.dds
def test_node_process_exits_cleanly_and_writes_nothing_into_home(probe, tmp_path):
    home = tmp_path / 'home'
    home.mkdir()
    with NodeProcess('body_pose', env={'HOME': str(home)}) as node:
        assert probe.wait_for_publishers('body/keypoints', timeout=30), node.output
        assert node.stop() == 0, node.output
    assert list(home.rglob('*')) == []   # e.g. no matplotlib config or font cache (issue 17.7)
