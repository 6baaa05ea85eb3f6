"""Which nodes exist, their modules, parameter files and the topics they publish."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class NodeSpec:
    name: str
    module: str
    params_file: str                         # in config/
    outputs: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)  # (topic, type name)


NODES: Dict[str, NodeSpec] = {s.name: s for s in (
    NodeSpec('sim_rig', 'depthmarks_ros.nodes.sim_rig', 'sim_rig_node.yaml', (
        ('stereo/left/image_raw', 'sensor_msgs/msg/Image'), ('stereo/left/camera_info', 'sensor_msgs/msg/CameraInfo'),
        ('stereo/right/image_raw', 'sensor_msgs/msg/Image'), ('stereo/right/camera_info', 'sensor_msgs/msg/CameraInfo'),
        ('camera/image_raw', 'sensor_msgs/msg/Image'), ('camera/camera_info', 'sensor_msgs/msg/CameraInfo'),
        ('lidar/points', 'sensor_msgs/msg/PointCloud2'),
        ('sim/depth_gt', 'sensor_msgs/msg/Image'), ('sim/disparity_gt', 'sensor_msgs/msg/Image'))),
    NodeSpec('video_source', 'depthmarks_ros.nodes.video_source', 'video_source.yaml', (
        ('camera/image_raw', 'sensor_msgs/msg/Image'), ('camera/camera_info', 'sensor_msgs/msg/CameraInfo'))),
    NodeSpec('stereo_depth', 'depthmarks_ros.nodes.stereo_depth', 'stereo_depth.yaml', (
        ('stereo/disparity', 'stereo_msgs/msg/DisparityImage'), ('stereo/depth', 'sensor_msgs/msg/Image'),
        ('stereo/camera_info', 'sensor_msgs/msg/CameraInfo'), ('stereo/confidence', 'sensor_msgs/msg/Image'))),
    NodeSpec('depth_fusion', 'depthmarks_ros.nodes.depth_fusion', 'depth_fusion.yaml', (
        ('fusion/sparse_depth', 'sensor_msgs/msg/Image'), ('fusion/depth', 'sensor_msgs/msg/Image'),
        ('fusion/depth_sigma', 'sensor_msgs/msg/Image'), ('fusion/camera_info', 'sensor_msgs/msg/CameraInfo'))),
    NodeSpec('mono_depth', 'depthmarks_ros.nodes.mono_depth', 'mono_depth.yaml', (
        ('mono/inverse_depth', 'sensor_msgs/msg/Image'), ('mono/depth', 'sensor_msgs/msg/Image'))),
    NodeSpec('face_landmarks', 'depthmarks_ros.nodes.face_landmarks', 'face_landmarks.yaml', (
        ('face/landmarks', 'sensor_msgs/msg/PointCloud2'), ('face/head_pose', 'geometry_msgs/msg/PoseWithCovarianceStamped'),
        ('face/markers', 'visualization_msgs/msg/MarkerArray'))),
    NodeSpec('body_pose', 'depthmarks_ros.nodes.body_pose', 'body_pose.yaml', (
        ('body/keypoints', 'sensor_msgs/msg/PointCloud2'), ('body/markers', 'visualization_msgs/msg/MarkerArray'))),
)}

# short names accepted by --nodes
ALIASES = {'sim': 'sim_rig', 'video': 'video_source', 'stereo': 'stereo_depth', 'fusion': 'depth_fusion',
           'mono': 'mono_depth', 'face': 'face_landmarks', 'body': 'body_pose'}


def resolve(names: List[str]) -> List[str]:
    out = []
    for n in names:
        full = ALIASES.get(n, n)
        if full not in NODES:
            raise ValueError(f'unknown node {n!r}; known: {", ".join(sorted(ALIASES))}')
        out.append(full)
    return out


def load_node_class(name: str) -> Tuple[Optional[type], str]:
    """(NODE_CLASS or None, reason when it cannot be loaded)."""
    spec = NODES[name]
    try:
        mod = importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        return None, f'{name} is not available ({exc})'
    cls = getattr(mod, 'NODE_CLASS', None)
    if cls is None:
        return None, f'{spec.module} defines no NODE_CLASS'
    return cls, ''


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the Python message class."""
    pkg, _, cls = type_name.split('/')
    return getattr(importlib.import_module(f'{pkg}.msg'), cls)
