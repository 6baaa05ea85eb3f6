"""The pipeline's node graph, written once: which nodes exist, their parameter files, which of them
run for a set of arguments, their parameter overrides, topic remappings and namespace, the static
transforms of the rig and the RViz view.

Which planned nodes share one process in the launch-file layout (:data:`PROCESS_GROUPS`,
:meth:`Graph.processes`) is decided here too, for the launch files and ``depthmarks run
--multi-process`` alike.

ROS-free (no rclpy, no launch): ``launch/full_pipeline.launch.py`` (through
:mod:`depthmarks_ros.launch_utils`) turns a :class:`Graph` into launch_ros actions, and
:mod:`depthmarks_ros.pipeline.runner` (``depthmarks run``) into nodes in one process (or one
process each) plus a recording. Both call :func:`plan` with a :class:`GraphConfig`, so they start
the same nodes with the same parameters and remappings (test/test_graph.py checks it).

Arguments (:data:`ARGUMENTS`, the launch arguments, with their choices) are checked by
:func:`config_from_arguments`: a typo such as ``source:=vidoe`` is refused with the valid choices.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from depthmarks_ros.pipeline import node_inputs as ni


PACKAGE = 'depthmarks_ros'
_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


@functools.lru_cache(maxsize=64)
def _yaml_file(path: str, mtime_ns: int, size: int):
    with open(path, encoding='utf-8') as f:
        return yaml.load(f, Loader=_LOADER) or {}


def read_yaml(path: str):
    """A YAML file's content (a fresh copy; parsed once per file version)."""
    st = os.stat(path)
    return copy.deepcopy(_yaml_file(path, st.st_mtime_ns, st.st_size))


# ---------------------------------------------------------------------------------------- nodes
def _no_inputs(p: Mapping[str, object]) -> Tuple[ni.InputTopic, ...]:
    return ()


@dataclass(frozen=True)
class NodeSpec:
    name: str                                # node name = executable = nodes/<name>.py
    short: str                               # the name in nodes:= / --nodes
    outputs: Tuple[Tuple[str, str], ...] = ()  # (relative topic, type) recorded by `depthmarks run`
    sensor_facing: bool = False              # respawned by the launch files
    config: str = ''                         # its parameter file in config/ when not <name>.yaml
    #: its inputs from its parameters (:func:`merged_parameters`): the function of pipeline/node_inputs.py
    #: the node builds its subscriptions from (test_pipeline_publication.py checks them against started
    #: nodes); :meth:`NodeLaunch.inputs`, :meth:`Graph.topic_readers`
    inputs: Callable[[Mapping[str, object]], Tuple[ni.InputTopic, ...]] = _no_inputs
    #: the relative topics of the compressed twins its image publishers create (ros/image_publisher.py:
    #: ``<topic>/compressed``, ``<topic>/compressedDepth`` for a depth); writers of their own (the
    #: per-topic publication rules, pipeline/publication.py); test_pipeline_publication.py checks them
    #: against started nodes (all but video_source, which needs a video). A twin follows its raw
    #: topic's remap (:func:`resolve_topic`, as image_transport does)
    twins: Tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return f'{PACKAGE}.nodes.{self.name}'

    @property
    def params_file(self) -> str:
        """Its parameter file in config/: ``<name>.yaml`` unless :attr:`config` names another (the launch
        files, `depthmarks run` and the parameter specs' registry, depthmarks_ros/params, read it here)."""
        return self.config or f'{self.name}.yaml'


_IMAGE, _INFO, _CLOUD = ni.IMAGE, ni.INFO, ni.CLOUD
_MARKERS = 'visualization_msgs/msg/MarkerArray'

