"""The shared node conventions over real DDS: parameters, QoS, drops, diagnostics, bad input."""
import os
import time
from dataclasses import dataclass

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterType
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import InputParams, NodeParams
from depthmarks_ros.ros.node_base import DepthmarksNode

pytestmark = pytest.mark.dds


@dataclass
class ScaleParams(NodeParams):
    gain: int = param(2, 'multiplier', min=1, max=4)
    mode: str = param('fast', 'speed', choices=('fast', 'slow'))


class ScaleNode(DepthmarksNode):
    """Multiplies mono8 images by `gain` (slowly, to provoke overload)."""
    PARAMS = ScaleParams

    def __init__(self):
        super().__init__('scale_node_test')
        self.pub = self.create_publisher(Image, 'out', self.output_qos())
        self.worker = self.make_worker(self.process)
        self.create_subscription(Image, 'in', self.on_image, self.sensor_qos())
        self.changed = []

    def on_parameters_changed(self, names):
        self.changed.extend(names)

    def on_image(self, msg):
        self.stats.frame_in()
        self.worker.submit(msg)

    def process(self, msg):
        try:
            arr = image_to_numpy(msg)
        except ConversionError as exc:
            self.reject('bad_image', str(exc))
            return
        if self.p.mode == 'slow':
            time.sleep(0.2)
        out = numpy_to_image((arr * self.p.gain).astype(np.uint8), 'mono8', msg.header)
        self.pub.publish(out)
        self.stats.output(self.latency_since(msg.header))


@pytest.fixture
def scale_node(probe):
    node = ScaleNode()
    probe.add_node(node)
    return node


def test_parameters_have_descriptors_and_are_validated(scale_node):
    desc = scale_node.describe_parameter('gain')
    assert desc.type == ParameterType.PARAMETER_INTEGER
    assert (desc.integer_range[0].from_value, desc.integer_range[0].to_value) == (1, 4)
    assert not scale_node.set_parameters([Parameter('gain', value=9)])[0].successful
    assert not scale_node.set_parameters([Parameter('mode', value='turbo')])[0].successful
    assert scale_node.set_parameters([Parameter('gain', value=3)])[0].successful
    assert scale_node.p.gain == 3 and scale_node.changed == ['gain']
    assert not scale_node.set_parameters([Parameter('output_reliability', value='best_effort')])[0].successful


def test_processes_over_dds_and_survives_bad_input(probe, scale_node):
    out = probe.subscribe(Image, 'out', scale_node.output_qos())
    diags = probe.subscribe(DiagnosticArray, '/diagnostics', 10)
    pub = probe.publisher(Image, 'in')
    assert probe.wait_for_subscribers(pub)
    bad = numpy_to_image(np.ones((4, 4), np.uint8), 'mono8')
    bad.step = 1  # inconsistent
    pub.publish(bad)
    probe.spin_for(0.3)
    good = numpy_to_image(np.full((4, 4), 5, np.uint8), 'mono8')
    good.header.stamp = probe.node.get_clock().now().to_msg()
    assert probe.spin_until(lambda: (pub.publish(good), len(out) > 0)[1], timeout=10)
    assert image_to_numpy(out[0])[0, 0] == 10
    assert scale_node.stats.errors == 1
    assert probe.spin_until(lambda: any(s.name.startswith('scale_node_test') for d in diags for s in d.status), 5)
    status = [s for d in diags for s in d.status if s.name.startswith('scale_node_test')][-1]
    keys = {kv.key for kv in status.values}
    assert {'rate_hz', 'latency_ms_median', 'dropped', 'errors'} <= keys


def test_overloaded_node_drops_old_frames(probe, scale_node):
    scale_node.set_parameters([Parameter('mode', value='slow')])
    out = probe.subscribe(Image, 'out', scale_node.output_qos())
    pub = probe.publisher(Image, 'in')
    assert probe.wait_for_subscribers(pub)
    for i in range(20):
        msg = numpy_to_image(np.full((2, 2), i, np.uint8), 'mono8')
        msg.header.stamp.nanosec = i
        pub.publish(msg)
        probe.spin_for(0.02)
    probe.spin_until(lambda: scale_node.worker.wait_idle(0.01) and len(out) > 0, 10)
    probe.spin_for(0.5)
    assert len(out) < 10  # at 0.2 s a frame, most of the 20 frames in 0.4 s were dropped
    assert out[-1].header.stamp.nanosec == 19  # ... and the newest one was processed


