"""The depth process's per-topic publication mode (pipeline/publication.py): which topics go
asynchronous is derived from the node graph (which planned node reads which topic), the profiles file
names them as rmw_fastrtps looks them up, and the nodes' declared inputs are what they subscribe."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from depthmarks_ros.pipeline import graph as g
from depthmarks_ros.pipeline import publication as pb

Q = f'{{{pb.XMLNS}}}'


@pytest.fixture
def own_temp(tmp_path, monkeypatch):
    """The profiles files (graph.content_file, under $ROS_HOME) go to tmp_path."""
    monkeypatch.setenv('ROS_HOME', str(tmp_path))
    return tmp_path


def depth_process(graph):
    (proc,) = [p for p in graph.processes() if p.composed]
    return proc


def outputs(graph, proc):
    return [graph.resolve_topic(t) for n in proc.nodes for t in pb.writer_topics(n.spec)]


def test_rules_follow_which_process_reads_each_topic():
    """OUTBOUND: an output of the depth process that none of its own nodes reads; CROSSING: also one
    that a node of another process reads. Stereo's pair and depth, the LiDAR stay synchronous."""
    graph = g.plan(g.GraphConfig())
    proc = depth_process(graph)
    readers = graph.topic_readers()
    own = {n.name for n in proc.nodes}
    outbound = pb.asynchronous_topics(graph, proc, pb.OUTBOUND)
    crossing = pb.asynchronous_topics(graph, proc, pb.CROSSING)
    for topic in outputs(graph, proc):
        inside = set(readers.get(topic, ())) & own
        elsewhere = set(readers.get(topic, ())) - own
        assert (topic in outbound) == (not inside), topic
        assert (topic in crossing) == (not inside or bool(elsewhere)), topic
    for synchronous in ('/stereo/left/image_raw', '/stereo/left/camera_info', '/lidar/points', '/stereo/depth',
                        '/stereo/confidence'):
        assert synchronous not in crossing
    assert '/fusion/depth' in outbound and '/sim/depth_gt' in outbound     # face/body, the recorder only
    assert '/camera/image_raw' in crossing and '/camera/image_raw' not in outbound   # fusion in, face/body out
    assert set(outbound) < set(crossing)
    # the compressed twins of the image outputs (ros/image_publisher.py) are writers of their own
    assert {'/fusion/depth/compressedDepth', '/stereo/depth/compressedDepth', '/camera/image_raw/compressed',
            '/stereo/left/image_raw/compressed'} <= set(outbound)


def test_the_graph_decides_names_and_readers(tmp_path):
    """Namespace and remaps resolve the profile names; a node that is not planned reads nothing; a
    process of one node (compose:=false) gets no per-topic mode."""
    graph = g.plan(g.GraphConfig(namespace='/rig1', camera_ns='cam'))
    crossing = pb.asynchronous_topics(graph, depth_process(graph), pb.CROSSING)
    assert '/rig1/cam/image_raw' in crossing and '/rig1/fusion/depth' in crossing
    # a twin that a node of the process reads (fusion taking its depths compressed) stays synchronous
    import glob
    import shutil
    for f in glob.glob(os.path.join(g.package_config_dir(), '*.yaml')):
        shutil.copy(f, tmp_path)
    with open(tmp_path / 'depth_fusion.yaml', 'a', encoding='utf-8') as f:
        f.write('depth_fusion:\n  ros__parameters:\n    depth_transport: compressedDepth\n')
    graph = g.plan(g.GraphConfig())
    proc = depth_process(graph)
    assert '/stereo/depth/compressedDepth' not in pb.asynchronous_topics(graph, proc, pb.CROSSING, str(tmp_path))
    assert '/stereo/depth' in pb.asynchronous_topics(graph, proc, pb.OUTBOUND, str(tmp_path))
    # no face, no body: the camera image has no reader in another process, fusion alone reads it
    graph = g.plan(g.GraphConfig(face=False, body=False))
    assert '/camera/image_raw' not in pb.asynchronous_topics(graph, depth_process(graph), pb.CROSSING)
    # no fusion: nobody in the process reads stereo's depth any more
    graph = g.plan(g.GraphConfig(fusion=False))
    assert '/stereo/depth' in pb.asynchronous_topics(graph, depth_process(graph), pb.OUTBOUND)
    separate = g.plan(g.GraphConfig(compose=False))
    env = {pb.CONTAINER_MODE_ENV: 'CROSSING'}
    assert all(pb.process_env(separate, p, env) == {} for p in separate.processes())
    with pytest.raises(ValueError):
        pb.asynchronous_topics(graph, depth_process(graph), 'ASYNC')


