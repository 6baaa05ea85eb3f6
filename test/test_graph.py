"""The one node graph (depthmarks_ros/pipeline/graph.py): the launch file and `depthmarks run` start the
same nodes with the same parameters, namespace and remappings for every argument combination;
arguments refuse typos; every shipped rig and source gives one connected TF tree whose root is the
RViz fixed frame; two rigs side by side share no node, topic or frame.

The launch file runs against a minimal stand-in of the `launch` / `launch_ros` API (they do not install
here) whose classes take the real ones' arguments (a call the real launch would refuse raises TypeError): it
records the Node actions and checks argument choices the way DeclareLaunchArgument does.
The real launch system was checked with scripts/check_launch_locally.py (docs/pipeline.md).
"""
import itertools
import os
import runpy
import sys
import types

import pytest
import yaml

from depthmarks_ros.pipeline import graph as g
from depthmarks_ros.pipeline.runner import RunConfig, plan_graph, process_ros_args, write_params_file

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))


# ------------------------------------------------------------------ a stand-in of launch / launch_ros
# Each stand-in takes the arguments the real class takes (ros2/launch and ros2/launch_ros, the same in
# humble, jazzy and rolling), so a call the real launch would refuse (a positional argument where it
# wants a keyword, an unknown keyword) raises TypeError here too; they record what they were given.
class _Action:
    """launch.Action(*, condition=None): what a subclass passes on (``kw``) may only be ``condition``;
    records the subclass's ``args`` and keywords (``kwargs``, with ``condition`` where given)."""

    def __init__(self, args=(), kwargs=None, /, *, condition=None):
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        if condition is not None:
            self.kwargs['condition'] = condition


class _Declare(_Action):
    """launch.actions.DeclareLaunchArgument(name, *, default_value, description, choices, **kwargs)."""

    def __init__(self, name, *, default_value=None, description=None, choices=None, **kw):
        super().__init__((name,), dict(default_value=default_value, description=description, choices=choices),
                         **kw)
        self.name, self.default, self.choices = name, default_value, choices


class _SetEnvironmentVariable(_Action):
    """launch.actions.SetEnvironmentVariable(name, value, **kwargs)."""

    def __init__(self, name, value, **kw):
        super().__init__((name, value), **kw)


class _LogInfo(_Action):
    """launch.actions.LogInfo(*, msg, **kwargs)."""

    def __init__(self, *, msg, **kw):
        super().__init__((), dict(msg=msg), **kw)


class _OpaqueFunction(_Action):
    """launch.actions.OpaqueFunction(*, function, args=None, kwargs=None, **kwargs)."""

    def __init__(self, *, function, args=None, kwargs=None, **kw):
        if not callable(function):
            raise TypeError(f'OpaqueFunction expected a callable for function, got {type(function)}')
        super().__init__((), dict(function=function, args=args, kwargs=kwargs), **kw)


# launch_ros.actions.Node's own keywords, then ExecuteProcess's and ExecuteLocal's (humble's set, which
# later distributions keep), which Node passes on.
_NODE_KEYWORDS = {'package', 'name', 'namespace', 'exec_name', 'parameters', 'remappings', 'ros_arguments',
                  'arguments', 'prefix', 'cwd', 'env', 'additional_env', 'shell', 'sigterm_timeout',
                  'sigkill_timeout', 'emulate_tty', 'output', 'output_format', 'cached_output', 'log_cmd',
                  'on_exit', 'respawn', 'respawn_delay'}


class _Node(_Action):
    """launch_ros.actions.Node(*, executable, ...): keyword-only."""

    def __init__(self, *, executable, **kw):
        unknown = set(kw) - _NODE_KEYWORDS - {'condition'}
        if unknown:
            raise TypeError(f'Node() got unexpected keyword arguments {sorted(unknown)}')
        condition = kw.pop('condition', None)
        super().__init__((), dict(kw, executable=executable), condition=condition)


class _IfCondition:
    """launch.conditions.IfCondition(predicate_expression)."""

    def __init__(self, predicate_expression):
        self.args = (predicate_expression,)


class _LaunchConfiguration:
    """launch.substitutions.LaunchConfiguration(variable_name, *, default=None)."""

    def __init__(self, variable_name, *, default=None):
        self.name, self.default = variable_name, default

    def perform(self, context):
        return context[self.name]


def _launch_description(initial_entities=None, *, deprecated_reason=None):
    """launch.LaunchDescription(initial_entities=None, *, deprecated_reason=None): its entities."""
    return list(initial_entities or [])


