"""Shared test inputs: the scenes and message sets several test files use.

test/conftest.py turns the scenes into fixtures (``sim``, ``fusion_scene``, ``face_image``); test
files import the helpers from here, never from another test file. The scenes are ROS-free; the
message and node helpers (``stereo_pair_msgs``, the ``*_publishers``, ``start_stereo_node``,
``publish_stamped``, ``publish_and_spin``) need the message packages and a RosProbe.
"""
from __future__ import annotations

import os
import re

import numpy as np

#: intrinsics of the 640x480 face image (:func:`face_image`)
FACE_K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


def grey(rgb: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def stereo_sim():
    """The simulated rig at 320x240 with image noise 1 and its frame at t=0: ``(rig, frame)``."""
    from depthmarks_ros.core.sim import SimConfig, SimRig
    s = SimRig(SimConfig(width=320, height=240, image_noise=1.0))
    return s, s.render(0.0)


def fusion_scene():
    """The simulated rig at 320x240 (seed 5) at t=0: ``(rig, frame, lidar sweep, sweep xyz (N, 3),
    sparse LiDAR depth in the left camera)``."""
    from depthmarks_ros.core.fusion.projection import sparse_depth_image
    from depthmarks_ros.core.sim import SimConfig, SimRig
    sim = SimRig(SimConfig(width=320, height=240, seed=5))
    f = sim.render(0.0)
    sweep = sim.render_lidar(0.0)
    pts = np.stack([sweep['x'], sweep['y'], sweep['z']], 1)
    sparse = sparse_depth_image(pts, sim.rig.transform('lidar', 'left'), sim.stereo.left)
    return sim, f, sweep, pts, sparse


def face_image() -> np.ndarray:
    """A real face (skimage's astronaut) on a grey 640x480 RGB canvas (intrinsics :data:`FACE_K`)."""
    import cv2
    from skimage import data
    img = data.astronaut()
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[:, 80:560] = cv2.resize(img, (480, 480))
    return canvas


def stereo_pair_msgs(sim, stamp, left_cam=None, right_cam=None, left_rgb=None, right_rgb=None):
    """(left image, left camera_info, right image, right camera_info) of ``sim`` (:func:`stereo_sim`)
    stamped ``stamp``; each part can be replaced."""
    from depthmarks_ros.convert.camera_info import info_from_camera
    from depthmarks_ros.convert.image import numpy_to_image
    s, f = sim
    lm = numpy_to_image(f.left_rgb if left_rgb is None else left_rgb, 'rgb8')
    rm = numpy_to_image(f.right_rgb if right_rgb is None else right_rgb, 'rgb8')
    li = info_from_camera(left_cam or s.stereo.left)
    ri = info_from_camera(right_cam or s.stereo.right)
    for m, frame in ((lm, 'left_camera_optical_frame'), (li, 'left_camera_optical_frame'),
                     (rm, 'right_camera_optical_frame'), (ri, 'right_camera_optical_frame')):
        m.header.stamp = stamp
        m.header.frame_id = frame
    return lm, li, rm, ri


def stereo_input_publishers(probe) -> list:
    """Publishers of stereo_depth's inputs, in :func:`stereo_pair_msgs`' order: left image, left
    camera_info, right image, right camera_info (best effort, as sensors publish)."""
    from sensor_msgs.msg import CameraInfo, Image
    return [probe.publisher(Image, 'stereo/left/image_raw'), probe.publisher(CameraInfo, 'stereo/left/camera_info'),
            probe.publisher(Image, 'stereo/right/image_raw'), probe.publisher(CameraInfo, 'stereo/right/camera_info')]


def camera_input_publishers(probe, depth_topic: str = '') -> list:
    """Publishers of a camera node's inputs (face_landmarks, body_pose): image, camera_info and,
    with ``depth_topic``, a depth image (best effort, as sensors publish)."""
    from sensor_msgs.msg import CameraInfo, Image
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info')]
    return pubs + [probe.publisher(Image, depth_topic)] if depth_topic else pubs


def start_stereo_node(probe, **params):
    """An in-process stereo_depth node with parameters ``params``, spun by ``probe``, and the
    publishers of its inputs once it has subscribed to them: ``(node, pubs)``."""
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    node = StereoDepthNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    probe.add_node(node)
    pubs = stereo_input_publishers(probe)
    for p in pubs:
        assert probe.wait_for_subscribers(p), p.topic_name
    return node, pubs


def publish_stamped(probe, node, pubs, msgs, settle_s: float = 0.1, timeout: float = 10.0) -> None:
    """Stamp every message with ``node``'s clock now (one input set), publish ``msgs[i]`` on
    ``pubs[i]`` and wait until the node's worker has processed it."""
    stamp = node.get_clock().now().to_msg()
    for p, msg in zip(pubs, msgs):
        msg.header.stamp = stamp
        p.publish(msg)
    probe.spin_for(settle_s)
    node.worker.wait_idle(timeout)
    probe.spin_for(settle_s)


def publish_and_spin(probe, pubs, msgs, spin_s: float = 0.05) -> None:
    """Publish ``msgs[i]`` on ``pubs[i]``, then spin the probe for ``spin_s``."""
    for p, m in zip(pubs, msgs):
        p.publish(m)
    probe.spin_for(spin_s)


# ------------------------------------------------------------------ the installed package
SOURCE_ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..'))
SETUP_HINT = 'run scripts/setup.sh (it installs the package into the venv)'


def package_executables() -> list:
    """The node executables setup.py declares (its NODES list), plus ``depthmarks``."""
    setup = open(os.path.join(SOURCE_ROOT, 'setup.py')).read()
    nodes = re.findall(r"^\s+'(\w+)',$", setup.split('NODES = [')[1].split(']')[0], re.M)
    return nodes + ['depthmarks']
