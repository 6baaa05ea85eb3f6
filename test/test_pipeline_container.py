"""Nodes sharing a process (pipeline/container.py, the launch files' ``compose:=true``): stereo_depth
and depth_fusion in one process, each with its own section of the parameter files and its own
remappings, fused depth out over DDS, exit 0 on SIGTERM. The launch description and the runner's
processes are compared in test_graph.py; `depthmarks run --multi-process` in test_pipeline_runner.py."""
import dataclasses
import signal

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from depthmarks_ros.pipeline import graph as g
from depthmarks_ros.pipeline.container import main, node_names
from depthmarks_ros.pipeline.runner import process_ros_args, write_params_file
from depthmarks_ros.testing.ros_harness import NodeProcess


def params_files(process, folder):
    """Each node's parameter file, keyed as the process needs it (what the runner writes)."""
    files = []
    for n in process.nodes:
        files.append(str(folder / f'{n.name}.yaml'))
        write_params_file(files[-1], n, process.params_key(n))
    return files


def _values(diagnostics, node):
    """The last /diagnostics values of ``node`` (its processing status) among the arrays received."""
    values = {}
    for array in diagnostics:
        for status in array.status:
            if status.name == f'{node}: processing':
                values = {v.key: v.value for v in status.values}
    return values


def test_node_names_before_ros_args_short_or_full():
    assert node_names(['stereo', 'depth_fusion', '--ros-args', '-r', '__ns:=/a']) == ['stereo_depth', 'depth_fusion']
    for bad in (['stereo', 'stereo_depth'], ['--ros-args'], ['stereo', 'fussion']):
        with pytest.raises(ValueError):
            node_names(bad)


@pytest.mark.parametrize('asked, given, used', [(None, None, None), ('ASYNCHRONOUS', None, 'ASYNCHRONOUS'),
                                                 ('ASYNCHRONOUS', 'SYNCHRONOUS', 'SYNCHRONOUS'),
                                                 # per topic: set up by its starter (AUTO and a profiles file)
                                                 ('CROSSING', None, None), ('CROSSING', 'AUTO', 'AUTO'),
                                                 # a typo: named, synchronous (not handed to rmw)
                                                 ('ASYNC', None, None)])
def test_container_publishes_as_a_node_process_unless_asked(monkeypatch, asked, given, used):
    """rmw_fastrtps's default (synchronous) as in a node process: asynchronous publishing measured
    later fused depth and more CPU on the quiet machine. DEPTHMARKS_CONTAINER_PUBLICATION_MODE asks
    for a mode in the container only (bench_pipeline's multi-async), set before rclpy starts; a
    mode the environment sets for rmw_fastrtps itself wins; a per-topic rule is never handed to rmw
    (pipeline/publication.py: the runner sets it up)."""
    import os
    from depthmarks_ros.pipeline import container
    from depthmarks_ros.ros import node_base
    for name, value in ((container.CONTAINER_MODE_ENV, asked), (container.PUBLICATION_MODE_ENV, given)):
        monkeypatch.setenv(name, value or '')   # restored after the test
        if value is None:
            monkeypatch.delenv(name)
    seen = []
    monkeypatch.setattr(node_base, 'run_nodes', lambda classes, args, exit_deadline_s=None: seen.append(
        ([c.__name__ for c in classes], os.environ.get(container.PUBLICATION_MODE_ENV), exit_deadline_s)) or 0)
    assert main(['stereo', 'fusion', '--ros-args']) == 0
    # a process of its own: its exit is bounded as a node executable's (ros/exit_deadline.py)
    assert seen == [(['StereoDepthNode', 'DepthFusionNode'], used, node_base.EXIT_DEADLINE_S)]


def test_a_node_that_cannot_be_imported_is_named_and_the_others_start(monkeypatch, capsys):
    """As depthmarks run does: depth_fusion's module failing to import (a missing dependency) does
    not stop sim_rig and stereo_depth of the same process (launch's respawn would restart all three
    for ever); none importable is exit 1."""
    import importlib
    from depthmarks_ros.pipeline import container, registry
    from depthmarks_ros.ros import node_base
    real_import = importlib.import_module
    broken = {registry.NODES['depth_fusion'].module}

    def failing_import(module, *args):   # a missing shared library raises a plain ImportError
        if module in broken:
            raise ImportError('libGL.so.1: cannot open shared object file')
        return real_import(module, *args)
    monkeypatch.setattr(registry.importlib, 'import_module', failing_import)
    started = []
    monkeypatch.setattr(node_base, 'run_nodes', lambda classes, args, **_: started.append(
        [c.__name__ for c in classes]) or 0)
    assert container.main(['sim_rig', 'stereo', 'fusion', '--ros-args']) == 0
    assert started == [['SimRigNode', 'StereoDepthNode']]
    assert 'cannot start: depth_fusion is not available (ImportError: libGL.so.1' in capsys.readouterr().err
    broken.update(registry.NODES[n].module for n in ('sim_rig', 'stereo_depth'))
    assert container.main(['sim_rig', 'stereo', 'fusion', '--ros-args']) == 1
    assert len(started) == 1