class FakeLaunch:
    """Runs a launch file's generate_launch_description() with given argument values; the installed
    share (launch_utils.share_dir) is ``share``, by default this checkout."""

    def __init__(self, monkeypatch, share=ROOT):
        mods = {n: types.ModuleType(n) for n in ('launch', 'launch.actions', 'launch.conditions',
                                                 'launch.substitutions', 'launch_ros', 'launch_ros.actions')}
        mods['launch'].LaunchDescription = _launch_description
        mods['launch.actions'].DeclareLaunchArgument = _Declare
        mods['launch.actions'].OpaqueFunction = _OpaqueFunction
        mods['launch.actions'].SetEnvironmentVariable = _SetEnvironmentVariable
        mods['launch.actions'].LogInfo = _LogInfo
        mods['launch.conditions'].IfCondition = _IfCondition
        mods['launch.substitutions'].LaunchConfiguration = _LaunchConfiguration
        mods['launch_ros.actions'].Node = _Node
        for name, mod in mods.items():
            monkeypatch.setitem(sys.modules, name, mod)
        import depthmarks_ros.launch_utils as lu
        monkeypatch.setattr(lu, 'share_dir', lambda: str(share))
        monkeypatch.setattr(g, 'write_rviz_config', lambda graph, out_dir=None: '/tmp/depthmarks.rviz')

    def entities(self, launch_file):
        """What the launch file's generate_launch_description() returns."""
        return runpy.run_path(os.path.join(ROOT, 'launch', launch_file))['generate_launch_description']()

    def run(self, launch_file, values):
        entities = self.entities(launch_file)
        declared = {e.name: e for e in entities if isinstance(e, _Declare)}
        unknown = set(values) - set(declared)
        assert not unknown, f'not declared: {unknown}'
        context = {}
        for name, arg in declared.items():
            value = values.get(name, arg.default)
            if arg.choices and value not in arg.choices:   # what launch's DeclareLaunchArgument does
                raise ValueError(f'argument {name}:={value} not in {arg.choices}')
            context[name] = value
        actions = []
        for e in entities:
            if isinstance(e, _OpaqueFunction):
                actions += e.kwargs['function'](context)
        return actions


def _process_nodes(executable, arguments, params, remaps, ns, respawn, process):
    """{fully qualified name: (parameters, remappings, respawn, process)} of the nodes one process
    runs, each node's parameters and remappings taken as rcl takes them from the process's
    arguments: a file's ``/**`` section and a dict (launch_ros writes it under ``/**``) for every
    node, a ``/**/<name>`` section for that node only; ``name:from:=to`` rules for that node only."""
    names = list(arguments) if executable == g.CONTAINER else [executable]
    assert executable == g.CONTAINER or not arguments
    out = {}
    for name in names:
        merged = {}
        for p in params:
            sections = g.read_yaml(p) if isinstance(p, str) else {'/**': {'ros__parameters': p}}
            assert set(sections) <= {'/**'} | {f'/**/{n}' for n in names}, sections.keys()
            for key in ('/**', f'/**/{name}'):
                merged.update((sections.get(key) or {}).get('ros__parameters', {}))
        own = []
        for src, dst in remaps:
            target, _, topic = src.rpartition(':')
            assert not target or target in names
            if target in ('', name):
                own.append((topic, dst))
        out[f'{ns}/{name}'] = (merged, own, respawn, process)
    return out


def _launch_nodes(actions):
    """{fully qualified name: (parameters, remappings, respawn, process)} of the package's Node actions."""
    out = {}
    for a in actions:
        kw = a.kwargs
        if not isinstance(a, _Node) or kw['package'] != g.PACKAGE:
            continue
        if kw['executable'] == g.CONTAINER:
            # a name would become a process-wide __node:= rule, renaming every node in the process
            assert 'name' not in kw and kw['exec_name'] and all(isinstance(p, str) for p in kw['parameters'])
            process = kw['exec_name']
        else:
            assert kw['executable'] == kw['name']
            process = kw['name']
        out.update(_process_nodes(kw['executable'], kw.get('arguments') or [], kw['parameters'],
                                  list(kw['remappings']), kw['namespace'], kw['respawn'], process))
    return out


def _runner_nodes(cfg, tmp_path):
    """The same, from the processes `depthmarks run --multi-process` starts (their command lines)."""
    out = {}
    for proc in plan_graph(cfg).processes():
        pfiles = []
        for n in proc.nodes:
            pfile = str(tmp_path / f'{n.name}.yaml')
            params = write_params_file(pfile, n, proc.params_key(n))
            with open(pfile) as f:
                assert yaml.load(f, Loader=yaml.CSafeLoader)[proc.params_key(n)]['ros__parameters'] == params
            pfiles.append(pfile)
        args = process_ros_args(proc, pfiles)
        ns = next((a.split(':=', 1)[1] for a in args if a.startswith('__ns:=')), '')
        remaps = [tuple(a.split(':=', 1)) for a in args if ':=' in a and not a.startswith('__ns:=')]
        executable = g.CONTAINER if proc.module == g.CONTAINER_MODULE else proc.module.rsplit('.', 1)[1]
        out.update(_process_nodes(executable, proc.arguments, pfiles, remaps, ns, proc.respawn, proc.name))
    return out


SOURCES = {   # launch arguments -> the same input for `depthmarks run`
    'sim': ({'source': 'sim'}, {'source': 'sim'}),
    'video': ({'source': 'video', 'video': 'clip.mp4'}, {'source': 'video', 'video': 'clip.mp4'}),
    'topics': ({'use_sim': 'false'}, {'source': 'bag', 'bag': 'rec.mcap'}),
}
FLAGS = ('stereo', 'fusion', 'mono', 'face', 'body')


