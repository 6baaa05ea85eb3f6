"""One parameter spec per node: the spec against the core objects, the CLI, config/*.yaml and the
docs; and over real DDS (the parameter service, what `ros2 param set` uses) that every run-time
parameter of every node is applied or refused with a reason."""
import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import os

import numpy as np
import pytest
import yaml

from depthmarks_ros.cli.main import SUBCOMMANDS
from depthmarks_ros.core.params import ParamSet
from depthmarks_ros.core.sim.rig import SimConfig
from depthmarks_ros.core.stereo.params import StereoParams
from depthmarks_ros.params import CONFIG_FILES, DOC_FILES, NODES, all_specs, spec_of, yaml_text
from depthmarks_ros.params.base import BASE_PARAMETERS, COMMON_PARAMETERS
from depthmarks_ros.params.sim_rig import SimRigParams
from depthmarks_ros.params.stereo_depth import StereoDepthParams

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))

# depthmarks sub-command -> the node whose spec gives its options
# (fuse-kitti is left out on purpose: its defaults are the KITTI preset config/kitti/depth_fusion.yaml,
# checked by test/test_fusion_preset.py)
CLI_NODES = {'stereo': 'stereo_depth', 'face': 'face_landmarks', 'body': 'body_pose', 'mono': 'mono_depth',
             'sim': 'sim_rig'}


# --------------------------------------------------------------------------------- the spec itself
def test_core_validation_is_the_node_spec_validation():
    for bad, reason in (({'wls_sigma': -1.0}, 'wls_sigma: -1.0 is below the minimum 0.0'),
                        ({'P1': 900.0}, 'P2 (800.0) must be greater than P1 (900.0)'),
                        ({'disparity_range': 100}, 'disparity_range: must be a multiple of 16'),
                        ({'correlation_window_size': 6}, 'correlation_window_size: must be odd'),
                        ({'stereo_algorithm': 2.0}, 'stereo_algorithm: 2.0 is a float, not a int')):
        for spec in (StereoParams, StereoDepthParams):   # the core object and the node's spec
            with pytest.raises(ValueError, match=reason.replace('(', r'\(').replace(')', r'\)')):
                spec(**bad).validate()
    assert StereoParams(stereo_algorithm=0, P1=900.0).problem() is None   # BM has no P1/P2 rule
    p = StereoDepthParams(P1=100.0, queue_size=9)
    assert StereoParams.take(p) == StereoParams(P1=100.0)
    assert SimConfig.take(SimRigParams(width=64, motion=True)) == SimConfig(width=64, motion=True)
    with pytest.raises(ValueError, match='lidar_vertical_fov_min'):
        SimConfig(lidar_vertical_fov_min=20.0).validate()


def test_every_node_spec_is_complete():
    for node, spec in all_specs().items():
        assert issubclass(spec, ParamSet)
        fields = spec.param_fields()
        assert set(BASE_PARAMETERS) <= set(fields), node
        for name, pf in fields.items():
            assert pf.info.description, (node, name)
            assert spec.check_value(name, pf.default) is None, (node, name, pf.default)
        assert spec().problem() is None, node


def test_each_node_declares_the_spec_the_registry_finds():
    # the registry finds node <n>'s spec by name (spec_of); the node names its own (PARAMS = ... in
    # nodes/<n>.py): a node declaring another spec than the CLI and the docs use fails here
    import ast
    for node in NODES:
        path = os.path.join(os.path.dirname(importlib.util.find_spec('depthmarks_ros').origin), 'nodes', f'{node}.py')
        declared = [n.value.id for n in ast.walk(ast.parse(open(path).read()))
                    if isinstance(n, ast.Assign) and isinstance(n.value, ast.Name)
                    and any(isinstance(t, ast.Name) and t.id == 'PARAMS' for t in n.targets)]
        assert declared == [spec_of(node).__name__], (node, declared)