def test_a_twin_follows_its_raw_topics_remap(tmp_path):
    """image_transport's rule on the graph side: a compressed twin (and a compressed input) hangs under
    its raw topic's resolved name; a rule naming the twin's full name still applies (graph.resolve_topic)."""
    remaps = (('stereo/depth', '/foo'), ('camera/image_raw', 'cam/image'), ('/foo/compressedDepth', '/bar'))
    assert g.resolve_topic('stereo/depth/compressedDepth', remaps[:1], '/ns') == '/foo/compressedDepth'
    assert g.resolve_topic('stereo/depth/compressedDepth', remaps, '/ns') == '/bar'
    assert g.resolve_topic('camera/image_raw/compressed', remaps, '/ns') == '/ns/cam/image/compressed'
    assert g.resolve_topic('fusion/depth/compressedDepth', remaps, '/ns') == '/ns/fusion/depth/compressedDepth'
    assert g.resolve_topic('stereo/depth/compressedDepth', (('stereo/depth/compressedDepth', 'x'),), '/ns') == '/ns/x'
    graph = g.plan(g.GraphConfig(namespace='/rig1', camera_ns='cam', stereo_ns='/pair'))
    outbound = pb.asynchronous_topics(graph, depth_process(graph), pb.OUTBOUND)
    assert {'/rig1/cam/image_raw/compressed', '/pair/left/image_raw/compressed'} <= set(outbound)
    assert not {'/rig1/camera/image_raw/compressed', '/rig1/stereo/left/image_raw/compressed'} & set(outbound)
    # a reader taking the remapped camera image compressed reads the twin the rig publishes
    import glob
    import shutil
    for f in glob.glob(os.path.join(g.package_config_dir(), '*.yaml')):
        shutil.copy(f, tmp_path)
    with open(tmp_path / 'depth_fusion.yaml', 'a', encoding='utf-8') as f:
        f.write('/**/depth_fusion:\n  ros__parameters:\n    image_transport: compressed\n')
    readers = graph.topic_readers(str(tmp_path))
    assert 'depth_fusion' in readers['/rig1/cam/image_raw/compressed']
    assert '/rig1/cam/image_raw/compressed' not in pb.asynchronous_topics(
        graph, depth_process(graph), pb.OUTBOUND, str(tmp_path))


def test_process_env_writes_the_profiles_file_rmw_reads(tmp_path, own_temp):
    """The base profile (the loopback transports) is kept, one data_writer profile per topic named
    after it, ASYNCHRONOUS, and AUTO so that rmw_fastrtps leaves the XML's mode; nothing where the
    environment sets rmw's mode itself or asks for no rule."""
    graph = g.plan(g.GraphConfig())
    proc = depth_process(graph)
    base = pb.loopback_profile()
    env = pb.process_env(graph, proc, {pb.CONTAINER_MODE_ENV: 'outbound', pb.PROFILES_ENV: base})
    assert env[pb.PUBLICATION_MODE_ENV] == 'AUTO' and env[pb.PROFILES_ENV].startswith(str(tmp_path))
    root = ET.parse(env[pb.PROFILES_ENV]).getroot()
    profiles = root.find(f'{Q}profiles')
    assert profiles.find(f'{Q}participant').get('is_default_profile') == 'true'
    assert profiles.find(f'{Q}transport_descriptors') is not None
    writers = {w.get('profile_name'): w.findtext(f'{Q}qos/{Q}publishMode/{Q}kind')
               for w in profiles.findall(f'{Q}data_writer')}
    assert writers == {t: 'ASYNCHRONOUS' for t in pb.asynchronous_topics(graph, proc, pb.OUTBOUND)}
    for environ in ({pb.CONTAINER_MODE_ENV: 'CROSSING', pb.PUBLICATION_MODE_ENV: 'SYNCHRONOUS'},
                    {pb.CONTAINER_MODE_ENV: 'ASYNCHRONOUS'}, {}):
        assert pb.process_env(graph, proc, environ) == {}
    bare = ET.fromstring(pb.profiles_xml(('/a',)))
    assert bare.find(f'{Q}profiles/{Q}data_writer').get('profile_name') == '/a'


