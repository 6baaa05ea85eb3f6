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


def depth_process(graph):
    (proc,) = [p for p in graph.processes() if p.composed]
    return proc


def outputs(graph, proc):
    return [graph.resolve_topic(t) for n in proc.nodes for t, _ in n.spec.outputs]


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


def test_the_graph_decides_names_and_readers():
    """Namespace and remaps resolve the profile names; a node that is not planned reads nothing; a
    process of one node (compose:=false) gets no per-topic mode."""
    graph = g.plan(g.GraphConfig(namespace='/rig1', camera_ns='cam'))
    crossing = pb.asynchronous_topics(graph, depth_process(graph), pb.CROSSING)
    assert '/rig1/cam/image_raw' in crossing and '/rig1/fusion/depth' in crossing
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


def test_process_env_writes_the_profiles_file_rmw_reads(tmp_path):
    """The base profile (the loopback transports) is kept, one data_writer profile per topic named
    after it, ASYNCHRONOUS, and AUTO so that rmw_fastrtps leaves the XML's mode; nothing where the
    environment sets rmw's mode itself or asks for no rule."""
    graph = g.plan(g.GraphConfig())
    proc = depth_process(graph)
    base = os.path.join(g.package_config_dir(), 'fastdds_localhost.xml')
    env = pb.process_env(graph, proc, {pb.CONTAINER_MODE_ENV: 'outbound', pb.PROFILES_ENV: base})
    assert env[pb.PUBLICATION_MODE_ENV] == 'AUTO'
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


PROBE = """
import rclpy, time
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('publication_probe')
got = []
node.create_subscription(Image, '/camera/image_raw', got.append, 1)
pub = node.create_publisher(Image, '/camera/image_raw', 1)
end = time.monotonic() + 10
while not got and time.monotonic() < end:
    pub.publish(Image(width=1))
    rclpy.spin_once(node, timeout_sec=0.05)
print('received', len(got))
"""


def test_a_process_with_the_profiles_file_publishes_and_receives(tmp_path):
    """Fast DDS accepts the generated file (with AUTO) and the asynchronous writer delivers."""
    graph = g.plan(g.GraphConfig())
    env = dict(os.environ, **pb.process_env(graph, depth_process(graph), {
        pb.CONTAINER_MODE_ENV: 'CROSSING', pb.PROFILES_ENV: os.path.join(g.package_config_dir(), 'fastdds_localhost.xml')}))
    res = subprocess.run([sys.executable, '-c', PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert 'received' in res.stdout and 'received 0' not in res.stdout
    assert 'Error' not in res.stderr, res.stderr


def subscribed(node):
    return {t for t, _ in node.get_subscriber_names_and_types_by_node(node.get_name(), node.get_namespace())
            if t != '/parameter_events'}


@pytest.mark.parametrize('name, overrides', [('stereo_depth', {}), ('depth_fusion', {'use_stereo': True}),
                                             ('depth_fusion', {'use_stereo': False, 'use_mono': True})])
def test_declared_inputs_are_what_the_node_subscribes(rclpy_context, name, overrides):
    """NodeSpec.inputs (what the rules read) against the started node's own subscriptions."""
    from rclpy.parameter import Parameter
    from depthmarks_ros.pipeline.registry import load_node_class
    cls, reason = load_node_class(name)
    assert cls is not None, reason
    node = cls(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
    try:
        launch = g.NodeLaunch(name, '', g.NODES[name].params_file, overrides, (), False)
        assert subscribed(node) == {'/' + t for t in launch.inputs()}
    finally:
        node.destroy_node()