def test_parameter_specs_load_without_ros():
    # the CLI reads the specs without ROS: importing them (and the graph they take the nodes from) must
    # not import rclpy
    import subprocess
    import sys
    code = ('import sys; from depthmarks_ros.params import all_specs; all_specs(); '
            'print("rclpy" in sys.modules)')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=root),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == 'False'


def test_descriptors_come_from_the_spec():
    from rcl_interfaces.msg import ParameterDescriptor
    from depthmarks_ros.ros.node_base import parameter_descriptor
    fields = StereoDepthParams.param_fields()
    d = parameter_descriptor(fields['disparity_range'])
    assert isinstance(d, ParameterDescriptor)
    assert (d.integer_range[0].from_value, d.integer_range[0].to_value) == (32, 4096)
    assert 'multiple of 16' in d.additional_constraints and not d.read_only
    d = parameter_descriptor(fields['P2'])
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 4000.0)
    d = parameter_descriptor(fields['calibration_file'])
    assert d.read_only and not d.integer_range and not d.floating_point_range
    d = parameter_descriptor(spec_of('face_landmarks').param_fields()['backend'])
    assert d.additional_constraints == 'one of: hybrid, mediapipe, dlib'


# --------------------------------------------------------------------------------- CLI, config, docs
def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    importlib.import_module(SUBCOMMANDS[command][0]).add_arguments(p)
    return p


def test_every_cli_default_is_the_node_spec_default():
    for command, node in CLI_NODES.items():
        fields = spec_of(node).param_fields()
        from_spec = 0
        for action in _parser(command)._actions:
            if action.dest in fields:   # hand-written or from the spec: the same default either way
                assert action.default == fields[action.dest].default, (command, action.dest)
                from_spec += getattr(action, 'spec_field', None) == action.dest
        assert from_spec >= 2, command
    face = _parser('face').parse_args(['x.png', '-o', 'out'])
    assert face.backend == 'hybrid' and face.uncertainty is True                    # issue 15 item 8, 18
    assert _parser('face').parse_args(['x.png', '-o', 'o', '--no-uncertainty']).uncertainty is False
    stereo = _parser('stereo').parse_args(['l', 'r', '-o', 'o', '--window', '7', '--wls', '--algorithm', '1'])
    assert (stereo.correlation_window_size, stereo.wls_filter, stereo.stereo_algorithm) == (7, True, 1)


def test_cli_refuses_what_the_node_refuses(tmp_path, capsys):
    from depthmarks_ros.cli.main import main
    import cv2
    img = np.zeros((48, 64), np.uint8)
    for name in ('l.png', 'r.png'):
        cv2.imwrite(str(tmp_path / name), img)
    rc = main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(tmp_path / 'o'),
               '--P1', '900'])
    assert rc == 2 and 'P2 (800.0) must be greater than P1 (900.0)' in capsys.readouterr().out
    rc = main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(tmp_path / 'o'),
               '--wls-sigma', '-1'])
    assert rc == 2 and 'wls_sigma: -1.0 is below the minimum' in capsys.readouterr().out


def test_config_files_hold_exactly_the_spec_defaults():
    for node in CONFIG_FILES:
        spec = spec_of(node)
        path = os.path.join(ROOT, 'config', CONFIG_FILES[node])
        with open(path) as fh:
            values = yaml.safe_load(fh)['/**']['ros__parameters']
        spec.from_mapping(values)    # known names, valid values, cross-rules hold
        expected = {k: v for k, v in spec.defaults().items() if k not in BASE_PARAMETERS}
        # every node-specific parameter, and none unknown (input/transport conventions may be left out)
        missing = set(expected) - set(values) - set(COMMON_PARAMETERS)
        assert not missing and set(values) <= set(expected), (path, missing, set(values) - set(expected))
        for name, value in values.items():
            assert value == expected[name], (f'{path}: {name} is {value!r}, the spec default is {expected[name]!r} '
                                             f'(change the default in depthmarks_ros/params/{node}.py or here)')
    for node in NODES:   # `depthmarks params NODE --yaml` writes a file that reads back as the defaults
        expected = {k: v for k, v in spec_of(node).defaults().items() if k not in BASE_PARAMETERS}
        assert yaml.safe_load(yaml_text(node))['/**']['ros__parameters'] == expected, node