def _combinations():
    for i, (source, flags, (ns, prefix), sim_time) in enumerate(itertools.product(
            SOURCES, itertools.product((True, False), repeat=len(FLAGS)), (('', ''), ('rig1', 'rig1/')),
            (False, True))):
        # compose:= true, false (every node a process of its own), all (every node in one), people (face and body
        # in a second one): a quarter of the cases each, rotated over the flags so that each meets every namespace
        yield source, dict(zip(FLAGS, flags)), ns, prefix, sim_time, None, g.COMPOSE_CHOICES[(i + i // 4) % 4]
    for start in ('sim,stereo,tf', 'fusion,face,body', 'stereo', 'stereo,fusion', 'face', 'face,body'):
        for compose in g.COMPOSE_CHOICES:
            yield 'sim', dict.fromkeys(FLAGS, True), '', '', False, start, compose


def test_launch_file_and_runner_start_the_same_nodes_for_every_argument_combination(monkeypatch, tmp_path):
    fake = FakeLaunch(monkeypatch)
    compared = 0
    composed = sim_composed = all_composed = people_composed = 0
    depth, people = ('sim_rig', 'stereo_depth', 'depth_fusion'), ('face_landmarks', 'body_pose')
    for source, flags, ns, prefix, sim_time, start, compose in _combinations():
        launch_values, run_values = (dict(v) for v in SOURCES[source])
        launch_values.update({k: str(v).lower() for k, v in flags.items()})
        launch_values.update(namespace=ns, frame_prefix=prefix, use_sim_time=str(sim_time).lower(),
                             mono_model='/models/dpt' if flags['mono'] else '', nodes=start or 'all',
                             compose=compose)
        nodes = [k for k, v in flags.items() if v]
        # record_rate 0 (every message): the runner sets points_period 0.0 (every frame, the config's
        # value too, so launch and runner agree); with a record rate it builds the clouds at that rate only (test_pipeline_runner.test_plan_and_params_files)
        cfg = RunConfig(nodes=nodes, mono_model='/models/dpt' if flags['mono'] else '', namespace=ns,
                        frame_prefix=prefix, use_sim_time=sim_time, start=start.split(',') if start else None,
                        record_rate=0, compose=compose, **run_values)
        launched = _launch_nodes(fake.run('full_pipeline.launch.py', launch_values))
        run = _runner_nodes(cfg, tmp_path)
        assert launched == run, (source, flags, ns, prefix, sim_time, start, compose)
        # compose:=true: the depth group's nodes that start (sim_rig, stereo_depth, depth_fusion) share the
        # depth process exactly when two or more of them start; compose:=people: that, and face_landmarks and
        # body_pose share the people process where both start; compose:=all: every node that starts shares
        # the one pipeline process where two or more start; every other node, and every node with
        # compose:=false, has a process of its own
        groups = {'true': {'depth': depth}, 'people': {'depth': depth, 'people': people},
                  'all': {g.ALL_PROCESS: [name.rsplit('/', 1)[1] for name in run]}, 'false': {}}[compose]
        shared = {}
        for group, names in groups.items():
            members = {f'{ns and "/" + ns}/{n}' for n in names} & set(run)
            shared[group] = {name for name, v in run.items() if v[3] == group}
            assert shared[group] == (members if len(members) > 1 else set()), (source, flags, start, compose, group)
        alone = set(run) - set().union(*shared.values())
        assert all(run[name][3] == name.rsplit('/', 1)[1] for name in alone)
        composed += compose == 'true' and bool(shared['depth'])
        sim_composed += compose == 'true' and f'{ns and "/" + ns}/sim_rig' in shared['depth']
        all_composed += compose == 'all' and bool(shared[g.ALL_PROCESS])
        people_composed += compose == 'people' and bool(shared['people'])
        compared += 1
    assert compared > 300 and composed > 20 and sim_composed > 20 and all_composed > 75 and people_composed > 15


def test_every_launch_file_sets_the_loopback_profile_of_the_installed_share_if_use_dds_profile(monkeypatch,
                                                                                                tmp_path):
    """launch_utils.dds_profile_action in each launch file: Fast DDS's profiles variable set to the
    package's loopback profile in the installed share (a file that exists there: a share elsewhere than
    the source tree, so the source tree's profile would fail), only if the declared argument
    use_dds_profile (default true) is true."""
    import shutil
    from depthmarks_ros.pipeline import publication as pb
    share = tmp_path / 'share'
    (share / 'config').mkdir(parents=True)
    shutil.copy(pb.loopback_profile(), share / 'config')
    fake = FakeLaunch(monkeypatch, share)
    files = sorted(f for f in os.listdir(os.path.join(ROOT, 'launch')) if f.endswith('.launch.py'))
    assert 'full_pipeline.launch.py' in files and 'stereo_depth.launch.py' in files
    for launch_file in files:
        entities = fake.entities(launch_file)
        declared = {e.name: e.default for e in entities if isinstance(e, _Declare)}
        (action,) = [e for e in entities if isinstance(e, _SetEnvironmentVariable)]
        name, path = action.args
        assert name == pb.PROFILES_ENV and path == pb.loopback_profile(str(share / 'config')), launch_file
        assert os.path.isfile(path)
        condition = action.kwargs['condition']
        assert isinstance(condition, _IfCondition) and condition.args[0].name == 'use_dds_profile'
        assert declared['use_dds_profile'] == 'true', launch_file
    import depthmarks_ros.launch_utils as lu
    assert lu.dds_profile_action('other_arg').kwargs['condition'].args[0].name == 'other_arg'


def test_launch_file_gives_the_depth_process_the_per_topic_publication_mode_asked(monkeypatch):
    """DEPTHMARKS_CONTAINER_PUBLICATION_MODE=CROSSING in the launching environment: the container's
    Node action carries AUTO and a profiles file (the package's DDS profile plus the topics the graph
    picks, pipeline/publication.py, resolved in the namespace); a process of one node gets nothing;
    unset, nothing changes."""
    from depthmarks_ros.pipeline import publication as pb
    fake = FakeLaunch(monkeypatch)
    monkeypatch.setenv(pb.CONTAINER_MODE_ENV, 'CROSSING')
    monkeypatch.delenv(pb.PUBLICATION_MODE_ENV, raising=False)

    def envs():
        return {a.kwargs.get('exec_name') or a.kwargs['name']: a.kwargs.get('additional_env')
                for a in fake.run('full_pipeline.launch.py', {'namespace': 'rig1'})
                if isinstance(a, _Node) and a.kwargs['package'] == g.PACKAGE}
    asked = envs()
    env = asked.pop('depth')
    assert env[pb.PUBLICATION_MODE_ENV] == 'AUTO' and not any(asked.values())
    with open(env[pb.PROFILES_ENV]) as f:
        text = f.read()
    assert 'profile_name="/rig1/camera/image_raw"' in text and 'depthmarks_shm' in text
    assert 'profile_name="/rig1/stereo/left/image_raw"' not in text
    monkeypatch.delenv(pb.CONTAINER_MODE_ENV)
    assert not any(envs().values())


def test_the_camera_stand_in_shares_the_depth_process_only_where_it_runs_and_compose_is_on():
    """The launch-file layout (Graph.processes, for ros2 launch and depthmarks run --multi-process):
    the simulated rig (the camera driver's stand-in) is composed with stereo_depth and depth_fusion,
    as image_pipeline's launch files load stereo_image_proc into a camera driver's container when given one
    (container:=); real sensors (source topics)
    leave the two; compose false gives every node a process of its own."""
    def layout(**kw):
        return [(p.name, [n.name for n in p.nodes], p.executable) for p in g.plan(g.GraphConfig(**kw)).processes()]
    assert layout() == [('depth', ['sim_rig', 'stereo_depth', 'depth_fusion'], g.CONTAINER),
                        ('face_landmarks', ['face_landmarks'], 'face_landmarks'),
                        ('body_pose', ['body_pose'], 'body_pose')]
    assert layout(source='topics')[0] == ('depth', ['stereo_depth', 'depth_fusion'], g.CONTAINER)
    assert layout(start=g.parse_nodes('sim,stereo,tf')) == [('depth', ['sim_rig', 'stereo_depth'], g.CONTAINER)]
    assert layout(start=g.parse_nodes('fusion,face,body'))[0] == ('depth_fusion', ['depth_fusion'], 'depth_fusion')
    assert [p[0] for p in layout(compose=False)] == ['sim_rig', 'stereo_depth', 'depth_fusion', 'face_landmarks',
                                                     'body_pose']
    video = layout(source='video', video='clip.mp4')
    assert all(len(nodes) == 1 for _, nodes, _ in video) and video[0][0] == 'video_source'


def test_compose_all_puts_every_node_this_host_starts_in_one_container_process():
    """compose:=all (one component container for the whole pipeline; depthmarks run's recorder stays in the
    runner, as ros2 bag record would be): every planned node of this host in the one pipeline process, each
    with its own parameter section and node-targeted remaps; a lone node keeps its own executable."""
    def layout(**kw):
        return [(p.name, [n.name for n in p.nodes], p.executable) for p in g.plan(g.GraphConfig(**kw)).processes()]
    everything = ['sim_rig', 'stereo_depth', 'depth_fusion', 'face_landmarks', 'body_pose']
    assert layout(compose='all') == [(g.ALL_PROCESS, everything, g.CONTAINER)]
    assert layout(compose='all', source='video', video='clip.mp4') == [
        (g.ALL_PROCESS, ['video_source', 'face_landmarks', 'body_pose'], g.CONTAINER)]
    assert layout(compose='all', start=g.parse_nodes('fusion,face,body')) == [
        (g.ALL_PROCESS, ['depth_fusion', 'face_landmarks', 'body_pose'], g.CONTAINER)]
    assert layout(compose='all', start=g.parse_nodes('stereo')) == [('stereo_depth', ['stereo_depth'], 'stereo_depth')]
    (proc,) = g.plan(g.config_from_arguments({'compose': 'all', 'camera_ns': '/cam'})).processes()
    assert proc.arguments == everything and proc.params_key(proc.nodes[3]) == '/**/face_landmarks'
    assert ('face_landmarks:camera/image_raw', '/cam/image_raw') in proc.remappings
    # the bool compose of before still reads as true / false
    assert g.GraphConfig(compose=False).compose == 'false' and g.GraphConfig(compose=True).compose == 'true'


def test_compose_people_puts_face_and_body_in_a_second_container_process_beside_the_depth_one():
    """compose:=people: the depth process as with true, and face_landmarks and body_pose (the two readers
    of the camera image outside it) share the people process, each with its own parameter section and
    node-targeted remaps; where only one of the two starts it keeps its own executable."""
    def layout(**kw):
        return [(p.name, [n.name for n in p.nodes], p.executable) for p in g.plan(g.GraphConfig(**kw)).processes()]
    assert layout(compose='people') == [('depth', ['sim_rig', 'stereo_depth', 'depth_fusion'], g.CONTAINER),
                                        ('people', ['face_landmarks', 'body_pose'], g.CONTAINER)]
    assert layout(compose='people', source='video', video='clip.mp4') == [
        ('video_source', ['video_source'], 'video_source'), ('people', ['face_landmarks', 'body_pose'], g.CONTAINER)]
    assert layout(compose='people', start=g.parse_nodes('fusion,face,body')) == [
        ('depth_fusion', ['depth_fusion'], 'depth_fusion'), ('people', ['face_landmarks', 'body_pose'], g.CONTAINER)]
    assert layout(compose='people', body=False)[1:] == [('face_landmarks', ['face_landmarks'], 'face_landmarks')]
    assert ('mono_depth', ['mono_depth'], 'mono_depth') in layout(compose='people', mono=True, mono_model='/m')
    depth_proc, proc = g.plan(g.config_from_arguments({'compose': 'people', 'camera_ns': '/cam'})).processes()
    assert proc.arguments == ['face_landmarks', 'body_pose'] and proc.params_key(proc.nodes[1]) == '/**/body_pose'
    assert ('body_pose:camera/image_raw', '/cam/image_raw') in proc.remappings
    assert proc.respawn == any(n.respawn for n in proc.nodes)


def test_the_graph_wires_depth_to_face_and_body_and_splits_across_hosts():
    full = g.plan(g.GraphConfig())
    by_name = {n.name: n for n in full.nodes}
    assert list(by_name) == ['sim_rig', 'stereo_depth', 'depth_fusion', 'face_landmarks', 'body_pose']
    assert by_name['face_landmarks'].overrides['depth_topic'] == 'fusion/depth'
    assert by_name['depth_fusion'].overrides['use_stereo'] is True
    no_fusion = {n.name: n for n in g.plan(g.GraphConfig(fusion=False)).nodes}
    assert no_fusion['body_pose'].overrides['depth_topic'] == 'stereo/depth'   # the best depth there is
    robot = g.plan(g.GraphConfig(start=g.parse_nodes('sim,stereo,tf')))
    offboard = g.plan(g.GraphConfig(start=g.parse_nodes('fusion,face,body')))
    assert [n.name for n in robot.nodes] == ['sim_rig', 'stereo_depth'] and robot.static_transforms
    assert [n.name for n in offboard.nodes] == ['depth_fusion', 'face_landmarks', 'body_pose']
    assert not offboard.static_transforms                      # published once, by the robot's share
    assert {n.name: n for n in offboard.nodes}['depth_fusion'] == by_name['depth_fusion']   # same wiring


@pytest.mark.parametrize('values, message', [
    ({'source': 'vidoe'}, "source:='vidoe' is not one of sim, video, topics"),
    ({'stereo': 'ture'}, 'not a boolean'),
    ({'device': 'gpu'}, 'is not one of cpu, cuda'),
    ({'nodes': 'stereo,fussion'}, 'unknown fussion'),
    ({'sourse': 'sim'}, 'unknown argument'),
    ({'compose': 'one'}, "compose:='one' is not one of true, false, all, people"),
])
def test_bad_arguments_are_refused_with_the_choices(values, message):
    with pytest.raises(ValueError, match=message):
        g.config_from_arguments(values)


def test_launch_file_declares_the_choices_so_launch_refuses_a_typo(monkeypatch):
    fake = FakeLaunch(monkeypatch)
    with pytest.raises(ValueError, match='source:=vidoe'):
        fake.run('full_pipeline.launch.py', {'source': 'vidoe'})
    with pytest.raises(ValueError, match='use_sim_time:=yes'):
        fake.run('stereo_depth.launch.py', {'use_sim_time': 'yes'})
    (single,) = _launch_nodes(fake.run('stereo_depth.launch.py', {'namespace': 'front', 'use_sim_time': 'true'})).items()
    assert single[0] == '/front/stereo_depth' and single[1][0]['use_sim_time'] is True


def _tree_root(transforms, frame):
    parents = {t.child: t.parent for t in transforms}
    seen = set()
    while frame in parents:
        assert frame not in seen, f'TF cycle at {frame}'
        seen.add(frame)
        frame = parents[frame]
    return frame


def _published_frames(graph):
    """The frames the graph's source publishes in (sim_rig: its rig file; video_source: its parameters)."""
    from depthmarks_ros.core.calibration import load_rig
    frames = set()
    for n in graph.nodes:
        if n.name in ('sim_rig', 'depth_fusion'):
            frames |= {s.frame_id for s in load_rig(n.overrides['rig_file']).sensors.values()}
        if n.name == 'video_source':
            frames |= {n.overrides['frame_id'], n.overrides['right_frame_id']}
    return frames


@pytest.mark.parametrize('source, calibration', [('sim', ''), ('topics', ''), ('video', ''),
                                                 ('topics', 'config/kitti'), ('sim', 'config/sim_rig')])
@pytest.mark.parametrize('prefix', ['', 'rig1/'])
def test_every_rig_and_source_gives_one_connected_tree_rooted_at_the_fixed_frame(source, calibration, prefix):
    graph = g.plan(g.GraphConfig(source=source, calibration_dir=os.path.join(ROOT, calibration) if calibration else '',
                                 frame_prefix=prefix, video='0'))
    assert all(t.parent != t.child for t in graph.static_transforms)      # tf2 refuses velodyne -> velodyne
    children = [t.child for t in graph.static_transforms]
    assert len(children) == len(set(children))
    frames = _published_frames(graph) | set(children)
    assert frames, 'the graph publishes in no frame'
    for frame in frames:
        assert frame.startswith(prefix)
        assert _tree_root(graph.static_transforms, frame) == graph.fixed_frame, frame
    rviz = yaml.safe_load(g.rviz_config_text(graph))
    assert rviz['Visualization Manager']['Global Options']['Fixed Frame'] == graph.fixed_frame
    if calibration == 'config/kitti':
        assert graph.fixed_frame == prefix + 'velodyne'


def test_rviz_follows_namespace_and_remapped_topics():
    graph = g.plan(g.config_from_arguments({'namespace': 'front', 'camera_ns': '/zed/left', 'lidar_topic': '/velodyne_points'}))
    rviz = yaml.safe_load(g.rviz_config_text(graph))
    topics = {d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays'] if 'Topic' in d}
    assert {'/zed/left/image_raw', '/velodyne_points', '/front/fusion/depth', '/front/face/markers'} <= topics
    outputs = {graph.resolve_topic(t) for n in g.NODES.values() for t, _ in n.outputs}
    assert topics <= outputs | {'/zed/left/image_raw', '/velodyne_points'}


def test_rviz_resolves_a_node_private_remap_target_for_the_node_that_reads_it():
    """source:=topics starts no lidar publisher: a ``~/points`` target resolves for depth_fusion, its reader."""
    graph = g.plan(g.config_from_arguments({'namespace': 'front', 'source': 'topics', 'lidar_topic': '~/points'}))
    rviz = yaml.safe_load(g.rviz_config_text(graph))
    topics = {d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays'] if 'Topic' in d}
    assert '/front/depth_fusion/points' in topics


def test_a_substitution_in_a_remapped_launch_argument_is_refused_by_name():
    with pytest.raises(ValueError, match=r'lidar_topic:=.*refuses substitutions'):
        g.config_from_arguments({'lidar_topic': '{ns}/points'})


def test_two_rigs_share_no_node_topic_or_frame():
    rigs = [g.plan(g.config_from_arguments({'namespace': ns, 'frame_prefix': f'{ns}/'})) for ns in ('rig1', 'rig2')]
    names = [{n.fully_qualified_name for n in r.nodes} for r in rigs]
    topics = [{r.resolve_topic(t) for n in r.nodes for t, _ in n.spec.outputs} for r in rigs]
    frames = [set(r.frames()) | _published_frames(r) for r in rigs]
    for per_rig in (names, topics, frames):
        assert per_rig[0] and per_rig[1] and not per_rig[0] & per_rig[1]
    assert all(t.startswith('/rig1/') for t in topics[0]) and all(f.startswith('rig1/') for f in frames[0])


def test_the_sim_rig_stereo_search_range_holds_every_disparity_of_its_scene():
    import numpy as np
    from depthmarks_ros.core.sim import SimConfig, SimRig
    stereo = {n.name: n for n in g.plan(g.GraphConfig()).nodes}['stereo_depth']
    rng = stereo.overrides['disparity_range']
    assert rng == g.SIM_DISPARITY_RANGE and rng % 16 == 0
    for scene in ('default', 'simple'):
        for t in (0.0, 2.0):   # with motion the rig sways sideways: depths stay
            f = SimRig(SimConfig(scene=scene, motion=True)).render(t)
            assert np.nanmax(f.disparity_gt) < 0.75 * rng, scene      # a margin of a quarter
    # another rig (its own calibration): the node's own default range
    kitti = {n.name: n for n in g.plan(g.GraphConfig(calibration_dir=os.path.join(ROOT, 'config/kitti'))).nodes}
    assert 'disparity_range' not in kitti['stereo_depth'].overrides


def test_generated_files_go_to_a_private_folder_of_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'ros_home'))
    path = g.content_file('params', 'a.yaml', 'x: 1\n')
    root = tmp_path / 'ros_home' / 'depthmarks_ros'
    assert path.startswith(str(root / 'params')) and open(path).read() == 'x: 1\n'
    assert (root.stat().st_mode & 0o777) == 0o700
    assert g.content_file('params', 'a.yaml', 'x: 1\n') == path   # once per content
    # a folder others can write to (planted by someone else, or loosened) is refused, not used
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'shared'))
    open_root = tmp_path / 'shared' / 'depthmarks_ros'
    open_root.mkdir(parents=True, mode=0o777)
    os.chmod(open_root, 0o777)
    with pytest.raises(PermissionError, match='not a private folder'):
        g.content_file('rigs', 'rig.yaml', 'base_frame: x\n')
    # a relative ROS_HOME: an absolute path (from the folder of the call); no leftover temporary files
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('ROS_HOME', 'rel_home')
    rel = g.content_file('params', 'b.yaml', 'y: 2\n')
    assert os.path.isabs(rel) and rel.startswith(str(tmp_path / 'rel_home' / 'depthmarks_ros'))
    assert os.listdir(os.path.dirname(rel)) == ['b.yaml']
    # a home that cannot hold it (a file where the folder should be): a message naming ROS_HOME
    (tmp_path / 'not_a_dir').write_text('')
    monkeypatch.setenv('ROS_HOME', str(tmp_path / 'not_a_dir'))
    with pytest.raises(OSError, match='set ROS_HOME to a writable folder'):
        g.content_file('params', 'a.yaml', 'x: 1\n')