def test_bad_start_up_parameter_gives_one_clear_line_and_exit_1():
    from depthmarks_ros.testing.ros_harness import NodeProcess
    node = NodeProcess('sim_rig', params={'scene': 'moon'}).start()
    node.proc.wait(60)
    out = node.output
    assert node.proc.returncode == 1, out
    assert 'cannot start:' in out and "'moon' is not one of" in out and 'Traceback' not in out
    node = NodeProcess('sim_rig', env={'DEPTHMARKS_EXECUTOR': 'fastest'}).start()
    node.proc.wait(60)
    assert node.proc.returncode == 1 and 'cannot start: DEPTHMARKS_EXECUTOR' in node.output, node.output


@pytest.mark.parametrize('choice', ['events', 'single'])
def test_node_process_runs_and_stops_on_sigint_under_each_executor(probe, choice):
    from depthmarks_ros.testing.ros_harness import NodeProcess
    diags = probe.subscribe(DiagnosticArray, '/diagnostics')
    images = probe.subscribe(Image, 'camera/image_raw')
    node = NodeProcess('sim_rig', params={'rate': 5.0, 'publish_ground_truth': False},
                       env={'DEPTHMARKS_EXECUTOR': choice}).start()
    try:
        assert probe.spin_until(lambda: len(images) >= 3 and diags, 30), node.output
        # the parameter services answer (what `ros2 param set` uses)
        from rclpy.parameter_client import AsyncParameterClient
        client = AsyncParameterClient(probe.node, 'sim_rig')
        assert client.wait_for_services(10.0)
        refused = client.set_parameters([Parameter('rate', value=20.0)])           # read-only
        accepted = client.set_parameters([Parameter('publish_ground_truth', value=False)])
        assert probe.spin_until(lambda: refused.done() and accepted.done(), 10)
        assert not refused.result().results[0].successful and accepted.result().results[0].successful
    finally:
        rc = node.stop()
    assert rc == 0, node.output   # SIGINT ends the spin loop under both executors


def test_executor_choice(monkeypatch):
    from rclpy.executors import SingleThreadedExecutor
    from depthmarks_ros.ros import executors
    monkeypatch.setenv(executors.ENV, 'single')
    ex, name = executors.make_executor()
    assert name == 'single' and isinstance(ex, SingleThreadedExecutor)
    monkeypatch.setenv(executors.ENV, 'events')
    ex, name = executors.make_executor()
    assert name == 'events' and not isinstance(ex, SingleThreadedExecutor)
    monkeypatch.setenv(executors.ENV, 'fast')
    with pytest.raises(ValueError, match='DEPTHMARKS_EXECUTOR'):
        executors.make_executor()


def test_each_distinct_reason_is_logged_once_within_the_throttle_period(scale_node):
    # issue 17.7: a second, different error inside the period used to show only on /diagnostics
    assert scale_node.log_problem('input', 'image 10x10 too small')
    assert not scale_node.log_problem('input', 'image 12x12 too small')      # same reason, other numbers
    assert scale_node.log_problem('input', 'camera_info has no calibration')  # another reason: logged
    assert scale_node.log_problem('other_key', 'image 10x10 too small')
    assert scale_node.set_parameters([Parameter('log_throttle_period', value=0.0)])[0].successful
    assert scale_node.log_problem('input', 'image 12x12 too small')


def test_a_lazily_built_message_is_built_once_and_a_builder_that_raises_does_not_escape(scale_node):
    calls = []

    def build():
        calls.append(1)
        return 'decode failed at 0x7f00'
    assert scale_node.log_problem('lazy', build) and calls == [1]               # built once, not twice
    assert not scale_node.log_problem('lazy', build)                            # throttled on its text
    assert scale_node.log_problem('lazy', lambda: 1 / 0, reason='broken')       # logged, not raised
    assert scale_node.log_problem('lazy2', lambda: 1 / 0)


def test_a_node_that_fails_to_start_leaves_nothing_behind(probe):
    class Refusing(DepthmarksNode):
        def __init__(self):
            super().__init__('refusing_node_test')
            self.create_publisher(Image, 'refusing_out', 1)
            raise ValueError('bad calibration')
    with pytest.raises(ValueError, match='bad calibration'):
        Refusing()
    probe.spin_for(0.3)
    assert probe.node.count_publishers('refusing_out') == 0
    assert 'refusing_node_test' not in probe.node.get_node_names()


def test_wanted_every_serves_the_first_frame_of_each_period_while_subscribed(probe, scale_node):
    pub = scale_node.pub
    assert not scale_node.wanted_every(pub, 0, 1.0)          # nobody subscribes: never computed
    probe.subscribe(Image, 'out', scale_node.output_qos())
    assert probe.spin_until(lambda: scale_node.wanted(pub), 10)
    s = 1_000_000_000
    served = [t for t in (5 * s, 5 * s + 1, int(5.9 * s), 6 * s + 3, int(6.5 * s), 8 * s)
              if scale_node.wanted_every(pub, t, 1.0)]
    assert served == [5 * s, 6 * s + 3, 8 * s]              # one per second of stamps, as the recorder keeps
    assert all(scale_node.wanted_every(pub, t, 0.0) for t in (1, 1, 2))   # period 0: every frame