def test_doc_tables_list_exactly_the_spec_parameters():
    from depthmarks_ros.cli.params_cmd import doc_section, section_pattern
    for node in NODES:
        path = os.path.join(ROOT, 'docs', DOC_FILES[node])
        with open(path) as fh:
            text = fh.read()
        found = section_pattern(node).findall(text)
        assert found == [doc_section(node)], (f'{path}: the parameter table differs from the spec; '
                                              'run `depthmarks params --write-docs`')


# --------------------------------------------------------------------------------- over DDS
@pytest.mark.dds
def test_refused_cross_parameter_change_leaves_service_p_and_matcher_in_agreement(probe):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    node = StereoDepthNode(parameter_overrides=[Parameter('disparity_range', value=64)])
    probe.add_node(node)
    client = probe.param_service('stereo_depth')

    def agree(p1, p2):
        assert client.get(['P1', 'P2']) == [p1, p2]
        assert (node.p.P1, node.p.P2) == (p1, p2)
        assert (node.chain.params.P1, node.chain.params.P2) == (p1, p2)   # the live matcher's

    (res,) = client.set(P2=50.0)                      # issue 17: P2 below P1
    assert not res.successful and 'P2 (50.0) must be greater than P1 (200.0)' in res.reason
    agree(200.0, 800.0)
    (res,) = client.set(P1=900.0)                     # issue 15: P1 above P2
    assert not res.successful and 'must be greater than P1 (900.0)' in res.reason
    agree(200.0, 800.0)
    atomic = client.set_atomically(P1=2000.0, P2=1000.0)
    assert not atomic.successful
    agree(200.0, 800.0)
    assert all(r.successful for r in client.set(P2=1600.0, P1=400.0))   # in an order that holds
    agree(400.0, 1600.0)
    (res,) = client.set(wls_sigma=-1.0)               # StereoParams(wls_sigma=-1) fails too
    assert not res.successful and 'wls_sigma' in res.reason
    with pytest.raises(ValueError, match='wls_sigma'):
        StereoParams(wls_sigma=-1.0).validate()
    assert client.get(['wls_sigma']) == [1.5] and node.chain.params.wls_sigma == 1.5
    # a bad combination from the parameter file / command line is a start-up error, with the reason
    with pytest.raises(ValueError, match=r'P2 \(800.0\) must be greater than P1 \(900.0\)'):
        StereoDepthNode(parameter_overrides=[Parameter('P1', value=900.0)])


def _other_value(node, name, pf):
    """A value for ``name`` other than the current one that the spec accepts (with the others); the
    current one where there is no other (a single choice)."""
    cur = getattr(node.p, name)
    info = pf.info
    if pf.kind is bool:
        candidates = [not cur]
    elif info.choices is not None:
        candidates = [c for c in info.choices if c != cur]
    elif pf.kind in (int, float):
        candidates = [cur + 1, cur + 16, cur * 2 if cur else 1, cur / 2, info.max, info.min]
        candidates = [pf.kind(c) for c in candidates if c is not None and pf.kind(c) != cur]
    else:
        candidates = [cur + 'x']
    for v in candidates:
        if dataclasses.replace(node.p, **{name: v}).problem() is None:
            return v
    assert info.choices is not None and len(info.choices) == 1, f'no other valid value for {name}'
    return cur


# how each node applies a run-time parameter: to a core object (the value read back from it) ...
APPLIED = {('stereo_depth', f): (lambda f: lambda n: getattr(n.chain.params, f))(f)
           for f in StereoParams.param_fields()}
