"""video_source: sources, pacing, side-by-side split, calibration checks, and the node over DDS."""
import os
import time

import cv2
import numpy as np
import psutil
import pytest
from sensor_msgs.msg import CameraInfo, Image

from depthmarks_ros.convert.image import image_to_numpy
from depthmarks_ros.core.calibration import load_camera_yaml, default_rig_path
from depthmarks_ros.core.camera import CalibrationError
from depthmarks_ros.core.video import (Backoff, ImageFolderSource, Pacer, SourceError, VideoFileSource,
                                       camera_for_frames, open_source, split_side_by_side)
from depthmarks_ros.testing.ros_harness import NodeProcess


def _frame(i, w=64, h=48):
    """A frame whose content encodes its index (block of value 10*i) on a gradient."""
    f = np.zeros((h, w, 3), np.uint8)
    f[:] = np.linspace(0, 200, w, dtype=np.uint8)[None, :, None]
    f[4:20, 4:20] = (10 * i) % 250
    return f


def _write_video(path, n, w=64, h=48, fps=25.0):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        vw.write(_frame(i, w, h))
    vw.release()


def _write_folder(folder, n, w=64, h=48):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        cv2.imwrite(os.path.join(folder, f'frame{i}.png'), _frame(i, w, h))


def test_video_file_source_reads_all_frames(tmp_path):
    path = tmp_path / 'clip.avi'
    _write_video(path, 12)
    src = open_source(str(path))
    assert isinstance(src, VideoFileSource)
    src.open()
    assert src.nominal_fps == pytest.approx(25.0)
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert len(frames) == 12
    assert abs(int(frames[5][10, 10, 0]) - 50) <= 3  # MJPG is lossy: content of frame 5
    src.rewind()
    assert src.read() is not None


def test_image_folder_natural_order_and_skips_broken(tmp_path):
    _write_folder(tmp_path, 12)
    (tmp_path / 'frame5.png').write_bytes(b'not a png')
    src = open_source(str(tmp_path))
    assert isinstance(src, ImageFolderSource)
    src.open()
    values = []
    while (f := src.read()) is not None:
        values.append(int(f[10, 10, 0]))
    assert values == [10 * i for i in range(12) if i != 5]  # frame2 before frame10, frame5 skipped


@pytest.mark.parametrize('make, match', [
    (lambda p: str(p / 'missing.mp4'), 'file not found'),
    (lambda p: (p / 'junk.mp4').write_bytes(b'\x00' * 1000) and str(p / 'junk.mp4'), 'cannot be decoded|no decodable'),
    (lambda p: (os.makedirs(p / 'empty'), str(p / 'empty'))[1], 'holds no images'),
    (lambda p: '/dev/video99', 'no such device'),
])
def test_bad_sources_give_clear_errors(tmp_path, make, match):
    with pytest.raises(SourceError, match=match):
        open_source(make(tmp_path)).open()


def test_truncated_video(tmp_path):
    path = tmp_path / 'clip.avi'
    _write_video(path, 30)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    src = VideoFileSource(str(path))
    try:
        src.open()
    except SourceError:
        return  # refused cleanly at open
    n = 0
    while src.read() is not None:  # or it ends early without crashing
        n += 1
    assert n < 30


def test_side_by_side_split():
    frame = np.zeros((4, 10, 3), np.uint8)
    frame[:, 5:] = 255
    left, right = split_side_by_side(frame)
    assert left.shape == right.shape == (4, 5, 3) and left.max() == 0 and right.min() == 255
    with pytest.raises(ValueError, match='odd'):
        split_side_by_side(np.zeros((4, 9, 3), np.uint8))