def test_every_launch_with_rviz_reuses_its_rviz_config_file(tmp_path, monkeypatch):
    """write_rviz_config (launch_utils.rviz_action, each launch with rviz:=true) writes one file per
    content under $ROS_HOME/depthmarks_ros: a second launch of the same graph adds no file or folder
    (it made a new temporary folder each time), another graph (a second rig) gets its own."""
    monkeypatch.setenv('ROS_HOME', str(tmp_path))
    graph = g.plan(g.GraphConfig())
    path = g.write_rviz_config(graph)
    assert path.startswith(str(tmp_path / 'depthmarks_ros' / 'rviz'))
    assert open(path).read() == g.rviz_config_text(graph)
    files = lambda: sorted(os.path.relpath(os.path.join(r, f), tmp_path)    # noqa: E731
                           for r, _d, fs in os.walk(tmp_path) for f in fs)
    before = files()
    assert g.write_rviz_config(g.plan(g.GraphConfig())) == path and files() == before
    other = g.write_rviz_config(g.plan(g.GraphConfig(namespace='/rig2')))
    assert other != path and '/rig2/' in open(other).read() and open(path).read() == g.rviz_config_text(graph)
    assert g.write_rviz_config(graph, str(tmp_path)) == str(tmp_path / 'depthmarks.rviz')   # a chosen folder