def test_worker_threads_are_named_in_the_os(scale_node):
    import os
    import sys
    name, tid = scale_node.worker_threads()[0]
    assert name == 'scale_node_test-process'
    if sys.platform.startswith('linux'):
        assert scale_node.worker.wait_idle(5)
        with open(f'/proc/{os.getpid()}/task/{tid}/comm') as f:
            assert f.read().strip() == name[:15]   # the OS keeps 15 bytes


def _made_with_tap(probe, tap, *node_classes):
    """Nodes made while ``tap`` is installed for the probe's context (as `depthmarks run` makes them),
    spun with the probe."""
    from depthmarks_ros.ros import local_tap
    local_tap.install(probe.node.context, tap)
    try:
        nodes = [cls() for cls in node_classes]
    finally:
        local_tap.uninstall(probe.node.context)
    for node in nodes:
        probe.add_node(node)
    return nodes


def test_a_local_tap_gets_the_published_objects_and_dds_only_what_someone_subscribes(probe):
    from depthmarks_ros.ros import local_tap
    got = []
    tap = local_tap.LocalTap({'/out': got.append})
    node, = _made_with_tap(probe, tap, ScaleNode)
    assert isinstance(node.pub, local_tap.TappedPublisher)
    assert node.wanted(node.pub) and node.pub.get_subscription_count() == 1   # the tap counts as a subscriber
    msg = numpy_to_image(np.full((2, 2), 3, np.uint8), 'mono8')
    node.pub.publish(msg)
    assert got == [msg] and got[0] is msg and tap.delivered == 1              # the object itself: no copy
    node.pub._deliver = lambda m: 1 / 0                                        # a recorder callback that raises
    node.pub.publish(msg)                                                      # costs the node nothing
    assert tap.failed == 1 and tap.delivered == 1
    node.pub._deliver = got.append
    out = probe.subscribe(Image, 'out', node.output_qos())
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 2, 10)
    assert probe.spin_until(lambda: (node.pub.publish(msg), len(out) > 0)[1], 10)   # DDS once subscribed
    assert image_to_numpy(out[0])[0, 0] == 3 and len(got) > 1
    assert node.destroy_publisher(node.pub)                                    # the wrapped publisher goes


def test_destroy_publisher_unwraps_only_the_packages_own_wrappers(probe):
    """A TappedPublisher over a RecordedPublisher is unwrapped to rclpy's; any other object with a
    ``publisher`` attribute (a Mock, someone's wrapper) is not: rclpy's answer for it, False."""
    from types import SimpleNamespace
    from depthmarks_ros.ros import local_tap, recorded_topics
    node, = _made_with_tap(probe, local_tap.LocalTap({}), ScaleNode)
    wrapped = local_tap.TappedPublisher(recorded_topics.RecordedPublisher(node.pub, node, 10**9), None)
    assert node.destroy_publisher(wrapped) and node.pub not in node.publishers
    plain = node.create_publisher(Image, 'other', node.output_qos())
    assert not node.destroy_publisher(SimpleNamespace(publisher=plain)) and plain in node.publishers


def test_a_hand_over_publisher_destroyed_by_its_rclpy_publisher_leaves_the_diagnostics(probe):
    """Given the rclpy publisher inside the wrapper, destroy_publisher also drops the hand-over counts
    from /diagnostics, as it does given the wrapper."""
    from depthmarks_ros.ros import local_tap
    node, = _made_with_tap(probe, local_tap.LocalTap.hand_over_only(), HandOverNode)
    assert node._hand_over_values() == {'hand_over_messages': 0, 'hand_over_failed_messages': 0,
                                        'hand_over_dds_messages': 0}
    assert node.destroy_publisher(node.pub.publisher)
    assert node._hand_over_values() == {} and node.pub.publisher not in node.publishers


def test_a_tap_that_keeps_one_message_per_period_is_wanted_once_per_period_until_dds_subscribes(probe):
    from builtin_interfaces.msg import Time
    from depthmarks_ros.ros import local_tap
    got, s = [], 1_000_000_000
    node, = _made_with_tap(probe, local_tap.LocalTap({'/out': got.append}, {'/out': s}), ScaleNode)   # keeps 1 per second
    assert not node.wanted_at(probe.node.create_publisher(Image, 'untapped', 1), 0)   # no subscriber: not wanted

    def frame(t):   # a node's frame: ask, then build and publish only when wanted
        if not node.wanted_at(node.pub, t):
            return False
        msg = numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8')
        msg.header.stamp = Time(sec=t // s, nanosec=t % s)
        node.pub.publish(msg)
        return True
    assert node.wanted_at(node.pub, 5 * s) and node.wanted_at(node.pub, 5 * s)      # asking marks nothing
    assert [frame(t) for t in (5 * s, 5 * s + 3, 6 * s + 1, 6 * s + 9, 8 * s)] == [True, False, True, False, True]
    assert len(got) == 3
    out = probe.subscribe(Image, 'out', node.output_qos())                         # someone on DDS: every frame
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 2, 10)
    assert all(frame(8 * s + k) for k in range(3)) and len(got) == 6
    assert probe.spin_until(lambda: len(out) >= 1, 5)        # (keep-last output QoS: the newest at least)


