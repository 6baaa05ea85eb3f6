"""The whole depthmarks_ros pipeline.

    ros2 launch depthmarks_ros full_pipeline.launch.py                  # simulated rig, all nodes
    ros2 launch depthmarks_ros full_pipeline.launch.py source:=topics camera_ns:=/my_cam lidar_topic:=/velodyne_points
    ros2 launch depthmarks_ros full_pipeline.launch.py source:=video video:=/path/clip.mp4 rviz:=true
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from depthmarks_ros import launch_utils as lu

ARGUMENTS = [
    ('source', 'sim', 'Input: sim (simulated rig), video (video_source node), topics (your sensors)'),
    ('use_sim', 'true', 'Shortcut: false means source:=topics when source is sim'),
    ('calibration_dir', '', 'Folder with rig.yaml and camera YAMLs ("" = the package config/sim_rig)'),
    ('stereo', 'true', 'Run stereo_depth'),
    ('fusion', 'true', 'Run depth_fusion'),
    ('mono', 'false', 'Run mono_depth (needs mono_model)'),
    ('face', 'true', 'Run face_landmarks'),
    ('body', 'true', 'Run body_pose'),
    ('mono_model', '', 'Local folder of a monocular depth model (see docs/mono_depth.md)'),
    ('device', 'cpu', 'Torch device for the mono model: cpu or cuda'),
    ('video', '', 'source:=video: video file, image folder or camera device'),
    ('stereo_ns', 'stereo', 'Namespace of the stereo pair topics (left/image_raw, ...)'),
    ('camera_ns', 'camera', 'Namespace of the RGB camera topics (image_raw, camera_info)'),
    ('lidar_topic', 'lidar/points', 'LiDAR PointCloud2 topic'),
    ('rviz', 'false', 'Open RViz with config/depthmarks.rviz'),
    ('use_dds_profile', 'true', 'Load config/fastdds_localhost.xml (large messages between processes)'),
]


def _flag(context, name):
    return LaunchConfiguration(name).perform(context).lower() in ('true', '1', 'yes')


def _nodes(context):
    get = lambda n: LaunchConfiguration(n).perform(context)  # noqa: E731
    source = get('source')
    if source == 'sim' and not _flag(context, 'use_sim'):
        source = 'topics'
    calib = get('calibration_dir') or os.path.join(lu.share_dir(), 'config', 'sim_rig')
    rig_file = os.path.join(calib, 'rig.yaml')
    stereo_ns, camera_ns, lidar = get('stereo_ns'), get('camera_ns'), get('lidar_topic')
    remap = [('stereo/left/image_raw', f'{stereo_ns}/left/image_raw'),
             ('stereo/left/camera_info', f'{stereo_ns}/left/camera_info'),
             ('stereo/right/image_raw', f'{stereo_ns}/right/image_raw'),
             ('stereo/right/camera_info', f'{stereo_ns}/right/camera_info'),
             ('camera/image_raw', f'{camera_ns}/image_raw'), ('camera/camera_info', f'{camera_ns}/camera_info'),
             ('lidar/points', lidar)]
    actions = []
    if source == 'sim':
        actions.append(lu.node('sim_rig', {'rig_file': rig_file}, remap))
    elif source == 'video':
        actions.append(lu.node('video_source', {'source': get('video'), 'loop': True}, remap))
    actions += lu.static_transforms(rig_file)
    has_lidar = source != 'video'
    has_stereo = source != 'video'
    if _flag(context, 'stereo') and has_stereo:
        actions.append(lu.node('stereo_depth', None, remap))
    if _flag(context, 'fusion') and has_lidar:
        actions.append(lu.node('depth_fusion', {'rig_file': rig_file,
                                                'use_stereo': _flag(context, 'stereo') and has_stereo}, remap))
    depth_topic = 'fusion/depth' if (_flag(context, 'fusion') and has_lidar) else ''
    if _flag(context, 'mono') and get('mono_model'):
        actions.append(lu.node('mono_depth', {'model': get('mono_model'), 'device': get('device')}, remap))
    if _flag(context, 'face'):
        actions.append(lu.node('face_landmarks', {'depth_topic': depth_topic}, remap))
    if _flag(context, 'body'):
        actions.append(lu.node('body_pose', {'depth_topic': depth_topic}, remap))
    return actions


def generate_launch_description():
    args = [DeclareLaunchArgument(n, default_value=d, description=desc) for n, d, desc in ARGUMENTS]
    rviz = Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
                arguments=['-d', lu.config_path('depthmarks.rviz')], condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription(args + [lu.dds_profile_action(), OpaqueFunction(function=_nodes), rviz])