@pytest.mark.parametrize('key, plain, namespaced', [
    ('/**', True, True), ('/**/stereo_depth', True, True), ('stereo_depth', True, False),
    ('/*', True, False), ('/*/stereo_depth', False, True), ('/rig1/stereo_depth', False, True),
    ('/**/depth_fusion', False, False)])
def test_params_file_keys_match_nodes_as_rcl_matches_them(key, plain, namespaced, tmp_path):
    """merged_parameters (what a shared process's node is given) reads the same sections of a
    user's config file as rcl would with the file given to the node itself (checked against rclpy:
    a bare name is absolute, ``/*`` is one name part)."""
    assert g.params_key_matches(key, '/stereo_depth') is plain
    assert g.params_key_matches(key, '/rig1/stereo_depth') is namespaced
    (tmp_path / 'stereo_depth.yaml').write_text(f'{key}:\n  ros__parameters:\n    block_size: 7\n')
    for ns, expected in (('', plain), ('/rig1', namespaced)):
        graph = g.plan(g.GraphConfig(face=False, body=False, fusion=False, namespace=ns))
        node = next(n for n in graph.nodes if n.name == 'stereo_depth')
        assert ('block_size' in g.merged_parameters(node, str(tmp_path))) is expected


@pytest.mark.parametrize('prefix', ['', '/', 'rig1/', '/rig1/', '/a/b/', '~/'])
def test_twin_kind_reads_an_output_under_a_namespace_as_the_plain_name(prefix):
    """stamp_merge asks graph.twin_kind for each merged topic, relative, namespaced, fully qualified or
    node-private: the same twin as the node output it names; a name that only shares a last part does not match."""
    assert g.twin_kind(prefix + 'mono/depth') == 'depth'
    assert g.twin_kind(prefix + 'stereo/left/image_raw') == 'image'
    assert g.twin_kind(prefix + 'mono/inverse_depth') is None           # an output without a twin
    assert g.twin_kind(prefix + 'xmono/depth') is None                  # not at a name boundary
    assert g.twin_kind(prefix + 'mono/depth/extra') is None