def test_pacer_and_backoff_with_fake_clock():
    now = [0.0]
    sleeps = []

    def sleep(d):
        sleeps.append(d)
        now[0] += d
    pacer = Pacer(10.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        pacer.wait()
        now[0] += 0.02  # work
    assert now[0] == pytest.approx(0.42)  # 4 full periods + work of the last frame
    now[0] += 5.0  # fell far behind: no catch-up burst
    pacer.wait()
    pacer.wait()
    assert sleeps[-1] == pytest.approx(0.1)
    b = Backoff(0.5, 4.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_calibration_size_checks():
    cam = load_camera_yaml(os.path.join(os.path.dirname(default_rig_path()), 'left.yaml'))  # 640x480
    same, note = camera_for_frames(cam, 640, 480)
    assert same is cam and note == ''
    half, note = camera_for_frames(cam, 320, 240)
    assert half.fx == pytest.approx(cam.fx / 2) and 'scaled' in note
    with pytest.raises(CalibrationError, match='aspect ratio'):
        camera_for_frames(cam, 640, 360)
    default, note = camera_for_frames(None, 640, 480, 90.0)
    assert default.fx == pytest.approx(320.0) and 'uncalibrated' in note


# ---------------------------------------------------------------------------- node over DDS


@pytest.mark.dds
def test_node_plays_video_file_with_calibration(probe, tmp_path):
    path = tmp_path / 'clip.avi'
    _write_video(path, 40, 640, 480, fps=20.0)
    url = 'package://depthmarks_ros/config/sim_rig/left.yaml'
    images = probe.subscribe(Image, 'camera/image_raw')
    infos = probe.subscribe(CameraInfo, 'camera/camera_info')
    with NodeProcess('video_source', params={'source': str(path), 'camera_info_url': url, 'loop': True,
                                             'frame_id': 'cam_optical_frame'}) as node:
        assert probe.spin_until(lambda: len(images) >= 10 and len(infos) >= 10, timeout=20), node.output
        t0, n0 = time.monotonic(), len(images)
        probe.spin_for(1.5)
        rate = (len(images) - n0) / (time.monotonic() - t0)
        assert node.stop() == 0, node.output
    assert 8 < rate < 40  # paced at the file's 20 fps (generous: loaded machine)
    img = images[-1]
    assert (img.width, img.height, img.encoding, img.header.frame_id) == (640, 480, 'bgr8', 'cam_optical_frame')
    info_by_stamp = {(i.header.stamp.sec, i.header.stamp.nanosec): i for i in infos}
    matched = [info_by_stamp.get((m.header.stamp.sec, m.header.stamp.nanosec)) for m in images]
    assert sum(m is not None for m in matched) >= 0.8 * len(images)  # each image has its camera_info stamp
    assert all(m.k[0] == pytest.approx(500.0) for m in matched if m is not None)  # from the calibration file


@pytest.mark.dds
def test_node_side_by_side_folder_stereo(probe, tmp_path):
    folder = tmp_path / 'sbs'
    os.makedirs(folder)
    for i in range(5):
        f = np.zeros((48, 128, 3), np.uint8)
        f[:, :64] = 40 + i
        f[:, 64:] = 200 - i
        cv2.imwrite(str(folder / f'{i:03d}.png'), f)
    left = probe.subscribe(Image, 'stereo/left/image_raw')
    right = probe.subscribe(Image, 'stereo/right/image_raw')
    rinfo = probe.subscribe(CameraInfo, 'stereo/right/camera_info')
    with NodeProcess('video_source', params={'source': str(folder), 'stereo_mode': 'side_by_side',
                                             'fps': 20.0, 'loop': True}) as node:
        assert probe.spin_until(lambda: len(left) >= 6 and len(right) >= 6 and rinfo, timeout=20), node.output
        assert node.stop() == 0
    stamps_l = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in left}
    stamps_r = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in right}
    assert len(stamps_l & stamps_r) >= 5  # identical stamps for each pair
    l, r = image_to_numpy(left[0]), image_to_numpy(right[0])
    assert l.shape == (48, 64, 3) and l.mean() < 50 and r.mean() > 190
    assert 'uncalibrated' in node.output  # the one-time warning
    assert node.output.count('uncalibrated camera_info') <= 2  # once per camera, not per frame


@pytest.mark.dds
def test_node_missing_device_retries_without_busy_loop(probe):
    with NodeProcess('video_source', params={'source': '/dev/video99', 'max_retry_interval': 1.0}) as node:
        time.sleep(4.0)
        assert node.alive()
        cpu = psutil.Process(node.proc.pid).cpu_times()
        rc = node.stop()
    assert rc == 0
    assert 'no such device' in node.output and 'retrying' in node.output
    assert cpu.user + cpu.system < 3.5  # start-up only: no busy loop while retrying


@pytest.mark.dds
def test_node_mismatched_calibration_is_reported_and_node_stays_up(probe, tmp_path):
    _write_folder(tmp_path / 'f', 3, w=64, h=36)  # 16:9 frames, 4:3 calibration
    images = probe.subscribe(Image, 'camera/image_raw')
    with NodeProcess('video_source', params={'source': str(tmp_path / 'f'), 'fps': 20.0, 'loop': True,
                                             'camera_info_url': 'package://depthmarks_ros/config/sim_rig/left.yaml'}) as node:
        probe.spin_for(2.0)
        assert node.alive()
        assert node.stop() == 0
    assert images == []
    assert 'aspect ratio' in node.output
    assert node.output.count('aspect ratio') <= 2  # rate-limited


@pytest.mark.dds
def test_node_takes_an_integer_source_as_a_device_index(probe):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.video_source import VideoSourceNode
    node = VideoSourceNode(parameter_overrides=[Parameter('source', value=99), Parameter('max_retry_interval', value=1.0)])
    try:
        assert node.p.source == 99   # `-p source:=99`: an integer, as the parameter service holds it; opened as '99'
        assert node.get_parameter('source').value == 99
    finally:
        node.shutdown()
        node.destroy_node()
    from rclpy.exceptions import ParameterException
    with pytest.raises(ParameterException, match='device index must be >= 0'):   # run_node: one line, exit 1
        VideoSourceNode(parameter_overrides=[Parameter('source', value=-1)])


@pytest.mark.dds
def test_node_shutdown_keeps_to_the_shared_deadline(probe):
    """run_nodes joins every node against one deadline: the source thread's join (2 s at most) is cut
    to what is left of it, never past it."""
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.video_source import VideoSourceNode
    node = VideoSourceNode(parameter_overrides=[Parameter('source', value='/dev/video99'),
                                                Parameter('max_retry_interval', value=1.0)])
    thread, joins = node._thread, []

    class Recorded:                    # the real thread, its join's timeout recorded
        def join(self, timeout=None):
            joins.append(timeout)
            thread.join(timeout)
    node._thread = Recorded()
    try:
        node.shutdown(deadline=time.monotonic() + 0.5)
        assert len(joins) == 1 and joins[0] <= 0.5
    finally:
        node._thread = thread
        node.shutdown()
        node.destroy_node()