#: every node of the package, written once: the parameter specs' registry (depthmarks_ros/params), the
#: launch files, `depthmarks run` and the container read it; setup.py's console scripts and the one launch
#: file per node cannot, and test_launch_static.py fails where they disagree with it
NODES: Dict[str, NodeSpec] = {s.name: s for s in (
    NodeSpec('sim_rig', 'sim', (
        ('stereo/left/image_raw', _IMAGE), ('stereo/left/camera_info', _INFO),
        ('stereo/right/image_raw', _IMAGE), ('stereo/right/camera_info', _INFO),
        ('camera/image_raw', _IMAGE), ('camera/camera_info', _INFO), ('lidar/points', _CLOUD),
        ('sim/depth_gt', _IMAGE), ('sim/disparity_gt', _IMAGE)), sensor_facing=True,
        config='sim_rig_node.yaml',      # not sim_rig.yaml: config/sim_rig/ is the rig's folder
        twins=('stereo/left/image_raw/compressed', 'stereo/right/image_raw/compressed', 'camera/image_raw/compressed',
               'sim/depth_gt/compressedDepth')),
    NodeSpec('video_source', 'video', (
        ('camera/image_raw', _IMAGE), ('camera/camera_info', _INFO)), sensor_facing=True,
        twins=('stereo/left/image_raw/compressed', 'stereo/right/image_raw/compressed', 'camera/image_raw/compressed')),
    NodeSpec('stereo_depth', 'stereo', (
        ('stereo/disparity', 'stereo_msgs/msg/DisparityImage'), ('stereo/depth', _IMAGE),
        ('stereo/camera_info', _INFO), ('stereo/confidence', _IMAGE), ('stereo/points', _CLOUD)),
        sensor_facing=True, inputs=ni.stereo_depth, twins=('stereo/depth/compressedDepth',)),
    NodeSpec('depth_fusion', 'fusion', (
        ('fusion/sparse_depth', _IMAGE), ('fusion/depth', _IMAGE), ('fusion/depth_sigma', _IMAGE),
        ('fusion/camera_info', _INFO), ('fusion/points', _CLOUD)), sensor_facing=True, inputs=ni.depth_fusion,
        twins=('fusion/sparse_depth/compressedDepth', 'fusion/depth/compressedDepth')),
    NodeSpec('mono_depth', 'mono', (
        ('mono/inverse_depth', _IMAGE), ('mono/depth', _IMAGE)), inputs=ni.mono_depth,
        twins=('mono/depth/compressedDepth',)),
    NodeSpec('face_landmarks', 'face', (
        ('face/landmarks', _CLOUD), ('face/head_pose', 'geometry_msgs/msg/PoseWithCovarianceStamped'),
        ('face/markers', _MARKERS)), inputs=ni.camera, twins=('face/debug_image/compressed',)),
    NodeSpec('body_pose', 'body', (
        ('body/keypoints', _CLOUD), ('body/markers', _MARKERS)), inputs=ni.camera,
        twins=('body/debug_image/compressed',)),
    # not part of the planned graph: started by hand next to scaled-out instances (docs/multihost.md)
    NodeSpec('stamp_merge', 'merge', inputs=ni.stamp_merge),
)}
ALIASES = {s.short: s.name for s in NODES.values()}
SIM_DISPARITY_RANGE = 64   # stereo_depth's search range on the simulated rig with its own rig file (plan())
PROCESSING = ('stereo_depth', 'depth_fusion', 'mono_depth', 'face_landmarks', 'body_pose')
# what a recording may feed into the pipeline (outputs in it are not replayed)
SENSOR_TOPICS = tuple(t for t, _ in NODES['sim_rig'].outputs)
# the static transforms: a pseudo-node of nodes:= (start them on the host that runs the sensors)
TF = 'tf'
#: nodes that share one process in the launch-file layout (``compose:=true``, the default): rclpy has
#: no component containers, so :mod:`depthmarks_ros.pipeline.container` (the ``CONTAINER`` executable)
#: builds several nodes in one process with one executor, as image_pipeline's launch files load its
#: composable nodes into one container (``container:=``, e.g. the camera driver's). The depth process: the
#: simulated rig (the camera driver's stand-in; real sensors, ``source:=topics``, publish from
#: their own drivers), stereo_depth and depth_fusion. The stereo pair, the camera image and the
#: LiDAR sweep (three 640x480 images and a cloud per frame) reach stereo and fusion, and stereo's
#: depth and confidence reach fusion, without crossing a process boundary (~3 ms per 1.2 MB image
#: between processes, docs/pipeline.md "Multi-process"). A group runs as one process only where two
#: or more of its nodes start; every other node has a process of its own.
DEPTH_GROUP = ('depth', ('sim_rig', 'stereo_depth', 'depth_fusion'))
PROCESS_GROUPS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (DEPTH_GROUP,)
#: the people process (``compose:=people``): face_landmarks and body_pose, the two readers of the rig's
#: camera image (and of fusion's depth) outside the depth process, share one, so the depth process's
#: synchronous publishes copy each image into one process fewer; MediaPipe's fate and the GIL are shared
#: by the two (a crash restarts both), the depth pipeline stays apart
PEOPLE_GROUP = ('people', ('face_landmarks', 'body_pose'))
#: ``compose:=`` (:attr:`GraphConfig.compose`): ``true`` (the default) each group of :data:`PROCESS_GROUPS`
#: shares a process; ``people`` those and :data:`PEOPLE_GROUP`; ``false`` every node has a process of its
#: own; ``all`` every node this host starts shares one process, :data:`ALL_PROCESS` (one component container
#: for the whole pipeline, as a user with one container runs it; ``depthmarks run``'s recorder stays in its
#: own process, as ``ros2 bag record`` would)
COMPOSE_CHOICES = ('true', 'false', 'all', 'people')
#: the groups of each ``compose:=`` value but ``all`` (every node of the host: :data:`ALL_PROCESS`)
COMPOSE_GROUPS: Dict[str, Tuple[Tuple[str, Tuple[str, ...]], ...]] = {
    'true': PROCESS_GROUPS, 'people': PROCESS_GROUPS + (PEOPLE_GROUP,), 'false': ()}
ALL_PROCESS = 'pipeline'
CONTAINER = 'depthmarks_container'    # console script; module depthmarks_ros.pipeline.container
CONTAINER_MODULE = f'{PACKAGE}.pipeline.container'