def test_names_expand_as_rcl_expands_them_private_and_substituted_ones_included():
    """graph.expand_name against rcl_expand_topic_name itself (through rclpy): ``~`` is the node's fully
    qualified name, ``{node}``, ``{ns}`` and ``{namespace}`` are substituted, relative names go under the
    namespace; an unknown substitution, and ``~`` without the node, are errors."""
    from rclpy.expand_topic_name import expand_topic_name
    names = ['x', 'a/b', '/x', '~', '~/x', '~/a/b', '{node}', '{node}/x', 'x/{node}', '/{node}/x', '{ns}/x',
             '{namespace}/x', 'x/{ns}', '~/{node}', '/a/{namespace}']
    for ns in ('', '/rig1', '/a/b'):
        for name in names:
            assert g.expand_name(name, ns, 'nd') == expand_topic_name(name, 'nd', ns or '/'), (name, ns)
    with pytest.raises(ValueError, match='unknown substitution'):
        g.expand_name('{foo}/x', '/rig1', 'nd')
    with pytest.raises(ValueError, match='needs the node'):
        g.expand_name('~/x', '/rig1')


def test_a_node_private_input_and_remap_resolve_for_their_node():
    """A remap rule is matched and replaced as rcl does, with the node's name; the graph's readers of a
    node-private input (``depth_topic:=~/depth``) are under the node's own name."""
    import rclpy
    from rclpy.node import Node
    rules = (('~/in', '/moved/x'), ('/rig1/nd/other', 'y'), ('in', '~/b'))
    args = ['--ros-args', '-r', '__ns:=/rig1'] + [a for src, dst in rules for a in ('-r', f'{src}:={dst}')]
    context = rclpy.Context()
    rclpy.init(context=context, args=args)
    try:
        node = Node('nd', context=context)
        for name in ('~/in', 'in', '~/other', 'other', '/rig1/in'):
            assert g.resolve_topic(name, rules, '/rig1', 'nd') == node.resolve_topic_name(name), name
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    with pytest.raises(ValueError, match='refuses substitutions'):   # as rcl refuses such a -r rule
        g.resolve_topic('~/in', (('~/in', '/moved/{node}'),), '/rig1', 'nd')
    graph = g.plan(g.GraphConfig(namespace='/rig1'))
    graph.nodes = [g.NodeLaunch(n.name, n.namespace, n.params_file,
                                dict(n.overrides, depth_topic='~/depth') if n.name == 'face_landmarks' else n.overrides,
                                n.remappings, n.respawn) for n in graph.nodes]
    readers = graph.topic_readers()
    assert readers['/rig1/face_landmarks/depth'] == ('face_landmarks',)
    assert 'body_pose' in readers['/rig1/fusion/depth']