class HandOverNode(DepthmarksNode):
    """Publishes 'out' handing the message objects to in-process inputs (stereo_depth's confidence)."""
    PARAMS = ScaleParams

    def __init__(self):
        super().__init__('hand_over_test')
        self.pub = self.create_publisher(Image, 'out', self.output_qos(), hand_over=True)


@dataclass(frozen=True)
class OneImage:
    image: object


class InputNodeParams(NodeParams, InputParams):
    pass


class InputNode(DepthmarksNode):
    """Takes 'out' through SyncedInputs (depth_fusion's stereo/confidence)."""
    PARAMS = InputNodeParams

    def __init__(self):
        super().__init__('input_test')
        from depthmarks_ros.ros.synced_inputs import image_input
        self.got = []
        self.inputs = self.synced_inputs([image_input('image', 'out')], OneImage, lambda s: self.got.append(s.image))


def test_a_hand_over_publisher_gives_in_process_inputs_the_object_and_dds_only_what_others_subscribe(probe):
    from builtin_interfaces.msg import Time
    from depthmarks_ros.ros import local_tap
    recorded = []
    tap = local_tap.LocalTap({'/out': recorded.append})
    node, consumer, plain = _made_with_tap(probe, tap, HandOverNode, InputNode, ScaleNode)   # plain: no hand_over
    assert tap.inputs('/out') and probe.spin_until(lambda: node.pub.publisher.get_subscription_count() == 1, 10)

    def message(sec):
        msg = numpy_to_image(np.full((2, 2), sec, np.uint8), 'mono8', copy=False)
        msg.header.stamp = Time(sec=sec)
        return msg
    first = message(1)
    node.pub.publish(first)          # only the consumer's DDS reader: the object, in this thread, no DDS
    assert probe.spin_until(lambda: len(consumer.got) == 1, 5) and consumer.got[0] is first
    assert recorded == [first] and tap.handed_over == 1
    probe.spin_for(0.3)
    assert len(consumer.got) == 1    # nothing came through DDS as well
    third = message(3)
    plain.pub.publish(third)         # a tapped publisher without hand_over: DDS, as before
    assert probe.spin_until(lambda: len(consumer.got) == 2, 10)
    assert consumer.got[1] is not third and consumer.got[1] == third and tap.handed_over == 1
    del consumer.got[1:]
    out = probe.subscribe(Image, 'out', node.output_qos())    # another subscriber: DDS for everyone
    assert probe.spin_until(lambda: node.pub.publisher.get_subscription_count() == 2, 10)
    second = message(2)
    node.pub.publish(second)
    assert probe.spin_until(lambda: len(out) == 1 and len(consumer.got) == 2, 10)
    assert consumer.got[1] is not second and consumer.got[1] == second and tap.handed_over == 1
    probe.spin_for(0.3)
    assert len(consumer.got) == 2    # once
    consumer.shutdown()              # a node that goes takes its inputs off the tap
    assert tap.inputs('/out') == ()


class _Reader:
    """A stand-in for an input's own DDS reader: ``matched`` publishers; counts the times asked."""

    def __init__(self, matched: int = 0):
        self.matched, self.asked = matched, 0

    def get_publisher_count(self) -> int:
        self.asked += 1
        return self.matched