def twin_kind(topic: str) -> Optional[str]:
    """The ImagePublisher kind (``'image'`` / ``'depth'``, node_inputs.TWIN_TRANSPORT) of the node output
    ``topic`` from the nodes' declared twins, or None where no node publishes a compressed twin of it
    (stamp_merge republishes a scaled-out node's outputs with the twins the node itself would have).
    ``topic`` is relative as NodeSpec.outputs names it, or that name under a namespace (``rig1/mono/depth``,
    fully qualified ``/rig1/mono/depth``, node-private ``~/mono/depth``): the longest declared output
    that ends it at a ``/`` decides."""
    name = '/' + topic.lstrip('~').strip('/')
    kinds = {transport: kind for kind, transport in ni.TWIN_TRANSPORT.items()}
    best: Tuple[int, Optional[str]] = (0, None)
    for spec in NODES.values():
        for twin in spec.twins:
            base, _, transport = twin.rpartition('/')
            if name.endswith('/' + base) and len(base) > best[0]:
                best = (len(base), kinds.get(transport))
    return best[1]


def twin_of(topic: str) -> Optional[str]:
    """The compressed twin of node output ``topic`` (``<topic>/compressed``, ``<topic>/compressedDepth``:
    the transport of :func:`twin_kind`, ``topic`` named as it takes it), or None where no node publishes one."""
    kind = twin_kind(topic)
    return ni.transported(topic, ni.TWIN_TRANSPORT[kind]) if kind else None


def resolve(names: Sequence[str]) -> List[str]:
    """Short or full node names -> full names; ValueError names an unknown one."""
    out = []
    for n in names:
        full = ALIASES.get(n, n)
        if full not in NODES:
            raise ValueError(f'unknown node {n!r}; known: {", ".join(sorted(ALIASES))}')
        out.append(full)
    return out


# ------------------------------------------------------------------------------------ arguments
BOOL = ('true', 'false')


@dataclass(frozen=True)
class Argument:
    name: str
    default: str
    description: str
    choices: Tuple[str, ...] = ()


ARGUMENTS: Tuple[Argument, ...] = (
    Argument('source', 'sim', 'Input: sim (simulated rig), video (video_source node), topics (your sensors)',
             ('sim', 'video', 'topics')),
    Argument('use_sim', 'true', 'Shortcut: false means source:=topics when source is sim', BOOL),
    Argument('nodes', 'all', 'Which nodes of the graph this launch starts: all, or a comma list of sim, video, '
             'stereo, fusion, mono, face, body, tf (the static transforms); the wiring stays that of the whole '
             'graph, so hosts can split it (robot: sim,stereo,tf; offboard: fusion,face,body)'),
    Argument('calibration_dir', '', 'Folder with rig.yaml and camera YAMLs ("" = the package config/sim_rig, '
             'config/video for source:=video)'),
    Argument('stereo', 'true', 'Run stereo_depth', BOOL),
    Argument('fusion', 'true', 'Run depth_fusion', BOOL),
    Argument('mono', 'false', 'Run mono_depth (needs mono_model)', BOOL),
    Argument('face', 'true', 'Run face_landmarks', BOOL),
    Argument('body', 'true', 'Run body_pose', BOOL),
    Argument('mono_model', '', 'Local folder of a monocular depth model (see docs/mono_depth.md)'),
    Argument('device', 'cpu', 'Torch device for the mono model', ('cpu', 'cuda')),
    Argument('video', '', 'source:=video: video file, image folder or camera device'),
    Argument('stereo_ns', 'stereo', 'Namespace of the stereo pair topics (left/image_raw, ...)'),
    Argument('camera_ns', 'camera', 'Namespace of the RGB camera topics (image_raw, camera_info)'),
    Argument('lidar_topic', 'lidar/points', 'LiDAR PointCloud2 topic'),
    Argument('namespace', '', 'Namespace of every node and its topics (several rigs: one namespace each)'),
    Argument('frame_prefix', '', 'Prefix of every frame of the rig, e.g. rig1/ (several rigs on one robot)'),
    Argument('use_sim_time', 'false', 'Every node follows /clock (e.g. ros2 bag play --clock)', BOOL),
    Argument('rviz', 'false', 'Open RViz with config/depthmarks.rviz, its topics and fixed frame following '
             'this graph (namespace, remaps, frame prefix)', BOOL),
    Argument('use_dds_profile', 'true', "Load the package's loopback Fast DDS profile from its config folder "
             '(large messages between processes)', BOOL),
    Argument('compose', 'true', 'Run the simulated rig, stereo_depth and depth_fusion in one process (the depth process: '
             'their images never cross a process boundary); false: every node in a process of its own; all: every '
             'node of this launch in one process (one container for the whole pipeline); people: as true, and '
             'face_landmarks and body_pose share a second process, people', COMPOSE_CHOICES),
)
ARGUMENT_NAMES = tuple(a.name for a in ARGUMENTS)
NODE_CHOICES = tuple(sorted(ALIASES)) + (TF,)