def _rcl_resolved(rules, namespace, node_names, names):
    """{(node, name): the name rcl resolves for node ``node`` of a process started with ``rules``}."""
    import rclpy
    from rclpy.node import Node
    args = ['--ros-args', '-r', f'__ns:={namespace}'] + [a for src, dst in rules for a in ('-r', f'{src}:={dst}')]
    context = rclpy.Context()
    rclpy.init(context=context, args=args)
    try:
        out = {}
        for node_name in node_names:
            node = Node(node_name, context=context)
            out.update({(node_name, name): node.resolve_topic_name(name) for name in names})
            node.destroy_node()
        return out
    finally:
        rclpy.shutdown(context=context)


def test_a_node_targeted_remap_applies_to_that_node_only_as_rcl_applies_it():
    """``name:from:=to`` applies to the node of that name (its name, not its fully qualified one), a rule
    without a prefix to every node; the first matching rule wins; ``rostopic://from`` is the rule for
    topic ``from`` (node-targeted too), a ``rosservice://`` rule none: against rcl itself (rclpy)."""
    rules = (('other:in', '/for_other'), ('nd:in', '/for_nd'), ('in', '/for_all'), ('nd:~/x', 'private_moved'),
             ('out', '/all_out'), ('nd:out', '/nd_out'), ('rig1:in', '/never'),
             ('rosservice://u', '/service_only'), ('rostopic://u', '/u_topic'), ('nd:rostopic://t', '/t_for_nd'),
             ('third:rostopic://~/p', 'p_moved'))
    names = ('in', '~/x', 'x', 'out', '/rig1/in', 'u', '/rig1/u', 't', '~/p')
    for (node, name), resolved in _rcl_resolved(rules, '/rig1', ('nd', 'other', 'third'), names).items():
        assert g.resolve_topic(name, rules, '/rig1', node) == resolved, (node, name)
    # without a node: targeted rules are skipped, the others apply
    assert g.resolve_topic('in', rules, '/rig1') == '/for_all'
    assert g.resolve_topic('in', (('nd:in', '/for_nd'),), '/rig1') == '/rig1/in'