def test_a_subscriber_outside_that_matched_first_is_not_taken_for_the_inputs_reader(probe):
    """The hand-over counts subscribers, not which ones: an outside subscriber (RViz) counted while
    the input's own reader has not matched yet must still get every message through DDS. Handed over
    only once the reader has matched, which is remembered (not asked per message) until the input
    is removed."""
    from std_msgs.msg import String
    from depthmarks_ros.ros import local_tap
    recorded, got = [], []
    take = got.append                  # one object: remove_input finds the callback by identity
    tap = local_tap.LocalTap({'/tap_match': recorded.append})
    reader = _Reader(0)
    tap.add_input('/tap_match', take, reader)
    pub = local_tap.TappedPublisher(probe.node.create_publisher(String, 'tap_match', 10), recorded.append, tap,
                                    hand_over=True)
    outside = probe.subscribe(String, 'tap_match', 10)
    assert probe.spin_until(lambda: pub.publisher.get_subscription_count() == 1, 10)   # = len(inputs)
    assert not pub.hands_over()
    pub.publish(String(data='1'))      # the input's reader not matched: through DDS, as without the hand-over
    assert probe.spin_until(lambda: len(outside) == 1, 5) and outside[0].data == '1'
    assert got == [] and tap.handed_over == 0 and len(recorded) == 1
    reader.matched = 1                 # now the subscriber counted is the input's reader
    assert pub.hands_over()
    second = String(data='2')
    pub.publish(second)
    assert got == [second] and got[0] is second and tap.handed_over == 1 and len(recorded) == 2
    asked = reader.asked
    for k in range(3):
        pub.publish(String(data=str(3 + k)))
    assert reader.asked == asked and tap.handed_over == 4      # remembered: no C call per message
    probe.spin_for(0.2)
    assert len(outside) == 1           # handed over, not through DDS as well
    tap.remove_input('/tap_match', take)
    again = _Reader(0)                 # the input removed and added again: its reader is asked anew
    tap.add_input('/tap_match', take, again)
    pub.publish(String(data='7'))
    assert again.asked == 1 and tap.handed_over == 4 and len(got) == 4
    assert probe.spin_until(lambda: len(outside) == 2, 5) and outside[1].data == '7'


def test_an_input_whose_subscription_was_destroyed_behind_the_node_is_dropped_and_publish_goes_on(probe):
    """A subscription destroyed directly (``sub.destroy()``, not destroy_subscription, which removes the
    input first) raises on get_publisher_count: the tap drops that input (its reader is gone) instead
    of raising into the publisher's frame, and the topic's other input is handed the message, not held
    back by it."""
    import rclpy
    from std_msgs.msg import String
    from depthmarks_ros.ros import local_tap
    recorded, gone_got, other_got = [], [], []
    tap = local_tap.LocalTap({'/tap_gone': recorded.append})
    owner = rclpy.create_node(f'tap_gone_owner_{os.getpid()}')    # not spun: its destroyed handle stays out of the executor
    try:
        sub = owner.create_subscription(String, 'tap_gone', gone_got.append, 10)
        gone, other = gone_got.append, other_got.append
        tap.add_input('/tap_gone', gone, sub)
        tap.add_input('/tap_gone', other, _Reader(1))
        pub = local_tap.TappedPublisher(probe.node.create_publisher(String, 'tap_gone', 10), recorded.append, tap,
                                        hand_over=True)
        sub.destroy()                   # behind the node's back: its handle is gone
        msg = String(data='1')
        pub.publish(msg)
        assert tap.inputs('/tap_gone') == (other,)
        assert other_got == [msg] and gone_got == [] and tap.handed_over == 1 and len(recorded) == 1
    finally:
        owner.destroy_node()


def test_a_node_input_gets_nothing_handed_over_before_its_reader_has_matched(probe):
    """create_input_subscription registers the input's subscription with the tap: while it reports
    no matched publisher, the message goes through DDS to it (once, a copy); once matched, the object."""
    from builtin_interfaces.msg import Time
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap({'/out': lambda m: None})
    node, consumer = _made_with_tap(probe, tap, HandOverNode, InputNode)
    assert probe.spin_until(lambda: node.pub.publisher.get_subscription_count() == 1, 10)
    sub = consumer.inputs.subscriptions[0]
    sub.get_publisher_count = lambda: 0          # as if its reader had not matched yet

    def message(sec):
        msg = numpy_to_image(np.full((2, 2), sec, np.uint8), 'mono8', copy=False)
        msg.header.stamp = Time(sec=sec)
        return msg
    first = message(1)
    node.pub.publish(first)
    assert probe.spin_until(lambda: len(consumer.got) == 1, 5)
    assert consumer.got[0] is not first and consumer.got[0] == first and tap.handed_over == 0
    del sub.get_publisher_count                  # matched
    second = message(2)
    node.pub.publish(second)
    assert probe.spin_until(lambda: len(consumer.got) == 2, 5) and consumer.got[1] is second
    probe.spin_for(0.3)
    assert len(consumer.got) == 2 and tap.handed_over == 1     # each message once


