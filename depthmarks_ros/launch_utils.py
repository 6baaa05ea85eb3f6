"""Shared pieces of the launch files (need `launch` and `launch_ros`: a real ROS 2 install).

Kept here, in the installed package, so that every launch file builds nodes the same way:
parameters from config/<node>.yaml, topic remappings, respawn for sensor-facing nodes, and
static transforms of every sensor frame read from the rig calibration file.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional

PACKAGE = 'depthmarks_ros'

# node executable -> its parameter file in config/
PARAMS_FILES = {
    'sim_rig': 'sim_rig_node.yaml',
    'video_source': 'video_source.yaml',
    'stereo_depth': 'stereo_depth.yaml',
    'depth_fusion': 'depth_fusion.yaml',
    'mono_depth': 'mono_depth.yaml',
    'face_landmarks': 'face_landmarks.yaml',
    'body_pose': 'body_pose.yaml',
}
SENSOR_FACING = {'sim_rig', 'video_source', 'stereo_depth', 'depth_fusion'}


def share_dir() -> str:
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory(PACKAGE)


def config_path(name: str) -> str:
    return os.path.join(share_dir(), 'config', name)


def node(executable: str, overrides: Optional[Dict[str, object]] = None,
         remappings: Optional[List[tuple]] = None, namespace: str = '', respawn: Optional[bool] = None):
    """A launch_ros Node of this package with its parameter file and overrides."""
    from launch_ros.actions import Node
    params = [config_path(PARAMS_FILES[executable])]
    if overrides:
        params.append(overrides)
    return Node(package=PACKAGE, executable=executable, name=executable, namespace=namespace,
                parameters=params, remappings=remappings or [], output='screen',
                respawn=executable in SENSOR_FACING if respawn is None else respawn, respawn_delay=2.0)


def static_transforms(rig_file: str) -> list:
    """tf2_ros static_transform_publisher nodes for every sensor frame of a rig file."""
    from launch_ros.actions import Node
    from depthmarks_ros.core.calibration import load_rig
    from depthmarks_ros.core.transforms import matrix_to_quaternion
    rig = load_rig(rig_file)
    actions, seen = [], set()
    for sensor in rig.sensors.values():
        if sensor.frame_id in seen:
            continue
        seen.add(sensor.frame_id)
        t = sensor.T_base_sensor[:3, 3]
        q = matrix_to_quaternion(sensor.T_base_sensor[:3, :3])
        args = ['--x', str(t[0]), '--y', str(t[1]), '--z', str(t[2]),
                '--qx', str(q[0]), '--qy', str(q[1]), '--qz', str(q[2]), '--qw', str(q[3]),
                '--frame-id', rig.base_frame, '--child-frame-id', sensor.frame_id]
        actions.append(Node(package='tf2_ros', executable='static_transform_publisher',
                            name=f'static_tf_{sensor.frame_id}', arguments=args, output='log'))
    return actions


def dds_profile_action(condition_arg: str = 'use_dds_profile'):
    """Set FASTDDS_DEFAULT_PROFILES_FILE to the package's loopback profile when the argument is true."""
    from launch.actions import SetEnvironmentVariable
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    return SetEnvironmentVariable('FASTDDS_DEFAULT_PROFILES_FILE', config_path('fastdds_localhost.xml'),
                                  condition=IfCondition(LaunchConfiguration(condition_arg)))


def single_node_description(executable: str):
    """LaunchDescription of one node with its parameter file: arguments namespace, use_dds_profile."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def make(context):
        return [node(executable, namespace=LaunchConfiguration('namespace').perform(context))]
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='', description='Namespace of the node and its topics'),
        DeclareLaunchArgument('use_dds_profile', default_value='true',
                              description='Load config/fastdds_localhost.xml (large messages between processes)'),
        dds_profile_action(),
        OpaqueFunction(function=make),
    ])