APPLIED.update({
    ('stereo_depth', 'backend'): lambda n: n.chain.backend_name,
    ('depth_fusion', 'time_tolerance'): lambda n: n.inputs.sync.slop_ns / 1e9,
    ('mono_depth', 'min_reference_points'): lambda n: n.aligner.min_points,
    ('mono_depth', 'smoothing'): lambda n: n.aligner.alpha,
    # every input set's watchdog (mono_depth without a model has none)
    ('*', 'input_warn_after'): lambda n: ({s.health.after for s in n._input_sets} or {n.p.input_warn_after}).pop(),
})


def _twin_settings(node):
    """The settings one of the node's own image publishers encodes its compressed twin with now."""
    from depthmarks_ros.ros.image_publisher import ImagePublisher

    def find(v):
        if isinstance(v, ImagePublisher):
            return v
        for x in (v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()):
            if find(x) is not None:
                return find(x)
        return None
    for v in vars(node).values():
        if find(v) is not None:
            return find(v).settings
    raise AssertionError(f'{node.get_name()} has compressed_* parameters but no image publisher')


# the compressed twins' settings, as the node's image publishers read them for each encoded frame
from depthmarks_ros.ros.image_publisher import PARAMETER_OF  # noqa: E402
APPLIED.update({('*', name): (lambda a: lambda n: getattr(_twin_settings(n), a))(attr)
                for attr, name in PARAMETER_OF.items()})
# ... or read from self.p where it is used, for each frame / tick (the node's code reads it there)
def _read_via():
    from depthmarks_ros.core.fusion.pipeline import FusionSettings
    return {'depth_fusion': (FusionSettings.from_params,)}


READ_VIA = _read_via()   # node -> builders it passes self.p to (their `p.<name>` reads count as the node's)
READ_WHEN_USED = {
    ('*', 'log_throttle_period'), ('*', 'max_image_pixels'),   # node_base.reject, SyncedInputs._too_large
    ('sim_rig', 'publish_ground_truth'),
    ('depth_fusion', 'completion'), ('depth_fusion', 'max_depth'), ('depth_fusion', 'visibility_rows'),
    ('depth_fusion', 'visibility_cols'), ('depth_fusion', 'sync_warning_after'),
    ('mono_depth', 'reference_max_age'), ('mono_depth', 'max_depth'), ('face_landmarks', 'layout'),
    ('body_pose', 'layout'), ('body_pose', 'max_depth_offset'), ('body_pose', 'min_visibility'),
    ('video_source', 'fps'), ('video_source', 'realtime'), ('video_source', 'loop'),
    ('stereo_depth', 'points_layout'), ('depth_fusion', 'points_layout'),
    ('stereo_depth', 'points_period'), ('depth_fusion', 'points_period'),   # wanted_every
}


def _make_nodes(tmp_path):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes import (body_pose, depth_fusion, face_landmarks, mono_depth, sim_rig,
                                      stamp_merge, stereo_depth, video_source)
    P = Parameter
    return {
        # in a namespace of its own: its images would feed the other nodes here
        'sim_rig': sim_rig.SimRigNode(namespace='params_test', parameter_overrides=[
            P('width', value=64), P('height', value=48), P('scene', value='simple'), P('rate', value=2.0),
            P('lidar_rate', value=2.0)]),
        'video_source': video_source.VideoSourceNode(parameter_overrides=[
            P('source', value=str(tmp_path / 'none')), P('source_type', value='folder')]),
        'stereo_depth': stereo_depth.StereoDepthNode(),
        'depth_fusion': depth_fusion.DepthFusionNode(),
        'mono_depth': mono_depth.MonoDepthNode(),             # no model: idles, parameters still apply
        'face_landmarks': face_landmarks.FaceLandmarksNode(),
        'body_pose': body_pose.BodyPoseNode(),
        'stamp_merge': stamp_merge.StampMergeNode(),
    }
    assert set(nodes) == set(NODES)