def test_in_a_process_of_several_nodes_the_inputs_get_every_message_once_and_the_recorder_its_periods(
        probe, monkeypatch):
    """A container's hand-over-only tap (ros/local_tap.py; run_nodes installs it for several nodes):
    while the input alone subscribes, every message is handed over and DDS carries none; with the
    recorder of another process besides it (a node named like it, the runner's record period in the
    environment), the first message of each period goes through DDS to both, the others are handed
    over; with anyone else, every message goes through DDS. The input gets each message once, and the
    publisher's /diagnostics count what went where."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from depthmarks_ros.convert.stamps import stamp_ns
    from depthmarks_ros.ros import local_tap, recorded_topics
    monkeypatch.setenv(*recorded_topics.recorded_periods_env({'/out': 10**9}).popitem())
    tap = local_tap.LocalTap.hand_over_only()
    node, consumer = _made_with_tap(probe, tap, HandOverNode, InputNode)
    assert isinstance(node.pub.publisher, recorded_topics.RecordedPublisher) and tap.inputs('/out')
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 1, 10)   # the input's reader only

    def send(stamps):
        """Publish one message per stamp (ns), each once the input has taken the one before."""
        sent = []
        for stamp in stamps:
            msg = numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8', copy=False)
            msg.header.stamp = Time(sec=stamp // 10**9, nanosec=stamp % 10**9)
            node.pub.publish(msg)
            sent.append(msg)
            assert probe.spin_until(lambda: len(consumer.got) == len(sent), 5), (stamp, len(consumer.got))
        probe.spin_for(0.3)
        got = consumer.got[:]
        del consumer.got[:]
        assert [stamp_ns_of(m) for m in got] == list(stamps)      # each once, in order
        return [m is s for m, s in zip(got, sent)]                # handed over: the object itself

    def stamp_ns_of(msg):
        return stamp_ns(msg.header)
    assert send([1 * 10**9 + k * 10**8 for k in range(5)]) == [True] * 5      # DDS carries none
    assert tap.topic_counts('/out') == {'handed_over': 5, 'hand_over_failed': 0, 'dds': 0}
    recorder = rclpy.create_node(recorded_topics.RECORDER_NODE)
    probe.add_node(recorder)
    kept = []
    recorder.create_subscription(Image, 'out', kept.append,
                                 QoSProfile(reliability=ReliabilityPolicy.RELIABLE, depth=20))
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 2, 10)
    ours = (('input_test', '/'),)                                             # the input's node, as the graph names it
    assert probe.spin_until(lambda: node.pub.publisher.only_recorder(ours), 5)   # the graph names it
    stamps = [10 * 10**9 + k * 10**8 for k in range(25)]                      # 2.5 s at 10 Hz
    assert send(stamps) == [s % 10**9 != 0 for s in stamps]                   # the periods' firsts: DDS
    assert probe.spin_until(lambda: len(kept) == 3, 5)
    assert [stamp_ns_of(m) for m in kept] == [10 * 10**9, 11 * 10**9, 12 * 10**9]
    assert tap.topic_counts('/out') == {'handed_over': 27, 'hand_over_failed': 0, 'dds': 3}
    other = probe.subscribe(Image, 'out', node.output_qos())                  # RViz, ros2 topic echo
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 3, 10)
    assert send([13 * 10**9 + k * 10**8 for k in range(1, 4)]) == [False] * 3  # every message through DDS
    assert probe.spin_until(lambda: len(other) == 3 and len(kept) == 6, 5)
    diagnostics = probe.subscribe(DiagnosticArray, '/diagnostics', 10)
    assert probe.spin_until(lambda: (node.publish_diagnostics(), any(
        s.name == 'hand_over_test: processing' for a in diagnostics for s in a.status))[1], 5)
    values = {v.key: v.value for a in diagnostics for s in a.status if s.name == 'hand_over_test: processing'
              for v in s.values}
    assert (values['hand_over_messages'], values['hand_over_dds_messages'], values['hand_over_failed_messages']) == (
        '27', '6', '0')
    probe.spin_for(1.0)
    assert consumer.got == []      # no late second copy of any message (a late one of an earlier phase
    #                                would have failed that phase's order check in send)


def test_inputs_read_the_clock_only_where_a_stamp_may_be_ahead(probe, monkeypatch):
    """SyncedInputs reports stamps > 5 s ahead of the node's clock, reading the clock (an rclpy Time
    per read) only where a stamp may be: beyond the tolerance of a reading < CLOCK_READING_S old, or
    after a jump back."""
    from types import SimpleNamespace
    from builtin_interfaces.msg import Time
    from depthmarks_ros.ros import synced_inputs
    # the reading's age is set by hand below; a long reuse time keeps a loaded machine's pauses out of it
    monkeypatch.setattr(synced_inputs, 'CLOCK_READING_S', 600.0)
    node = InputNode()
    probe.add_node(node)
    clock, reads = node.get_clock(), []
    node.get_clock = lambda: SimpleNamespace(now=lambda: (reads.append(1), clock.now())[1])
    cb, s = node.inputs._make_cb(0), 1_000_000_000

    def send(ahead_s):
        msg = numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8')
        t = clock.now().nanoseconds + int(ahead_s * s)
        msg.header.stamp = Time(sec=t // s, nanosec=t % s)
        cb(msg)
    for ahead in (0.0, 0.1, 3.0, -2.0):
        send(ahead)
    assert len(reads) == 1 and 'ahead' not in node.inputs.status()[1]
    send(3600.0)                                      # may be ahead: read, and reported
    assert len(reads) == 2 and 'ahead of this node' in node.inputs.status()[1]
    node.inputs._on_clock_jump(SimpleNamespace(delta=SimpleNamespace(nanoseconds=-2 * s)))
    send(0.0)                                         # after a jump back the reading is not trusted
    assert len(reads) == 3
    reading = node.inputs._clock_reading
    node.inputs._clock_reading = (reading[0], reading[1] - 601.0)
    send(0.0)                                         # nor once it is older than CLOCK_READING_S
    assert len(reads) == 4
    jumped = []

    def read_then_jump():     # the clock jumps back between this read and the store of its reading
        now = clock.now()
        if not jumped:
            jumped.append(1)
            node.inputs._on_clock_jump(SimpleNamespace(delta=SimpleNamespace(nanoseconds=-2 * s)))
        return now
    node.get_clock = lambda: SimpleNamespace(now=read_then_jump)
    node.inputs._clock_reading = None
    send(0.0)
    assert jumped and node.inputs._clock_reading is None     # the reading from before the jump is not kept


def test_a_handed_over_input_that_raises_is_counted_and_logged_and_the_publisher_goes_on(probe, monkeypatch):
    """The input's callback runs in the publisher's thread; its exception does not reach the
    publisher: counted in the tap, logged (throttled, with the traceback) by the publishing node."""
    import threading
    from builtin_interfaces.msg import Time
    from depthmarks_ros.ros import local_tap
    recorded = []
    tap = local_tap.LocalTap({'/out': recorded.append})
    node, consumer = _made_with_tap(probe, tap, HandOverNode, InputNode)
    assert probe.spin_until(lambda: node.pub.publisher.get_subscription_count() == 1, 10)
    threads, logged = [], []
    from types import SimpleNamespace
    node.get_logger = lambda: SimpleNamespace(warning=logged.append, error=logged.append)   # through log_problem

    addresses = ['0x7f3ab4c2d0e8', '0x7f3ab4c2fa10', '0x7f19cc0b7e50']

    def failing(index, inp, msg):      # the input's callback fails early (a bug in it)
        threads.append(threading.get_ident())
        raise RuntimeError(f'input broke at {addresses[len(threads) - 1]}')   # a text that varies per frame
    consumer.inputs._too_large = failing
    formatted = []
    real_format = local_tap.traceback.format_exception
    monkeypatch.setattr(local_tap.traceback, 'format_exception',
                        lambda *a, **k: formatted.append(1) or real_format(*a, **k))
    for sec in (1, 2, 3):
        msg = numpy_to_image(np.full((2, 2), sec, np.uint8), 'mono8')
        msg.header.stamp = Time(sec=sec)
        node.pub.publish(msg)          # does not raise
    assert threads == [threading.get_ident()] * 3 and len(recorded) == 3
    assert tap.input_failed == 3 and tap.handed_over == 0 and tap.counts()['input_failed'] == 3
    # per topic too, and in the publishing node's /diagnostics: handed over, but the input missed them
    assert tap.topic_counts('/out') == {'handed_over': 0, 'hand_over_failed': 3, 'dds': 0}
    sent = []
    node._diag_pub = SimpleNamespace(publish=sent.append)
    node.publish_diagnostics()
    values = {v.key: v.value for v in sent[-1].status[0].values}
    assert (values['hand_over_messages'], values['hand_over_failed_messages'], values['hand_over_dds_messages']) == (
        '0', '3', '0')
    # throttled on the topic and the exception's type, not its text; the traceback built only when logged
    assert len(logged) == 1 and 'input broke' in logged[0] and 'Traceback' in logged[0] and '/out' in logged[0]
    assert len(formatted) == 1
    del consumer.inputs._too_large     # fixed: handed over again
    node.pub.publish(msg)
    assert tap.handed_over == 1 and probe.spin_until(lambda: len(consumer.got) == 1, 5)
    assert tap.topic_counts('/out') == {'handed_over': 1, 'hand_over_failed': 3, 'dds': 0}


def test_tap_counts_from_many_publishing_threads_are_exact_and_consistent(probe):
    """Publishers of several nodes count into one tap from their own threads: the totals are exact and
    every snapshot of ``counts()`` sees whole messages (a handed-over message counts once for the
    recorder and once per input together)."""
    import sys
    import threading
    from std_msgs.msg import String
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap({'/tap_race': lambda m: None})

    def recorder(msg):
        if int(msg.data) % 3 == 0:
            raise RuntimeError('recorder broke')

    def flaky_input(msg):
        if int(msg.data) % 5 == 0:
            raise RuntimeError('input broke')
    tap.add_input('/tap_race', lambda m: None)
    tap.add_input('/tap_race', flaky_input)
    pubs = [local_tap.TappedPublisher(probe.node.create_publisher(String, 'tap_race', 10), recorder, tap,
                                      hand_over=True) for _ in range(6)]
    assert all(p.hands_over() for p in pubs)
    n, torn, done = 2000, [], threading.Event()

    def publish(pub):
        for i in range(n):
            pub.publish(String(data=str(i)))

    def watch():
        while not done.is_set():
            c = tap.counts()
            if c['handed_over'] + c['input_failed'] != 2 * (c['delivered'] + c['failed']) and not torn:
                torn.append(c)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)   # threads switch often (at 5 ms a torn count is seen rarely)
    try:
        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=publish, args=(p,)) for p in pubs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        watcher.join()
    finally:
        sys.setswitchinterval(interval)
    fails = len(pubs) * len(range(0, n, 3))
    input_fails = len(pubs) * len(range(0, n, 5))
    assert tap.counts() == {'delivered': len(pubs) * n - fails, 'failed': fails,
                            'handed_over': 2 * len(pubs) * n - input_fails, 'input_failed': input_fails}
    assert not torn, f'a torn snapshot: {torn}'


def test_the_recorder_gets_a_handed_over_message_before_the_inputs(probe):
    """The recorder's latency runs to the publish call: it is not delayed by the inputs' callbacks."""
    from depthmarks_ros.ros import local_tap
    order = []
    tap = local_tap.LocalTap({'/out': lambda m: order.append('recorder')})
    node, consumer = _made_with_tap(probe, tap, HandOverNode, InputNode)
    assert probe.spin_until(lambda: node.pub.publisher.get_subscription_count() == 1, 10)
    consumer.inputs._too_large = lambda *a: order.append('input')
    node.pub.publish(numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8'))
    assert order == ['recorder', 'input']


def test_an_input_subscription_destroyed_leaves_the_tap(probe):
    """Each input on the tap owns one DDS reader (the hand-over's count relies on it): an
    input subscription destroyed on its own is taken off the tap too."""
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap({'/out': lambda m: None})
    node, consumer = _made_with_tap(probe, tap, HandOverNode, InputNode)
    assert len(tap.inputs('/out')) == 1
    assert consumer.destroy_subscription(consumer.inputs.subscriptions[0])
    assert tap.inputs('/out') == () and not node.pub.hands_over()


def test_sets_completed_in_two_threads_reach_the_worker_in_completion_order(probe):
    """In one process an input's callbacks run in the executor's thread and a publisher's: a set
    that completed first is submitted first, so the latest-only worker never keeps an older set."""
    import threading
    from builtin_interfaces.msg import Time
    node = InputNode()
    probe.add_node(node)
    worker, submitted = node.inputs.worker, []
    in_submit, go = threading.Event(), threading.Event()

    def submit(item):              # the first submit stalls (its thread descheduled there)
        if not submitted:
            submitted.append(None)
            in_submit.set()
            go.wait(5)
        submitted.append(item.image.header.stamp.sec)
    worker.submit = submit
    cb = node.inputs._make_cb(0)

    def send(sec):
        msg = numpy_to_image(np.zeros((2, 2), np.uint8), 'mono8')
        msg.header.stamp = Time(sec=sec)
        cb(msg)
    first = threading.Thread(target=send, args=(1,))
    first.start()
    assert in_submit.wait(5)       # set 1 complete, its submit under way
    second = threading.Thread(target=send, args=(2,))
    second.start()
    second.join(0.5)               # set 2 completes after set 1: it must wait for set 1's submit
    go.set()
    first.join(5)
    second.join(5)
    assert submitted[1:] == [1, 2]


def test_stop_and_join_asks_every_node_first_then_joins_all_against_one_deadline():
    """run_nodes and `depthmarks run` stop a process's nodes together: every node's workers are asked
    to stop before any is joined, and every join shares one deadline (not WORKERS_JOIN_S each)."""
    from depthmarks_ros.ros import node_base
    events = []

    class Workers:
        def __init__(self, name):
            self.name = name

        def stop_workers(self):
            events.append(('stop', self.name))

        def shutdown(self, deadline=None):
            events.append(('join', self.name, deadline))

    class NoWorkers:                    # the recorder, the player: a plain shutdown() if any
        def shutdown(self):
            events.append(('shutdown',))
    before = time.monotonic()
    node_base.stop_and_join([Workers('a'), NoWorkers(), Workers('b')], timeout=3.0)
    assert events[:2] == [('stop', 'a'), ('stop', 'b')]
    joins = [e for e in events if e[0] == 'join']
    assert [e[1] for e in joins] == ['a', 'b'] and joins[0][2] == joins[1][2]
    assert before + 3.0 <= joins[0][2] <= time.monotonic() + 3.0 and ('shutdown',) in events