@dataclass(frozen=True)
class GraphConfig:
    """What decides the graph. Launch arguments map onto it one to one (:func:`config_from_arguments`)."""
    source: str = 'sim'                       # sim | video | topics
    stereo: bool = True
    fusion: bool = True
    mono: bool = False
    face: bool = True
    body: bool = True
    start: Optional[Tuple[str, ...]] = None   # full node names (+ 'tf') this host starts; None = all
    calibration_dir: str = ''
    mono_model: str = ''
    device: str = 'cpu'
    video: str = ''
    stereo_ns: str = 'stereo'
    camera_ns: str = 'camera'
    lidar_topic: str = 'lidar/points'
    namespace: str = ''
    frame_prefix: str = ''
    use_sim_time: bool = False
    compose: str = 'true'                     # COMPOSE_CHOICES: which nodes share a process (Graph.processes)

    def __post_init__(self):
        object.__setattr__(self, 'compose', parse_compose(self.compose))


def parse_compose(value) -> str:
    """compose:= as one of :data:`COMPOSE_CHOICES`; a bool (its type before ``all``) is ``true``/``false``;
    ValueError with the valid choices on anything else."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    v = str(value).strip().lower()
    if v not in COMPOSE_CHOICES:
        raise ValueError(f'compose:={value!r} is not one of {", ".join(COMPOSE_CHOICES)}')
    return v


def parse_bool(name: str, value: str) -> bool:
    v = str(value).strip().lower()
    if v in ('true', '1', 'yes', 'on'):
        return True
    if v in ('false', '0', 'no', 'off'):
        return False
    raise ValueError(f'{name}:={value!r} is not a boolean (true or false)')


def parse_nodes(value: str) -> Optional[Tuple[str, ...]]:
    """'all' or '' -> None; 'stereo,fusion,tf' -> ('stereo_depth', 'depth_fusion', 'tf')."""
    words = [w.strip() for w in str(value).split(',') if w.strip()]
    if not words or words == ['all']:
        return None
    bad = [w for w in words if w != TF and ALIASES.get(w, w) not in NODES]
    if bad:
        raise ValueError(f'nodes:={value!r}: unknown {", ".join(bad)}; choose from all or {", ".join(NODE_CHOICES)}')
    return tuple(w if w == TF else ALIASES.get(w, w) for w in words)


def config_from_arguments(values: Mapping[str, str]) -> GraphConfig:
    """Launch argument values (strings) -> GraphConfig; ValueError with the valid choices on a bad one."""
    unknown = sorted(set(values) - set(ARGUMENT_NAMES))
    if unknown:
        raise ValueError(f'unknown argument(s) {", ".join(unknown)}')
    v = {a.name: str(values.get(a.name, a.default)) for a in ARGUMENTS}
    for a in ARGUMENTS:
        if a.choices and a.choices is not BOOL and v[a.name] not in a.choices:
            raise ValueError(f'{a.name}:={v[a.name]!r} is not one of {", ".join(a.choices)}')
    for name in ('stereo_ns', 'camera_ns', 'lidar_topic'):   # they become remap rules (plan)
        if '{' in v[name]:
            raise ValueError(f'{name}:={v[name]!r}: rcl refuses substitutions ({{node}}, {{ns}}) in a remap rule')
    flags = {n: parse_bool(n, v[n]) for n in ('use_sim', 'stereo', 'fusion', 'mono', 'face', 'body', 'use_sim_time')}
    source = v['source']
    if source == 'sim' and not flags['use_sim']:
        source = 'topics'
    return GraphConfig(source=source, stereo=flags['stereo'], fusion=flags['fusion'], mono=flags['mono'],
                       face=flags['face'], body=flags['body'], start=parse_nodes(v['nodes']),
                       calibration_dir=v['calibration_dir'], mono_model=v['mono_model'], device=v['device'],
                       video=v['video'], stereo_ns=v['stereo_ns'], camera_ns=v['camera_ns'],
                       lidar_topic=v['lidar_topic'], namespace=normalise_namespace(v['namespace']),
                       frame_prefix=v['frame_prefix'], use_sim_time=flags['use_sim_time'], compose=v['compose'])


def normalise_namespace(ns: str) -> str:
    """'' stays ''; 'rig1' and '/rig1/' -> '/rig1'."""
    ns = ns.strip().strip('/')
    return f'/{ns}' if ns else ''


# ---------------------------------------------------------------------------------------- graph
@dataclass(frozen=True)
class NodeLaunch:
    name: str
    namespace: str
    params_file: str                          # file name in config/
    overrides: Dict[str, object]
    remappings: Tuple[Tuple[str, str], ...]
    respawn: bool

    @property
    def spec(self) -> NodeSpec:
        return NODES[self.name]

    @property
    def fully_qualified_name(self) -> str:
        return f'{self.namespace}/{self.name}'

    def inputs(self, config_dir: Optional[str] = None) -> Tuple[str, ...]:
        """The relative topics it subscribes with the parameters it will hold (NodeSpec.inputs)."""
        return ni.subscribed(self.spec.inputs(merged_parameters(self, config_dir)))


@dataclass(frozen=True)
class ProcessLaunch:
    """One process of the launch-file layout: one node (its own executable) or a group of
    :data:`COMPOSE_GROUPS` for the ``compose:=`` value (``depth``, ``people``, or ``pipeline`` for
    ``compose:=all``: the :data:`CONTAINER` executable with the node names as arguments)."""
    name: str                                 # the node's name, or the group's ('depth', 'people', 'pipeline')
    nodes: Tuple[NodeLaunch, ...]

    @property
    def composed(self) -> bool:
        return len(self.nodes) > 1

    @property
    def namespace(self) -> str:
        return self.nodes[0].namespace        # plan() gives every node the graph's namespace

    @property
    def respawn(self) -> bool:
        return any(n.respawn for n in self.nodes)

    @property
    def executable(self) -> str:
        return CONTAINER if self.composed else self.nodes[0].name

    @property
    def module(self) -> str:
        return CONTAINER_MODULE if self.composed else self.nodes[0].spec.module

    @property
    def arguments(self) -> List[str]:
        """Its command line before ``--ros-args``: the node names for the container."""
        return [n.name for n in self.nodes] if self.composed else []

    @property
    def remappings(self) -> List[Tuple[str, str]]:
        """Every node's remappings; in a shared process targeted at their node (rcl's
        ``node_name:from:=to``), so one node's rules never apply to another's topics."""
        if not self.composed:
            return list(self.nodes[0].remappings)
        return [(f'{n.name}:{src}', dst) for n in self.nodes for src, dst in n.remappings]

    def params_key(self, node: NodeLaunch) -> str:
        """The key of ``node``'s section in the parameter file it is started with: ``/**`` (any node
        name and namespace) for a node alone in its process; ``/**/<name>`` (its name, in any
        namespace) in a shared process, where every node reads every file given to the process.
        Never a process-wide ``__node:=`` rename: it would rename every node of the process."""
        return f'/**/{node.name}' if self.composed else '/**'


@dataclass(frozen=True)
class StaticTransform:
    parent: str
    child: str
    translation: Tuple[float, float, float]
    rotation: Tuple[float, float, float, float]   # x, y, z, w


@dataclass
class Graph:
    config: GraphConfig
    nodes: List[NodeLaunch]                       # the nodes this host starts, in start order
    static_transforms: List[StaticTransform]      # empty unless this host starts 'tf'
    fixed_frame: str                              # the rig's (prefixed) base frame
    rig_file: str
    remappings: Tuple[Tuple[str, str], ...]
    notes: List[str] = field(default_factory=list)  # what was left out and why

    def resolve_topic(self, topic: str, node: Optional[str] = None) -> str:
        """Absolute name of node ``node``'s topic under this graph's remappings and namespace (the node's
        name matters only to a node-private ``~`` or ``{node}`` name and a rule targeted at a node,
        :func:`resolve_topic`)."""
        return resolve_topic(topic, self.remappings, self.config.namespace, node)

    def frames(self) -> List[str]:
        return [self.fixed_frame] + [t.child for t in self.static_transforms]

    def processes(self) -> List[ProcessLaunch]:
        """The processes of the launch-file layout (and of ``depthmarks run --multi-process``), in
        start order: with ``compose:=true`` each group of :data:`PROCESS_GROUPS` of which two or more nodes
        start is one process (at its first node's place), every other node a process of its own (``people``:
        the same with :data:`PEOPLE_GROUP` too); with ``all`` every node of this host in one process, :data:`ALL_PROCESS` (where two or more start);
        with ``false`` every node a process of its own."""
        if self.config.compose == 'all':
            group_of = {n.name: ALL_PROCESS for n in self.nodes}
        else:
            group_of = {n: name for name, members in COMPOSE_GROUPS[self.config.compose] for n in members}
        out: List[ProcessLaunch] = []
        done = set()
        for n in self.nodes:
            if n.name in done:
                continue
            group = group_of.get(n.name)
            members = [m for m in self.nodes if group and group_of.get(m.name) == group]
            if len(members) > 1:
                out.append(ProcessLaunch(group, tuple(members)))
                done.update(m.name for m in members)
            else:
                out.append(ProcessLaunch(n.name, (n,)))
                done.add(n.name)
        return out


    def topic_readers(self, config_dir: Optional[str] = None) -> Dict[str, Tuple[str, ...]]:
        """{resolved topic: the names of this host's planned nodes that subscribe to it}."""
        out: Dict[str, List[str]] = {}
        for n in self.nodes:
            for topic in n.inputs(config_dir):
                out.setdefault(self.resolve_topic(topic, n.name), []).append(n.name)
        return {t: tuple(names) for t, names in out.items()}


def resolve_topic(topic: str, remappings: Sequence[Tuple[str, str]], namespace: str,
                  node: Optional[str] = None) -> str:
    """The absolute name of node ``node``'s topic under ``remappings`` (the first rule whose name matches,
    both expanded for the node, as rcl matches) and ``namespace``. A rule targeted at a node
    (``name:from``, as :attr:`ProcessLaunch.remappings` writes them) applies only to the node of that
    name, as rcl_remap_first_match compares it (the node's name, not its fully qualified one); with
    ``node`` None it is skipped. A rule's source may start with ``rostopic://`` (a rule for topics only:
    the rest is the name) or ``rosservice://`` (for services only: skipped). A transport topic of an image
    (``<base>/compressed``, ``<base>/compressedDepth``: the compressed twins, an input's
    ``image_transport``) hangs under its base's resolved name, as image_transport builds it (the
    nodes: ros/image_publisher.py, ros/synced_inputs.py), and a rule naming that full name still
    applies to it. ``node`` (its name) is needed only where a name is node-private (``~``) or names
    ``{node}`` (:func:`expand_name`)."""
    base, _, transport = topic.rpartition('/')
    if base and transport in ni.TWIN_TRANSPORT.values():
        topic = ni.transported(resolve_topic(base, remappings, namespace, node), transport)
    expanded = expand_name(topic, namespace, node)
    for rule, dst in remappings:
        if '{' in rule or '{' in dst:
            raise ValueError(f'remap {rule}:={dst}: rcl refuses substitutions ({{node}}, {{ns}}) in a remap rule')
        target = _NODE_PREFIX.match(rule)
        src = rule[target.end():] if target else rule
        if target and target.group(1) != node:
            continue                  # a rule for another node
        if src.startswith(_SERVICE_URL):
            continue                  # a rule for services only
        src = src[len(_TOPIC_URL):] if src.startswith(_TOPIC_URL) else src   # a rule for topics only
        if expanded == expand_name(src, namespace, node):
            return expand_name(dst, namespace, node)
    return expanded


_SUBSTITUTION = re.compile(r'{([^{}]*)}')
#: a remap rule's node prefix (``node_name:``): rcl's lexer token (a letter or ``_``, then letters,
#: digits, ``_``) and a colon that does not start a ``rostopic://`` URL
_NODE_PREFIX = re.compile(r'([A-Za-z_][A-Za-z0-9_]*):(?!//)')
#: a remap rule's source limited to topics / to services (after the node prefix), as rcl parses it
_TOPIC_URL, _SERVICE_URL = 'rostopic://', 'rosservice://'


def expand_name(name: str, namespace: str, node: Optional[str] = None) -> str:
    """The fully qualified form of topic ``name`` of node ``node`` in ``namespace`` ('' or '/a/b'), as
    rcl_expand_topic_name makes it: ``~`` is the node's fully qualified name (``~/x`` in /a:
    ``/a/<node>/x``), then ``{node}`` its name and ``{ns}`` / ``{namespace}`` its namespace ('/' at the
    root), then a relative name goes under the namespace. ValueError for another substitution, and for
    ``~`` or ``{node}`` without ``node``."""
    if name.startswith('/') and '{' not in name:
        return name
    ns = namespace or '/'

    def node_name(what: str) -> str:
        if not node:
            raise ValueError(f'topic {name!r}: {what} needs the node it belongs to')
        return node
    if name.startswith('~'):
        name = f'{namespace}/{node_name("~")}{name[1:]}'

    def substitute(m) -> str:
        if m.group(1) == 'node':
            return node_name('{node}')
        if m.group(1) in ('ns', 'namespace'):
            return ns
        raise ValueError(f'topic {name!r}: unknown substitution {m.group(0)} (rcl knows {{node}}, {{ns}}, {{namespace}})')
    name = _SUBSTITUTION.sub(substitute, name)
    return name if name.startswith('/') else f'{namespace}/{name}'


def package_config_dir() -> str:
    from depthmarks_ros.core.calibration import package_config_dir as config_dir
    return config_dir()


def default_calibration_dir(source: str) -> str:
    return os.path.join(package_config_dir(), 'video' if source == 'video' else 'sim_rig')


def is_device(video: str) -> bool:
    return video.isdigit() or video.startswith('/dev/')


def plan(cfg: GraphConfig) -> Graph:
    """The nodes, parameters, remappings, static transforms and fixed frame for ``cfg``."""
    if cfg.source not in ('sim', 'video', 'topics'):
        raise ValueError(f'source {cfg.source!r} is not one of sim, video, topics')
    calib = cfg.calibration_dir or default_calibration_dir(cfg.source)
    rig_file = os.path.join(calib, 'rig.yaml')
    if cfg.frame_prefix:
        rig_file = prefixed_rig_file(rig_file, cfg.frame_prefix)
    s, c = cfg.stereo_ns, cfg.camera_ns
    remap = tuple((a, b) for a, b in (
        ('stereo/left/image_raw', f'{s}/left/image_raw'), ('stereo/left/camera_info', f'{s}/left/camera_info'),
        ('stereo/right/image_raw', f'{s}/right/image_raw'), ('stereo/right/camera_info', f'{s}/right/camera_info'),
        ('camera/image_raw', f'{c}/image_raw'), ('camera/camera_info', f'{c}/camera_info'),
        ('lidar/points', cfg.lidar_topic)) if a != b)
    notes: List[str] = []
    wanted: List[Tuple[str, Dict[str, object]]] = []
    if cfg.source == 'sim':
        wanted.append(('sim_rig', {'rig_file': rig_file}))
    elif cfg.source == 'video':
        wanted.append(('video_source', {'source': cfg.video, 'loop': not is_device(cfg.video),
                                        'frame_id': cfg.frame_prefix + 'camera_optical_frame',
                                        'right_frame_id': cfg.frame_prefix + 'right_camera_optical_frame'}))
    has_stereo = has_lidar = cfg.source != 'video'   # one camera from video_source: no pair, no LiDAR
    stereo = cfg.stereo and has_stereo
    fusion = cfg.fusion and has_lidar
    if stereo:
        # the simulated rig's scene (its own rig file) lies at 2-7 m: 8.6-30 px of disparity; a search
        # range of 64 holds it with margin at half the matcher's work of the node's default 128 (for
        # real cameras), and leaves 64 instead of 128 unmatched columns at the left border (issue 21)
        sim_range = cfg.source == 'sim' and not cfg.calibration_dir
        wanted.append(('stereo_depth', {'disparity_range': SIM_DISPARITY_RANGE} if sim_range else {}))
    if fusion:
        wanted.append(('depth_fusion', {'rig_file': rig_file, 'use_stereo': stereo}))
    if cfg.mono and cfg.mono_model:
        wanted.append(('mono_depth', {'model': cfg.mono_model, 'device': cfg.device}))
    elif cfg.mono:
        notes.append('mono_depth not started: no mono_model given (no weights ship with the package)')
    # face and body lift their landmarks with the best depth the graph has
    depth_topic = 'fusion/depth' if fusion else 'stereo/depth' if stereo else ''
    if cfg.face:
        wanted.append(('face_landmarks', {'depth_topic': depth_topic}))
    if cfg.body:
        wanted.append(('body_pose', {'depth_topic': depth_topic}))
    nodes = []
    for name, overrides in wanted:
        if cfg.start is not None and name not in cfg.start:
            continue
        if cfg.use_sim_time:
            overrides = dict(overrides, use_sim_time=True)
        nodes.append(NodeLaunch(name, cfg.namespace, NODES[name].params_file, overrides, remap,
                                NODES[name].sensor_facing))
    if cfg.start is not None:
        absent = [n for n in cfg.start if n != TF and n not in {w for w, _ in wanted}]
        if absent:
            notes.append(f'nodes:= names {", ".join(absent)}, which this graph does not have (source {cfg.source})')
    transforms, base = rig_transforms(rig_file)
    if cfg.start is not None and TF not in cfg.start:
        transforms = []
    return Graph(cfg, nodes, transforms, base, rig_file, remap, notes)


def rig_transforms(rig_file: str) -> Tuple[List[StaticTransform], str]:
    """(base frame -> every sensor frame of the rig, the base frame); a sensor in the base frame itself
    (KITTI: the LiDAR is the base) gets no transform: tf2 refuses a frame as its own parent."""
    st = os.stat(rig_file)
    transforms, base = _rig_transforms(os.path.abspath(rig_file), st.st_mtime_ns, st.st_size)
    return list(transforms), base


@functools.lru_cache(maxsize=32)
def _rig_transforms(rig_file: str, _mtime_ns: int, _size: int) -> Tuple[Tuple[StaticTransform, ...], str]:
    from depthmarks_ros.core.calibration import load_rig
    from depthmarks_ros.core.transforms import matrix_to_quaternion
    rig = load_rig(rig_file)
    out, seen = [], {rig.base_frame}
    for sensor in rig.sensors.values():
        if sensor.frame_id in seen:
            continue
        seen.add(sensor.frame_id)
        t = sensor.sensor2base[:3, 3]
        q = matrix_to_quaternion(sensor.sensor2base[:3, :3])
        out.append(StaticTransform(rig.base_frame, sensor.frame_id, tuple(float(x) for x in t),
                                   tuple(float(x) for x in q)))
    return tuple(out), rig.base_frame


def prefixed_rig_file(rig_file: str, prefix: str) -> str:
    """A copy of ``rig_file`` with every frame (base and sensors) prefixed, camera YAMLs by absolute path.

    Written once per content (:func:`content_file`: the launch file and the runner name the same file)."""
    data = read_yaml(rig_file)
    folder = os.path.dirname(os.path.abspath(rig_file))
    data['base_frame'] = prefix + str(data.get('base_frame', 'base_link'))
    for entry in (data.get('sensors') or {}).values():
        if isinstance(entry, dict) and 'frame_id' in entry:
            entry['frame_id'] = prefix + str(entry['frame_id'])
        if isinstance(entry, dict) and entry.get('camera_info'):
            entry['camera_info'] = os.path.join(folder, entry['camera_info'])
    return content_file('rigs', 'rig.yaml', yaml.safe_dump(data, sort_keys=False))


def generated_folder() -> str:
    """``$ROS_HOME/depthmarks_ros`` (ROS_HOME as rcl reads it: a leading ``~`` expanded, by default ``~/.ros``), the folder of the
    files the launch files and the runner generate, created 0700 for this user (an absolute path: a
    relative ROS_HOME is taken from the current folder once); PermissionError if it exists and is not
    this user's own private folder (another user could have planted files in it); an OSError that names
    ROS_HOME where it cannot be created (a read-only or missing home: set ROS_HOME to a writable folder)."""
    path = os.path.abspath(os.path.join(os.path.expanduser(os.environ.get('ROS_HOME') or '~/.ros'), PACKAGE))
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f'cannot create {path} for the generated launch files ({exc.strerror}): '
                                 'set ROS_HOME to a writable folder') from exc
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f'{path} is not a private folder of this user (owner uid {st.st_uid}, '
                              f'mode {stat.S_IMODE(st.st_mode):o}): remove it')
    return path


