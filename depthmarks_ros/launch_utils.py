"""The launch files' side of the node graph (needs `launch` and `launch_ros`: a real ROS 2 install).

Which nodes run, with which parameters, remappings, namespace and static transforms is decided by
:func:`depthmarks_ros.pipeline.graph.plan` (shared with `depthmarks run`); this module only turns
that plan into launch_ros actions: one ``Node`` action per process of the plan
(:meth:`~depthmarks_ros.pipeline.graph.Graph.processes`): a node alone gets its config/<node>.yaml plus
the overrides; the nodes that share a process (``compose:=true``: sim_rig, stereo_depth and depth_fusion in
``depthmarks_container``; ``compose:=people``: also face_landmarks and body_pose in one; ``compose:=all``: every node of the launch in one) get one parameter file each under their own name and node-targeted
remappings; respawn for sensor-facing nodes; one tf2_ros ``static_transform_publisher`` per rig
frame, RViz with a config that follows the graph, and the FastDDS profile.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Mapping

from depthmarks_ros.pipeline import graph as g

PACKAGE = g.PACKAGE


def share_dir() -> str:
    from ament_index_python.packages import get_package_share_directory
    return get_package_share_directory(PACKAGE)


def config_dir() -> str:
    """The installed package's config folder (share/depthmarks_ros/config)."""
    return os.path.join(share_dir(), 'config')


def config_path(name: str) -> str:
    return os.path.join(config_dir(), name)


def node_action(n: g.NodeLaunch):
    """A launch_ros Node for one planned node: parameter file, then the overrides."""
    from launch_ros.actions import Node
    params: List[object] = [config_path(n.params_file)]
    if n.overrides:
        params.append(dict(n.overrides))
    return Node(package=PACKAGE, executable=n.name, name=n.name, namespace=n.namespace,
                parameters=params, remappings=list(n.remappings), output='screen',
                respawn=n.respawn, respawn_delay=2.0)


def process_action(proc: g.ProcessLaunch, env: Mapping[str, str] = None):
    """A launch_ros Node action for one process of the plan: :func:`node_action` for a node alone;
    for nodes sharing a process, ``depthmarks_container NODE...`` with no ``name`` (launch_ros would
    pass ``__node:=``, which renames every node of the process), one generated parameter file per
    node (its config file and overrides under ``/**/<name>``; a dict would go under ``/**``, for every
    node of the process), the remappings targeted at their node and ``env`` (the per-topic
    publication mode, :func:`publication_env`) added to its environment."""
    if not proc.composed:
        return node_action(proc.nodes[0])
    from launch_ros.actions import Node
    params = [g.shared_process_params_file(n, proc.params_key(n), config_dir()) for n in proc.nodes]
    extra = {'additional_env': dict(env)} if env else {}
    return Node(package=PACKAGE, executable=proc.executable, exec_name=proc.name, namespace=proc.namespace,
                arguments=proc.arguments, parameters=params, remappings=proc.remappings, output='screen',
                respawn=proc.respawn, respawn_delay=2.0, **extra)


def publication_env(graph: g.Graph, proc: g.ProcessLaunch, values: Mapping[str, str]) -> Dict[str, str]:
    """What ``DEPTHMARKS_CONTAINER_PUBLICATION_MODE=OUTBOUND|CROSSING`` in the launching environment
    gives a shared process (pipeline/publication.py), on top of the package's DDS profile where
    ``use_dds_profile`` is true (dds_profile_action sets it for the processes, not for this one)."""
    from depthmarks_ros.pipeline import publication
    environ = dict(os.environ)
    if g.parse_bool('use_dds_profile', values.get('use_dds_profile', 'true')):
        environ[publication.PROFILES_ENV] = publication.loopback_profile(config_dir())
    return publication.process_env(graph, proc, environ, config_dir())


def node_name_for_frame(frame: str) -> str:
    return 'static_tf_' + re.sub(r'[^A-Za-z0-9_]', '_', frame)