def test_a_shared_process_resolves_each_nodes_topics_through_its_targeted_rules():
    """ProcessLaunch.remappings of a composed process (each node's rules targeted at it): every node's
    topic resolves as through its own rules alone, and as rcl resolves it in that process."""
    import dataclasses
    _depth, proc = g.plan(g.config_from_arguments({'compose': 'people', 'namespace': '/rig1'})).processes()
    face, body = proc.nodes
    face = dataclasses.replace(face, remappings=(('camera/image_raw', '/face_cam/image_raw'),))
    body = dataclasses.replace(body, remappings=(('camera/image_raw', 'body_cam/image_raw'),
                                                 ('fusion/depth', '~/depth')))
    proc = dataclasses.replace(proc, nodes=(face, body))
    assert proc.composed and ('body_pose:fusion/depth', '~/depth') in proc.remappings
    names = ('camera/image_raw', 'camera/camera_info', 'fusion/depth')
    rcl = _rcl_resolved(proc.remappings, '/rig1', [n.name for n in proc.nodes], names)
    for n in proc.nodes:
        for name in names:
            resolved = g.resolve_topic(name, proc.remappings, proc.namespace, n.name)
            assert resolved == g.resolve_topic(name, n.remappings, n.namespace, n.name) == rcl[(n.name, name)]
    assert g.resolve_topic('camera/image_raw', proc.remappings, '/rig1', 'face_landmarks') == '/face_cam/image_raw'
    assert g.resolve_topic('fusion/depth', proc.remappings, '/rig1', 'body_pose') == '/rig1/body_pose/depth'


def test_twin_names_come_from_the_graph_benchmarks_included(monkeypatch):
    """graph.twin_of names an output's compressed twin from the declared twins (one source);
    benchmarks/bench_multihost.py subscribes and reports the camera twins through it."""
    import importlib.util
    assert g.twin_of('camera/image_raw') == 'camera/image_raw/compressed'
    assert g.twin_of('/rig1/fusion/depth') == '/rig1/fusion/depth/compressedDepth'
    assert g.twin_of('lidar/points') is None and g.twin_of('stereo/disparity') is None
    spec = importlib.util.spec_from_file_location('bench_multihost', os.path.join(
        os.path.dirname(__file__), '..', 'benchmarks', 'bench_multihost.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    images = [t for t, typ in bench.SENSOR_TOPICS if typ.endswith('/Image')]
    assert images and bench.camera_twins() == [(t, g.twin_of(t)) for t in images]
    monkeypatch.setattr(g, 'twin_of', lambda t: f'{t}/theora' if t == 'camera/image_raw' else None)
    assert bench.camera_twins() == [('camera/image_raw', 'camera/image_raw/theora')]