def test_container_refuses_a_bad_command_line_with_usage(capsys):
    assert main(['stereo', 'fussion', '--ros-args']) == 2
    assert "unknown node 'fussion'" in capsys.readouterr().err


@pytest.mark.dds
def test_stereo_and_fusion_in_one_process_with_their_own_parameters_and_remaps(probe, tmp_path):
    graph = g.plan(g.GraphConfig(face=False, body=False, start=('stereo_depth', 'depth_fusion')))
    (depth,) = graph.processes()
    assert depth.composed and depth.name == 'depth' and [n.name for n in depth.nodes] == ['stereo_depth', 'depth_fusion']
    stereo, fusion = depth.nodes
    # a parameter both declare, with a value of its own per node; a remap rule per node on the same
    # topic: the one targeted at stereo_depth must not move fusion's output
    stereo = dataclasses.replace(stereo, overrides=dict(stereo.overrides, diagnostics_period=0.5),
                                 remappings=stereo.remappings + (('fusion/depth', 'not_fusion'),))
    fusion = dataclasses.replace(fusion, overrides=dict(fusion.overrides, diagnostics_period=0.7, time_tolerance=0.25),
                                 remappings=fusion.remappings + (('fusion/depth', 'fused_here'),))
    depth = g.ProcessLaunch('depth', (stereo, fusion))
    files = params_files(depth, tmp_path)
    out = probe.subscribe(Image, 'fused_here')
    stereo_out = probe.subscribe(Image, 'stereo/depth')
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', 10)
    with NodeProcess('sim_rig', params={'rate': 5.0, 'lidar_rate': 5.0, 'width': 320, 'height': 240}) as sim, \
            NodeProcess('depth', module=g.CONTAINER_MODULE,
                        extra_args=[*depth.arguments, *process_ros_args(depth, files)]) as proc:
        assert probe.spin_until(lambda: len(out) >= 2 and len(stereo_out) >= 2, 60), proc.output + sim.output
        # stereo/confidence, which only depth_fusion in the process takes, handed over (ros/local_tap.py):
        # no DDS publish of it
        # (counted from the first hand-over on: frames before depth_fusion's reader matched go through DDS)
        assert probe.spin_until(lambda: int(_values(diagnostics, 'stereo_depth').get('hand_over_messages', 0)) >= 2, 10)
        first = _values(diagnostics, 'stereo_depth')
        assert probe.spin_until(lambda: int(_values(diagnostics, 'stereo_depth')['hand_over_messages'])
                                >= int(first['hand_over_messages']) + 2, 10)
        assert _values(diagnostics, 'stereo_depth')['hand_over_dds_messages'] == first['hand_over_dds_messages']
        got = {name: probe.param_service(name).get(['diagnostics_period']) for name in ('stereo_depth', 'depth_fusion')}
        assert got == {'stereo_depth': [0.5], 'depth_fusion': [0.7]}
        assert probe.param_service('stereo_depth').get(['disparity_range']) == [g.SIM_DISPARITY_RANGE]
        assert probe.param_service('depth_fusion').get(['use_stereo', 'time_tolerance']) == [True, 0.25]
        assert probe.node.get_publishers_info_by_topic('/fusion/depth') == []
        # SIGTERM (systemd, docker stop): exit 0 like SIGINT (which test_pipeline_runner's run sends)
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0, proc.output
    assert 'Traceback' not in proc.output and 'terminate called' not in proc.output, proc.output
    assert out[-1].encoding == '32FC1' and out[-1].width == 320


@pytest.mark.dds
def test_a_node_that_cannot_start_leaves_the_other_running(probe, tmp_path):
    """As in rclcpp's component container: depth_fusion refusing its parameters is named in one line,
    and stereo_depth in the same process goes on publishing (launch's respawn would otherwise restart
    both for ever)."""
    graph = g.plan(g.GraphConfig(face=False, body=False, start=('stereo_depth', 'depth_fusion')))
    (depth,) = graph.processes()
    stereo, fusion = depth.nodes
    fusion = dataclasses.replace(fusion, overrides=dict(fusion.overrides, diagnostics_period=-1.0))
    depth = g.ProcessLaunch('depth', (stereo, fusion))
    files = params_files(depth, tmp_path)
    stereo_out = probe.subscribe(Image, 'stereo/depth')
    with NodeProcess('sim_rig', params={'rate': 5.0, 'lidar_rate': 5.0, 'width': 320, 'height': 240}) as sim, \
            NodeProcess('depth', module=g.CONTAINER_MODULE,
                        extra_args=[*depth.arguments, *process_ros_args(depth, files)]) as proc:
        assert probe.spin_until(lambda: len(stereo_out) >= 2, 60), proc.output + sim.output
        assert proc.proc.poll() is None
        assert 'DepthFusionNode: cannot start:' in proc.output and 'diagnostics_period' in proc.output, proc.output
        assert '1 of 2 nodes of this process did not start' in proc.output
        assert 'depth_fusion' not in probe.node.get_node_names()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0, proc.output
    assert 'Traceback' not in proc.output, proc.output