def static_transform_action(t: g.StaticTransform, namespace: str = ''):
    """tf2_ros static_transform_publisher for one transform (it publishes the absolute /tf_static)."""
    from launch_ros.actions import Node
    x, y, z = (repr(v) for v in t.translation)
    qx, qy, qz, qw = (repr(v) for v in t.rotation)
    args = ['--x', x, '--y', y, '--z', z, '--qx', qx, '--qy', qy, '--qz', qz, '--qw', qw,
            '--frame-id', t.parent, '--child-frame-id', t.child]
    return Node(package='tf2_ros', executable='static_transform_publisher', name=node_name_for_frame(t.child),
                namespace=namespace, arguments=args, output='log')


def rviz_action(graph: g.Graph):
    from launch_ros.actions import Node
    return Node(package='rviz2', executable='rviz2', name='rviz2', namespace=graph.config.namespace,
                output='log', arguments=['-d', g.write_rviz_config(graph)])


def graph_actions(values: Mapping[str, str]) -> list:
    """Launch actions for launch argument ``values`` (strings, as LaunchConfiguration gives them)."""
    from launch.actions import LogInfo
    graph = g.plan(g.config_from_arguments({k: v for k, v in values.items() if k in g.ARGUMENT_NAMES}))
    actions: list = [LogInfo(msg=f'depthmarks_ros: {note}') for note in graph.notes]
    actions += [process_action(p, publication_env(graph, p, values)) for p in graph.processes()]
    actions += [static_transform_action(t, graph.config.namespace) for t in graph.static_transforms]
    if g.parse_bool('rviz', values.get('rviz', 'false')):
        actions.append(rviz_action(graph))
    return actions


def declare_arguments(names=None) -> list:
    """DeclareLaunchArgument for each graph argument (all, or ``names``), with its declared choices
    (launch refuses any other value, e.g. ``source:=vidoe``)."""
    from launch.actions import DeclareLaunchArgument
    return [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description,
                                  choices=list(a.choices) if a.choices else None)
            for a in g.ARGUMENTS if names is None or a.name in names]


def dds_profile_action(condition_arg: str = 'use_dds_profile'):
    """Set Fast DDS's profiles file variable (publication.PROFILES_ENV) to the package's loopback profile
    when the argument is true."""
    from launch.actions import SetEnvironmentVariable
    from depthmarks_ros.pipeline.publication import PROFILES_ENV, loopback_profile
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    return SetEnvironmentVariable(PROFILES_ENV, loopback_profile(config_dir()),
                                  condition=IfCondition(LaunchConfiguration(condition_arg)))


def full_pipeline_description():
    """The whole graph: every argument of :data:`depthmarks_ros.pipeline.graph.ARGUMENTS`."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction
    from launch.substitutions import LaunchConfiguration

    def make(context):
        return graph_actions({a.name: LaunchConfiguration(a.name).perform(context) for a in g.ARGUMENTS})
    return LaunchDescription(declare_arguments() + [dds_profile_action(), OpaqueFunction(function=make)])


SINGLE_NODE_ARGUMENTS = ('namespace', 'use_sim_time', 'use_dds_profile')


def single_node_overrides(values: Mapping[str, str]) -> Dict[str, object]:
    return {'use_sim_time': True} if g.parse_bool('use_sim_time', values.get('use_sim_time', 'false')) else {}


def single_node_description(executable: str):
    """One node with its parameter file: arguments namespace, use_sim_time, use_dds_profile."""
    from launch import LaunchDescription
    from launch.actions import OpaqueFunction
    from launch.substitutions import LaunchConfiguration
    spec = g.NODES[executable]

    def make(context):
        values = {n: LaunchConfiguration(n).perform(context) for n in SINGLE_NODE_ARGUMENTS}
        n = g.NodeLaunch(executable, g.normalise_namespace(values['namespace']), spec.params_file,
                         single_node_overrides(values), (), spec.sensor_facing)
        return [node_action(n)]
    return LaunchDescription(declare_arguments(SINGLE_NODE_ARGUMENTS) + [dds_profile_action(),
                                                                         OpaqueFunction(function=make)])