def content_file(folder: str, name: str, text: str) -> str:
    """``text`` as ``$ROS_HOME/depthmarks_ros/<folder>/<hash of text>/<name>``, written once per content
    (the launch file and the runner, or two launches, name the same file, and a launch adds no file
    that an earlier one with the same content wrote; two launches with different content, e.g. two
    rigs, each get their own; a concurrent writer replaces it whole). The folder is the user's own
    (:func:`generated_folder`): another user's launch writes its own files, and nobody else can put a
    file where this user's launch reads its parameters."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    out_dir = os.path.join(generated_folder(), folder, digest)
    path = os.path.join(out_dir, name)
    if not os.path.isfile(path):
        os.makedirs(out_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f'.{name}.')    # one per writer, threads included
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------- rviz
def rviz_config_text(graph: Graph, template_path: Optional[str] = None) -> str:
    """config/depthmarks.rviz with every display topic resolved through ``graph`` (namespace, remaps)
    and the fixed frame set to the graph's base frame."""
    cfg = read_yaml(template_path or os.path.join(package_config_dir(), 'depthmarks.rviz'))
    manager = cfg['Visualization Manager']
    manager['Global Options']['Fixed Frame'] = graph.fixed_frame
    for display in manager['Displays']:
        topic = display.get('Topic', {}).get('Value')
        if topic:
            topic = topic.lstrip('/')
            # a node-private (~) remap target resolves for a node: the publisher, else a reader
            publisher = next((n.name for n in graph.nodes if topic in dict(n.spec.outputs)), None)
            readers = [n.name for n in graph.nodes if topic in n.inputs()]
            for node in [publisher, *readers]:
                try:
                    display['Topic']['Value'] = graph.resolve_topic(topic, node)
                    break
                except ValueError as exc:
                    if 'needs the node' not in str(exc):
                        raise
    return yaml.safe_dump(cfg, sort_keys=False)