@pytest.mark.dds
def test_every_runtime_parameter_of_every_node_is_applied_or_refused(probe, tmp_path):
    nodes = _make_nodes(tmp_path)
    for node in nodes.values():
        probe.add_node(node)
    for name, node in nodes.items():
        client = probe.param_service(node.get_fully_qualified_name())
        source = inspect.getsource(type(node))
        for builder in READ_VIA.get(name, ()):       # the node hands self.p to a builder that reads it
            assert f'{builder.__qualname__}(self.p' in source, (name, builder)
            source += inspect.getsource(builder)
        for pname, pf in spec_of(name).param_fields().items():
            if pf.info.read_only:
                (res,) = client.set(**{pname: getattr(node.p, pname)})
                assert not res.successful, (name, pname)          # read-only: refused, reason from rclpy
                assert res.reason, (name, pname)
                continue
            value = _other_value(node, pname, pf)
            (res,) = client.set(**{pname: value})
            assert res.successful, (name, pname, value, res.reason)
            assert client.get([pname]) == [value] and getattr(node.p, pname) == value, (name, pname)
            effect = APPLIED.get((name, pname)) or APPLIED.get(('*', pname))
            if effect is not None:
                applied = effect(node)
                assert applied == (pytest.approx(value) if pf.kind in (int, float) else value), (name, pname)
            else:
                assert (name, pname) in READ_WHEN_USED or ('*', pname) in READ_WHEN_USED, (
                    f'{name}.{pname} is changeable at run time: apply it in on_parameters_changed (and add it '
                    'to APPLIED here), read it from self.p where it is used (READ_WHEN_USED) or make it read_only')
                if pname not in COMMON_PARAMETERS:
                    assert f'p.{pname}' in source, (name, pname)
    # a value the node cannot apply in its state is refused with its reason, and nothing changes
    video = nodes['video_source']
    video.live = True                                   # as while streaming from a device
    (res,) = probe.param_service('video_source').set(fps=30.0)
    assert not res.successful and 'restart the node' in res.reason and video.p.fps != 30.0


@pytest.mark.dds
def test_fusion_time_tolerance_set_at_run_time_pairs_inputs_0_2_s_apart(probe):
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from depthmarks_ros.convert.camera_info import info_from_camera
    from depthmarks_ros.convert.cloud import array_to_cloud
    from depthmarks_ros.convert.image import numpy_to_image
    from depthmarks_ros.core.sim import SimRig
    from depthmarks_ros.nodes.depth_fusion import DepthFusionNode
    sim = SimRig(SimConfig(width=80, height=60, scene='simple', lidar_rings=8, lidar_horizontal_resolution=256))
    frame, sweep = sim.render(0.0), sim.render_lidar(0.0)
    node = DepthFusionNode()
    probe.add_node(node)
    client = probe.param_service('depth_fusion')
    pubs = [probe.publisher(Image, 'camera/image_raw'), probe.publisher(CameraInfo, 'camera/camera_info'),
            probe.publisher(PointCloud2, 'lidar/points')]
    depth = probe.subscribe(Image, 'fusion/depth', node.output_qos())
    for pub in pubs:
        assert probe.wait_for_subscribers(pub)

    def send_pairs(n):
        for _ in range(n):
            stamp = node.get_clock().now().to_msg()
            img = numpy_to_image(frame.left_rgb, 'rgb8')
            img.header.stamp, img.header.frame_id = stamp, sim.stereo.left.frame_id
            cloud = array_to_cloud(sweep)
            cloud.header.frame_id = sim.rig.frame_of('lidar')
            t = stamp.sec * 10**9 + stamp.nanosec - 200_000_000         # the sweep 0.2 s before the image
            cloud.header.stamp.sec, cloud.header.stamp.nanosec = divmod(t, 10**9)
            pubs[2].publish(cloud)
            probe.spin_for(0.05)
            pubs[0].publish(img)
            pubs[1].publish(info_from_camera(sim.stereo.left, img.header))
            if probe.spin_until(lambda: depth, 0.3):
                return True
        return False

    assert not send_pairs(4)                         # 0.06 s: 0.2 s apart never pair
    (res,) = client.set(time_tolerance=0.5)
    assert res.successful
    assert send_pairs(10), 'time_tolerance 0.5 s accepted but inputs 0.2 s apart still never fuse'