PUBLISHER = """
import glob, json, sys, time
import rclpy
from rclpy.duration import Duration
from sensor_msgs.msg import Image


def asyn_wakeups():   # voluntary context switches of each of Fast DDS's asynchronous-writer threads
    out = {}
    for task in glob.glob('/proc/self/task/*'):
        try:
            name = open(task + '/comm').read().strip()
            if name.startswith('dds.asyn'):
                out[task] = [int(l.split()[1]) for l in open(task + '/status') if l.startswith('voluntary_ctxt')][0]
        except OSError:
            pass
    return out


rclpy.init()
node = rclpy.create_node('publication_probe_pub')
pub = node.create_publisher(Image, '/camera/image_raw', 10)
end = time.monotonic() + 20
while pub.get_subscription_count() < 1 and time.monotonic() < end:
    time.sleep(0.02)
time.sleep(0.3)
n, msg = int(sys.argv[1]), Image(height=100, width=100, encoding='rgb8', step=300, data=bytes(30000))
before = asyn_wakeups()
for _ in range(n):
    pub.publish(msg)
    time.sleep(0.01)
acked = pub.wait_for_all_acked(Duration(seconds=5))
after = asyn_wakeups()
print(json.dumps({'acked': acked, 'wakeups': max([after[t] - before.get(t, 0) for t in after] or [0])}))
"""

SUBSCRIBER = """
import sys, time, rclpy
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('publication_probe_sub')
got, last, seen = [], time.monotonic() + 20, 0
node.create_subscription(Image, '/camera/image_raw', got.append, 10)
while len(got) < int(sys.argv[1]) and time.monotonic() < last:
    rclpy.spin_once(node, timeout_sec=0.05)
    if len(got) > seen:
        seen, last = len(got), time.monotonic() + 2   # until 2 s pass without a sample (not 1 s after the first)
print('received', len(got))
node.destroy_node()
rclpy.shutdown()
"""


def publish_across_processes(env, n):
    """A subscriber in its own process (the environment's base profile), a publisher with ``env``:
    (what the publisher reports, how many the subscriber received)."""
    import json
    sub = subprocess.Popen([sys.executable, '-c', SUBSCRIBER, str(n)], stdout=subprocess.PIPE, text=True)
    try:
        res = subprocess.run([sys.executable, '-c', PUBLISHER, str(n)], env=env, capture_output=True, text=True,
                             timeout=60)
        out = sub.communicate(timeout=30)[0]
    finally:
        sub.kill()
    assert res.returncode == 0 and 'Error' not in res.stderr, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), int(out.split()[-1])


def test_the_profile_sends_the_writers_data_through_the_asynchronous_thread(tmp_path, own_temp):
    """Fast DDS accepts the generated file (with AUTO), the writer of a picked topic delivers to a
    reader in another process, and its samples go through Fast DDS's asynchronous thread: a
    ``dds.asyn`` thread of the publisher wakes about once per sample. Negative control: the same file
    with the profile named ``rt/camera/image_raw`` (the DDS topic name, not what rmw_fastrtps looks
    up) leaves the writer synchronous, no asynchronous thread wakes per sample. A count of wake-ups,
    not a timing: the samples are 10 ms apart, so a loaded machine merges few of them."""
    graph = g.plan(g.GraphConfig())
    base = pb.loopback_profile()
    env = dict(os.environ, **pb.process_env(graph, depth_process(graph), {
        pb.CONTAINER_MODE_ENV: 'CROSSING', pb.PROFILES_ENV: base}))
    assert env[pb.PROFILES_ENV].startswith(str(tmp_path))
    control = tmp_path / 'rt_named.xml'
    text = open(env[pb.PROFILES_ENV], encoding='utf-8').read()
    assert 'profile_name="/camera/image_raw"' in text
    control.write_text(text.replace('profile_name="/camera/image_raw"', 'profile_name="rt/camera/image_raw"'))
    n = 30
    ours, received = publish_across_processes(env, n)
    assert ours['acked'] and received > 0
    assert ours['wakeups'] >= n // 2, ours
    theirs, received = publish_across_processes(dict(env, **{pb.PROFILES_ENV: str(control)}), n)
    assert theirs['acked'] and received > 0
    assert theirs['wakeups'] < n // 3, theirs


def subscribed(node):
    return {t for t, _ in node.get_subscriber_names_and_types_by_node(node.get_name(), node.get_namespace())
            if t != '/parameter_events'}


RIG = os.path.join(g.package_config_dir(), 'sim_rig', 'rig.yaml')
# a graph whose sensor image topics are remapped (relative, absolute) under a namespace
REMAPPED = g.GraphConfig(namespace='/rig1', camera_ns='cam', stereo_ns='/pair')


class _StubModel:
    class info:
        source = 'stub'