def write_rviz_config(graph: Graph, out_dir: Optional[str] = None) -> str:
    """:func:`rviz_config_text` as ``<out_dir>/depthmarks.rviz``, by default once per content
    (:func:`content_file`: a launch with rviz:=true adds no file an earlier one wrote)."""
    text = rviz_config_text(graph)
    if out_dir is None:
        return content_file('rviz', 'depthmarks.rviz', text)
    path = os.path.join(out_dir, 'depthmarks.rviz')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def write_params_file(path: str, node: NodeLaunch, key: str = '/**', config_dir: Optional[str] = None
                      ) -> Dict[str, object]:
    """The node's config file with its overrides applied (:func:`merged_parameters`), written to
    ``path`` under ``key`` (:meth:`ProcessLaunch.params_key`). Returns the parameters."""
    params = merged_parameters(node, config_dir)
    with open(path, 'w', encoding='utf-8') as f:
        yaml.dump({key: {'ros__parameters': params}}, f, Dumper=getattr(yaml, 'CSafeDumper', yaml.SafeDumper),
                  sort_keys=False)
    return params


def shared_process_params_file(node: NodeLaunch, key: str, config_dir: Optional[str] = None) -> str:
    """:func:`write_params_file` once per content (:func:`content_file`): what the launch files give a
    node of a shared process."""
    text = yaml.safe_dump({key: {'ros__parameters': merged_parameters(node, config_dir)}}, sort_keys=False)
    return content_file('params', f'{node.name}.yaml', text)