@pytest.mark.parametrize('name, overrides', [
    ('stereo_depth', {}), ('stereo_depth', {'calibration_file': RIG}),
    ('stereo_depth', {'image_transport': 'compressed'}),
    ('depth_fusion', {'use_stereo': True}), ('depth_fusion', {'use_stereo': False, 'use_mono': True}),
    ('depth_fusion', {'use_stereo': True, 'use_mono': True, 'image_transport': 'compressed',
                      'depth_transport': 'compressedDepth'}),
    ('mono_depth', {}), ('mono_depth', {'reference_topic': 'fusion/depth', 'depth_transport': 'compressedDepth'}),
    ('face_landmarks', {}), ('face_landmarks', {'depth_topic': 'fusion/depth', 'image_transport': 'compressed'}),
    ('body_pose', {'depth_topic': 'stereo/depth', 'depth_transport': 'compressedDepth'}),
    ('stamp_merge', {'topics': ['mono/depth', 'face/landmarks'], 'instances': 2,
                     'message_types': ['sensor_msgs/msg/Image', 'sensor_msgs/msg/PointCloud2']}),
])
def test_declared_inputs_are_what_the_node_subscribes(rclpy_context, monkeypatch, name, overrides):
    """NodeSpec.inputs (what the rules read) against the started node's own subscriptions, for every
    node that subscribes, with the same parameters (variants that change the topics: calibration file,
    compressed transports, the optional depth / reference / mono inputs)."""
    import importlib
    from rclpy.parameter import Parameter
    from depthmarks_ros.pipeline.registry import load_node_class
    if name == 'mono_depth':   # no model to load here: a stand-in (the node subscribes once it has one)
        monkeypatch.setattr(importlib.import_module(g.NODES[name].module), 'load_depth_model',
                            lambda *a, **k: _StubModel())
    cls, reason = load_node_class(name)
    assert cls is not None, reason
    node = cls(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        launch = g.NodeLaunch(name, '', g.NODES[name].params_file, overrides, (), False)
        declared = {'/' + t for t in launch.inputs()}
        assert declared and subscribed(node) == declared
    finally:
        node.destroy_node()


def test_a_compressed_input_follows_its_raw_topics_remap(rclpy_context):
    """A node taking its pair compressed, started with the graph's namespace and remaps, subscribes the
    twins under the remapped raw names, as the graph resolves its inputs (image_transport's rule)."""
    from rclpy.parameter import Parameter
    from depthmarks_ros.pipeline.registry import load_node_class
    graph = g.plan(REMAPPED)
    cls, reason = load_node_class('stereo_depth')
    assert cls is not None, reason
    args = ['--ros-args', '-r', f'__ns:={REMAPPED.namespace}'] + [
        a for src, dst in graph.remappings for a in ('-r', f'{src}:={dst}')]
    node = cls(cli_args=args, parameter_overrides=[Parameter('image_transport', value='compressed')])
    try:
        launch = g.NodeLaunch('stereo_depth', REMAPPED.namespace, g.NODES['stereo_depth'].params_file,
                              {'image_transport': 'compressed'}, graph.remappings, False)
        declared = {graph.resolve_topic(t) for t in launch.inputs()}
        assert '/pair/left/image_raw/compressed' in declared and subscribed(node) == declared
    finally:
        node.destroy_node()


def test_nodes_and_graph_read_one_input_list():
    """One source per fact: NodeSpec.inputs are the functions of pipeline/node_inputs.py and the nodes
    build their subscriptions from the same functions (no topic list of their own)."""
    import inspect
    import re
    from depthmarks_ros.pipeline import node_inputs
    from depthmarks_ros.ros import camera_inputs
    for spec in g.NODES.values():
        assert spec.inputs.__module__ in (node_inputs.__name__, g.__name__), spec.name
    for module in [camera_inputs] + [__import__(g.NODES[n].module, fromlist=['x']) for n in
                                     ('stereo_depth', 'depth_fusion', 'mono_depth', 'stamp_merge')]:
        src = inspect.getsource(module)
        assert 'node_inputs.' in src and not re.search(r'\bInput\(|image_input\(', src), module.__name__


@pytest.mark.parametrize('name, cfg', [(n, g.GraphConfig()) for n in (
    'sim_rig', 'stereo_depth', 'depth_fusion', 'mono_depth', 'face_landmarks', 'body_pose')] + [('sim_rig', REMAPPED)])
def test_declared_twins_are_the_compressed_topics_the_node_publishes(rclpy_context, monkeypatch, name, cfg):
    """NodeSpec.twins (writers the rules pick from too), resolved through the graph, against the
    started node's publishers; the node started with the graph's namespace and remaps (a remapped
    image output takes its twin along, on both sides)."""
    import importlib
    from depthmarks_ros.pipeline.registry import load_node_class
    if name == 'mono_depth':
        monkeypatch.setattr(importlib.import_module(g.NODES[name].module), 'load_depth_model',
                            lambda *a, **k: _StubModel())
    cls, reason = load_node_class(name)
    assert cls is not None, reason
    graph = g.plan(cfg)
    args = ['--ros-args'] + (['-r', f'__ns:={cfg.namespace}'] if cfg.namespace else [])
    node = cls(cli_args=args + [a for src, dst in graph.remappings for a in ('-r', f'{src}:={dst}')])
    try:
        published = {t for t, _ in node.get_publisher_names_and_types_by_node(node.get_name(), node.get_namespace())}
        assert {t for t in published if t.endswith(('/compressed', '/compressedDepth'))} == \
            {graph.resolve_topic(t) for t in g.NODES[name].twins}
    finally:
        node.destroy_node()


def test_a_users_base_profiles_keep_their_own_writers_and_a_missing_base_is_named(tmp_path, own_temp):
    """A data_writer profile the user's base file already has for a picked topic is kept (one
    profile of that name, the user's mode) and named in a note; a base path that is not a file is
    named too (the file is built without it). The runner's async_topics (Setup.topics) are those
    the added profiles make asynchronous."""
    graph = g.plan(g.GraphConfig())
    proc = depth_process(graph)
    base = tmp_path / 'user.xml'
    base.write_text(f'<?xml version="1.0"?><dds xmlns="{pb.XMLNS}"><profiles><data_writer profile_name="/fusion/depth">'
                    '<qos><publishMode><kind>SYNCHRONOUS</kind></publishMode></qos></data_writer></profiles></dds>')
    setup = pb.process_setup(graph, proc, {pb.CONTAINER_MODE_ENV: 'OUTBOUND', pb.PROFILES_ENV: str(base)})
    writers = [(w.get('profile_name'), w.findtext(f'{Q}qos/{Q}publishMode/{Q}kind'))
               for w in ET.parse(setup.env[pb.PROFILES_ENV]).getroot().iter(f'{Q}data_writer')]
    assert [k for n, k in writers if n == '/fusion/depth'] == ['SYNCHRONOUS']
    assert '/fusion/depth' not in setup.topics and '/fusion/points' in setup.topics
    assert sorted(n for n, k in writers if k == 'ASYNCHRONOUS') == sorted(setup.topics)
    assert len(setup.notes) == 1 and '/fusion/depth' in setup.notes[0]
    missing = pb.process_setup(graph, proc, {pb.CONTAINER_MODE_ENV: 'OUTBOUND', pb.PROFILES_ENV: str(tmp_path / 'no.xml')})
    assert missing.env and len(missing.notes) == 1 and 'no.xml is not a file' in missing.notes[0]
    assert missing.topics == pb.asynchronous_topics(graph, proc, pb.OUTBOUND)
    for name, content in (('broken.xml', b'<dds><profiles>'), ('latin.xml', b'<dds>\xff\xfe</dds>')):
        (tmp_path / name).write_bytes(content)         # a bad file: named, the process publishes synchronously
        bad = pb.process_setup(graph, proc, {pb.CONTAINER_MODE_ENV: 'OUTBOUND', pb.PROFILES_ENV: str(tmp_path / name)})
        assert bad.env == {} and bad.topics == () and len(bad.notes) == 1 and name in bad.notes[0], bad


@pytest.mark.parametrize('ns', ['http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles', ''])
def test_a_base_profiles_file_in_another_namespace_or_none_gets_its_profiles_in_that_namespace(ns):
    """Fast DDS reads a profiles file in one namespace: the added writers take the base root's (the
    older fastRTPS_Profiles one the ROS 2 docs show, or none), not a second ``ns0:`` one; a writer the
    base already has is found in it too."""
    import xml.etree.ElementTree as ET
    xmlns = f' xmlns="{ns}"' if ns else ''
    base = (f'<?xml version="1.0"?><profiles{xmlns}><data_writer profile_name="/mine"><qos/></data_writer>'
            f'<participant profile_name="p" is_default_profile="true"><rtps/></participant></profiles>')
    assert pb.base_writer_profiles(base) == ('/mine',)
    text = pb.profiles_xml(('/mine', '/a'), base)
    assert 'ns0' not in text and ':data_writer' not in text, text
    root = ET.fromstring(text)
    q = f'{{{ns}}}' if ns else ''
    assert root.tag == f'{q}profiles'
    assert [w.get('profile_name') for w in root.iter(f'{q}data_writer')] == ['/mine', '/a']
    assert root.find(f'{q}data_writer[@profile_name="/a"]/{q}qos/{q}publishMode/{q}kind').text == 'ASYNCHRONOUS'