def merged_parameters(node: NodeLaunch, config_dir: Optional[str] = None) -> Dict[str, object]:
    """The node's parameters as it will hold them: its config file (``/**`` and its own name) and
    the overrides on top (what launch_ros does with ``parameters=[file, overrides]``)."""
    base = os.path.join(config_dir or package_config_dir(), node.params_file)
    params: Dict[str, object] = {}
    if os.path.isfile(base):
        for key, section in read_yaml(base).items():
            if params_key_matches(str(key), node.fully_qualified_name):
                params.update((section or {}).get('ros__parameters', {}))
    params.update(node.overrides)
    return params


def params_key_matches(key: str, fully_qualified_name: str) -> bool:
    """Does a parameter file's node key (``/**``, ``/*/stereo_depth``, ``stereo_depth``,
    ``/rig1/stereo_depth``) apply to the node ``fully_qualified_name``, as rcl decides it: a key
    without a leading slash is absolute (``stereo_depth`` is ``/stereo_depth``: not a node in a
    namespace), ``/**`` matches any number of name parts, ``/*`` exactly one."""
    k = key if key.startswith('/') else '/' + key
    pattern = re.escape(k).replace(r'/\*\*', r'(/\w+)*').replace(r'/\*', r'(/\w+)')
    return re.fullmatch(pattern, fully_qualified_name) is not None


