"""The recorder of multi-process runs: only what it writes crosses DDS, and is built.

Real DDS, in-process (the probe's publisher and the recorder node): the filtered topic delivers about
one message per record period, the unfiltered one every message, both write the same instants;
stamps that went back two periods or more pass the filter; a filter that let nothing through for
reopen_after is opened again; the DDS filters only with DEPTHMARKS_RECORDER_FILTER=1 (off by default: Fast DDS
crashes, docs/pipeline.md "Known issues"), the topics are recorded once per period (and named to the node processes)
either way. A node's publisher of a topic named in DEPTHMARKS_RECORDED_PERIODS (what the runner
gives its node processes) wants a message only for the first stamp of each period while the recorder
is its only subscriber, every one with another subscriber, none with none.
"""
import json

import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.pipeline.recorder import TopicStats
from depthmarks_ros.pipeline.recorder_node import RecordedTopic, RecorderNode, stamp_filter_params
from depthmarks_ros.ros import recorded_topics

QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=20)
IMAGE = 'sensor_msgs/msg/Image'


class WrittenStamps:
    """Stands in for McapRecorder: what would be written, per topic."""

    def __init__(self):
        self.stamps = {}

    def channel(self, topic, type_name, offered_qos=''):
        self.stamps.setdefault(topic, [])

    def write(self, topic, data, log_ns, stamp_ns=None):
        self.stamps[topic].append(stamp_ns)


def _image(stamp_s: float) -> Image:
    msg = Image(height=2, width=2, encoding='mono8', step=2, data=bytes(4))
    ns = round(stamp_s * 1e9)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    return msg


@pytest.fixture
def filter_on(monkeypatch):
    """The DDS stamp filter is opt-in (DEPTHMARKS_RECORDER_FILTER=1)."""
    monkeypatch.setenv('DEPTHMARKS_RECORDER_FILTER', '1')


def _recorder(probe, names, filtered, **kwargs):
    written, stats = WrittenStamps(), TopicStats()
    node = RecorderNode([RecordedTopic(n, n, IMAGE) for n in names], stats, written, 1.0, filtered=filtered,
                        **kwargs)
    probe.add_node(node)
    pubs = {n: probe.publisher(Image, n, QOS) for n in names}
    for pub in pubs.values():
        assert probe.wait_for_subscribers(pub)
    return node, written, stats, pubs


def _send(probe, pubs, stamps, stats, names):
    for stamp in stamps:
        for pub in pubs.values():
            pub.publish(_image(stamp))
        probe.spin_for(0.02)
    probe.spin_until(lambda: all(stats.count[n] >= 1 for n in names), 5.0)
    probe.spin_for(0.3)


def test_first_of_period_takes_the_first_stamp_of_each_period_asking_marks_nothing():
    from depthmarks_ros.convert.stamps import FirstOfPeriod
    first = FirstOfPeriod(10)
    assert first.wanted(5) and first.wanted(5)
    assert [first.take(t) for t in (5, 9, 10, 19, 3, 3, 25)] == [True, False, True, False, True, False, True]
    assert all(FirstOfPeriod(0).take(t) for t in (1, 1))     # period 0: every stamp
    zero = FirstOfPeriod(10)
    assert all(zero.take(0) for _ in range(3))                 # an unstamped source: every message
    assert zero.take(15) and not zero.take(16)                 # and a zero stamp marked nothing


def _passes(params, stamp_ns):
    """STAMP_FILTER (recorder_node) evaluated in Python for a header stamp of ``stamp_ns``."""
    start_sec, start_nsec, back = (int(p) for p in params)
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return sec > start_sec or (sec == start_sec and nsec >= start_nsec) or sec < back


def test_stamp_filter_params_from_the_next_period_across_the_whole_second():
    s = 1_000_000_000
    # 1 s periods: the next period starts on the next whole second (nanosec 0, never 1e9)
    assert stamp_filter_params(5 * s - 1, s) == ('5', '0', '3')
    assert stamp_filter_params(5 * s, s) == ('6', '0', '4')
    assert stamp_filter_params(s // 10, s) == ('1', '0', '0')          # early stamps: nothing before 0
    # 250 ms periods: the last one of a second rolls over into the next second
    assert stamp_filter_params(4 * s + 800_000_000, s // 4) == ('5', '0', '4')
    assert stamp_filter_params(4 * s + 600_000_000, s // 4) == ('4', '750000000', '4')
    for period in (s, s // 4, 333_333_333, 1_000_000):
        for kept in (5 * s - 1, 5 * s, 5 * s + 1, 7 * s - period, 7 * s - period - 1):
            params = stamp_filter_params(kept, period)
            start = (kept // period + 1) * period
            assert 0 <= int(params[1]) < s
            assert _passes(params, start) and not _passes(params, start - 1) and not _passes(params, kept)
            # older stamps (went back two periods and a whole second more) pass for the recorder to judge
            assert _passes(params, start - 2 * period - s) and not _passes(params, start - 2 * period)


def test_filtered_topic_receives_only_what_it_writes(probe, filter_on):
    names = ['rec_filter_a/filtered', 'rec_filter_a/plain']
    node, written, stats, pubs = _recorder(probe, names, filtered=[names[0]])
    assert list(node.filters) == [names[0]]          # Fast DDS content filter in place
    _send(probe, pubs, [10.0], stats, names)
    # more of period 10 (already written) until the filter, moved on, drops some at the publisher
    # (it reaches the publishing side through discovery: no fixed wait)
    sent = 1
    for i in range(1, 100):
        for pub in pubs.values():
            pub.publish(_image(10.0 + 0.009 * i))
        sent += 1
        assert probe.spin_until(lambda: stats.count[names[1]] == sent, 5.0)
        if stats.count[names[0]] < sent - 2:
            break
    stamps = [11.0 + 0.1 * i for i in range(20)]     # two more record periods of 1 s
    _send(probe, pubs, stamps, stats, names)
    assert probe.spin_until(lambda: stats.count[names[1]] == sent + 20, 5.0)
    # both write the first message of each period; the filtered one let less through
    for n in names:
        assert [s // 1_000_000_000 for s in written.stamps[n]] == [10, 11, 12]
    assert stats.count[names[0]] < stats.count[names[1]], stats.count


def test_stamps_that_go_back_pass_the_filter(probe, filter_on):
    """A looping bag, a restarted simulation, a second publisher of older stamps: stamps two record
    periods or more before the filter's start pass it (no wait for the reopen); the keep logic
    writes them."""
    names = ['rec_filter_b/filtered']
    node, written, stats, pubs = _recorder(probe, names, filtered=names)
    assert node._reopen_after == 5.0                  # max(5 s, two record periods of 1 s)
    _send(probe, pubs, [20.0], stats, names)
    assert node._filter_start[names[0]] == ('21', '0', '19')
    _send(probe, pubs, [5.0], stats, names)
    assert probe.spin_until(lambda: len(written.stamps[names[0]]) == 2, 5.0)
    assert [s // 1_000_000_000 for s in written.stamps[names[0]]] == [20, 5]


def test_a_filter_that_let_nothing_through_is_opened_again(probe, filter_on):
    names = ['rec_filter_d/filtered']
    node, written, stats, pubs = _recorder(probe, names, filtered=names, reopen_after=3600.0)
    _send(probe, pubs, [20.0], stats, names)
    node._reopen_stale_filters()                      # kept just now: stays
    assert node._filter_start[names[0]] == ('21', '0', '19')
    node._accepted_at[names[0]] -= 3601.0             # nothing kept for longer than reopen_after
    node._reopen_stale_filters()
    assert node._filter_start[names[0]] == ('0', '0', '0')
    # stamps less than two periods behind the old start (19.5) pass once the open filter reaches
    # the publisher (through discovery: sent again until then)
    for i in range(100):
        pubs[names[0]].publish(_image(19.5 + 0.001 * i))
        if probe.spin_until(lambda: len(written.stamps[names[0]]) == 2, 0.1):
            break
    assert [s // 100_000_000 for s in written.stamps[names[0]]] == [200, 195]


@pytest.mark.parametrize('switch', [None, '0'])
def test_no_dds_filter_unless_asked_the_topics_are_still_recorded_once_per_period(probe, monkeypatch, switch):
    if switch is None:
        monkeypatch.delenv('DEPTHMARKS_RECORDER_FILTER', raising=False)
    else:
        monkeypatch.setenv('DEPTHMARKS_RECORDER_FILTER', switch)
    names = [f'rec_filter_c{switch or ""}/filtered']
    node, written, stats, pubs = _recorder(probe, names, filtered=names)
    assert node.filters == {}
    assert node.once_per_period == names      # what the runner names to the node processes
    _send(probe, pubs, [30.0 + 0.1 * i for i in range(5)], stats, names)
    assert probe.spin_until(lambda: stats.count[names[0]] == 5, 5.0)
    assert len(written.stamps[names[0]]) == 1


def test_recorded_only_output_is_wanted_once_per_period_while_only_the_recorder_subscribes(probe, monkeypatch):
    import rclpy
    from depthmarks_ros.params.base import NodeParams
    from depthmarks_ros.ros.node_base import DepthmarksNode

    class Publishing(DepthmarksNode):
        PARAMS = NodeParams

        def __init__(self):
            super().__init__('recorded_topics_test')
            self.pub = self.create_publisher(Image, 'rec_rp/out', QOS)
            self.other = self.create_publisher(Image, 'rec_rp/other', QOS)
    monkeypatch.setenv(*recorded_topics.recorded_periods_env({'/rec_rp/out': 1_000_000_000}).popitem())
    node = Publishing()
    probe.add_node(node)
    assert isinstance(node.pub, recorded_topics.RecordedPublisher)
    assert not isinstance(node.other, recorded_topics.RecordedPublisher)
    assert not node.wanted_at(node.pub, 10 * 10**9)                 # nobody subscribes
    recorder = rclpy.create_node(recorded_topics.RECORDER_NODE)
    probe.add_node(recorder)
    recorder.create_subscription(Image, 'rec_rp/out', lambda m: None, QOS)
    assert probe.wait_for_subscribers(node.pub)
    assert probe.spin_until(lambda: node.pub.only_recorder(), 5.0)
    wanted = []
    for i in range(25):                                              # 2.5 s at 10 Hz from 10.0 s
        stamp = 10 * 10**9 + i * 10**8
        if node.wanted_at(node.pub, stamp):
            wanted.append(stamp // 10**8)
            node.pub.publish(_image(stamp * 1e-9))
    assert wanted == [100, 110, 120]                                 # the first of each second
    probe.subscribe(Image, 'rec_rp/out', QOS)                        # someone else: every frame
    assert probe.spin_until(lambda: node.pub.get_subscription_count() == 2, 5.0)
    assert probe.spin_until(lambda: not node.pub.only_recorder(), 5.0)
    assert node.wanted_at(node.pub, 12 * 10**9 + 5 * 10**8)


def test_a_subscriber_the_graph_does_not_show_yet_gets_every_frame(probe, monkeypatch):
    """The graph lags the subscriber count: until they agree, the new subscriber may be anyone
    (depth_fusion, RViz), so every frame is wanted; the graph is asked again only after RETRY_S."""
    import rclpy
    monkeypatch.setenv(*recorded_topics.recorded_periods_env({'/rec_lag/out': 1_000_000_000}).popitem())
    node = rclpy.create_node('recorded_topics_lag_test')
    probe.add_node(node)
    pub = recorded_topics.RecordedPublisher(node.create_publisher(Image, 'rec_lag/out', QOS), node, 10**9)
    probe.subscribe(Image, 'rec_lag/out', QOS)                       # not the recorder
    assert probe.wait_for_subscribers(pub.publisher)
    lookups = []
    monkeypatch.setattr(node, 'get_subscriptions_info_by_topic', lambda topic: lookups.append(topic) or [])
    monkeypatch.setattr(recorded_topics.RecordedPublisher, 'RETRY_S', 3600.0)
    wanted = []
    for i in range(5):
        stamp = 10 * 10**9 + i * 10**8
        wanted.append(pub.wanted_at(stamp))
        pub.publish(_image(stamp * 1e-9))
    assert wanted == [True] * 5                                        # graph shows nobody yet: every frame
    assert len(lookups) == 1                                           # not looked up on every frame
    monkeypatch.undo()
    assert not pub.only_recorder() and pub.wanted_at(10 * 10**9)


def test_a_subscriber_whose_node_the_graph_does_not_name_yet_is_looked_up_again(probe, monkeypatch):
    """The graph shows the subscription but not its node yet (rmw's _NODE_NAME_UNKNOWN_): every frame
    is wanted until a later lookup names the node; then, the recorder alone, one per period. (Kept
    for the count, it had left stereo_depth building its disparity every frame for whole runs.)"""
    import types
    import rclpy
    monkeypatch.setenv(*recorded_topics.recorded_periods_env({'/rec_unknown/out': 1_000_000_000}).popitem())
    node = rclpy.create_node('recorded_topics_unknown_test')
    probe.add_node(node)
    pub = recorded_topics.RecordedPublisher(node.create_publisher(Image, 'rec_unknown/out', QOS), node, 10**9)
    probe.subscribe(Image, 'rec_unknown/out', QOS)
    assert probe.wait_for_subscribers(pub.publisher)
    shown = [types.SimpleNamespace(node_name=recorded_topics.UNKNOWN_NODE)]
    monkeypatch.setattr(node, 'get_subscriptions_info_by_topic', lambda topic: list(shown))
    monkeypatch.setattr(recorded_topics.RecordedPublisher, 'RETRY_S', 0.0)
    stamps = [10 * 10**9 + i * 10**8 for i in range(4)]
    assert not pub.only_recorder() and all(pub.wanted_at(s) for s in stamps)
    shown[0] = types.SimpleNamespace(node_name=recorded_topics.RECORDER_NODE)
    assert pub.only_recorder()
    wanted = []
    for s in stamps:
        wanted.append(pub.wanted_at(s))
        if wanted[-1]:
            pub.publish(_image(s * 1e-9))
    assert wanted == [True, False, False, False]


def test_an_inherited_recorded_periods_variable_reaches_no_node_of_another_run(probe, monkeypatch):
    """Node processes get the runner's periods only (an inherited variable removed, none without
    filters); a single-process run's nodes (a recorder tap in their process) ignore the variable."""
    from depthmarks_ros.params.base import NodeParams
    from depthmarks_ros.ros import local_tap
    from depthmarks_ros.ros.node_base import DepthmarksNode
    inherited = dict(recorded_topics.recorded_periods_env({'/rec_inh/out': 10**9}), HOME='/h')
    assert recorded_topics.node_process_env({}, inherited) == {'HOME': '/h'}
    env = recorded_topics.node_process_env({'/b': 5}, inherited)
    assert env['HOME'] == '/h' and json.loads(env[recorded_topics.ENV]) == {'/b': 5}

    class Publishing(DepthmarksNode):
        PARAMS = NodeParams

        def __init__(self):
            super().__init__('recorded_topics_inherited_test')
            self.pub = self.create_publisher(Image, 'rec_inh/out', QOS)
    monkeypatch.setenv(recorded_topics.ENV, inherited[recorded_topics.ENV])
    context = probe.node.context
    local_tap.install(context, local_tap.LocalTap({'/rec_inh/other': lambda m: None}))
    try:
        node = Publishing()
    finally:
        local_tap.uninstall(context)
    probe.add_node(node)
    assert not isinstance(node.pub, (recorded_topics.RecordedPublisher, local_tap.TappedPublisher))


if __name__ == '__main__':
    raise SystemExit(pytest.main([__file__, '-q']))


class _FakePublisher:
    topic_name = '/rec_fake/out'

    def __init__(self):
        self.count = 0
        self.published = []

    def get_subscription_count(self):
        return self.count

    def publish(self, msg):
        self.published.append(msg)


class _FakeGraph:
    def __init__(self):
        self.shown, self.lookups = [], 0

    def get_subscriptions_info_by_topic(self, topic):
        self.lookups += 1
        return list(self.shown)


def test_a_subscriber_whose_node_never_resolves_is_looked_up_less_and_less_often(monkeypatch):
    """A subscriber the graph never names (a plain DDS reader): every frame is wanted, and the graph is
    asked after RETRY_S, then twice as long each time, up to RETRY_MAX_S (not on every frame for ever)."""
    import types
    clock = [100.0]
    monkeypatch.setattr(recorded_topics.time, 'monotonic', lambda: clock[0])
    pub, graph = _FakePublisher(), _FakeGraph()
    rp = recorded_topics.RecordedPublisher(pub, graph, 10**9)
    pub.count = 1
    graph.shown = [types.SimpleNamespace(node_name=recorded_topics.UNKNOWN_NODE)]
    wanted = []
    for i in range(100):                                   # 10 s at 10 Hz
        wanted.append(rp.wanted_at(10 * 10**9 + i * 10**8))
        clock[0] += 0.1
    assert all(wanted)
    # 0.1, 0.2, 0.4, 0.8, then every RETRY_MAX_S (1 s): about 13 lookups in 10 s, not 100
    assert 5 <= graph.lookups <= 16, graph.lookups
    graph.shown = [types.SimpleNamespace(node_name=recorded_topics.RECORDER_NODE)]
    clock[0] += recorded_topics.RecordedPublisher.RETRY_MAX_S
    assert rp.only_recorder()                              # named at last: the recorder alone


def test_after_every_subscriber_left_the_next_one_is_looked_up(monkeypatch):
    """Recorder alone -> nobody -> a user's subscriber (one again): the last answer ("only the recorder")
    was for another subscriber, so the new one is looked up and gets every frame."""
    import types
    pub, graph = _FakePublisher(), _FakeGraph()
    rp = recorded_topics.RecordedPublisher(pub, graph, 10**9)
    pub.count = 1
    graph.shown = [types.SimpleNamespace(node_name=recorded_topics.RECORDER_NODE)]
    assert rp.only_recorder()
    pub.count, graph.shown = 0, []
    assert not rp.wanted_at(10 * 10**9)
    pub.count = 1
    graph.shown = [types.SimpleNamespace(node_name='rviz')]
    wanted = []
    for i in range(5):
        stamp = 11 * 10**9 + i * 10**8
        wanted.append(rp.wanted_at(stamp))
        if wanted[-1]:
            rp.publish(_image(stamp * 1e-9))
    assert wanted == [True] * 5


@pytest.mark.parametrize('value, on', [('1', True), (' 1 ', True), ('0', False), ('', False)])
def test_the_filter_switch_reads_1_as_on_and_warns_on_anything_else(monkeypatch, value, on):
    import warnings
    from depthmarks_ros.pipeline.recorder_node import stamp_filter_enabled
    monkeypatch.setenv('DEPTHMARKS_RECORDER_FILTER', value)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert stamp_filter_enabled() is on
    monkeypatch.setenv('DEPTHMARKS_RECORDER_FILTER', 'true')
    with pytest.warns(UserWarning, match='neither 0 nor 1'):
        assert stamp_filter_enabled() is False


def _node(name, namespace='/'):
    """A subscription's entry in the ROS graph (rclpy's TopicEndpointInfo: the fields looked at)."""
    import types
    return types.SimpleNamespace(node_name=name, node_namespace=namespace)


def _hand_over_publisher(inputs=1, period_ns=10**9):
    """A hand_over publisher in a process of several nodes (pipeline/container.py: a hand-over-only
    tap), over a stub DDS publisher whose subscribers are the tap's ``inputs`` (their readers matched)
    and whoever a test adds; with ``period_ns``, the runner named the topic's record period."""
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap.hand_over_only()
    got = [[] for _ in range(inputs)]
    for k, taken in enumerate(got):     # (no reader given: taken as matched)
        tap.add_input(_FakePublisher.topic_name, taken.append, owner=(f'input_{k}', '/'))
    pub, graph = _FakePublisher(), _FakeGraph()
    pub.count = inputs
    graph.shown = [_node(f'input_{k}') for k in range(inputs)]
    inner = recorded_topics.RecordedPublisher(pub, graph, period_ns) if period_ns else pub
    return local_tap.TappedPublisher(inner, None, tap, hand_over=True), pub, graph, got, tap


def _publish_frames(tapped, stamps):
    """Publish one image per stamp as stereo_depth does (asks wanted_at, then hands_over(msg)); for
    each, whether hands_over(msg) said it would be handed over."""
    said = []
    for stamp in stamps:
        assert tapped.wanted_at(stamp)                       # the inputs want every frame
        msg = _image(stamp * 1e-9)
        said.append(tapped.hands_over(msg))
        tapped.publish(msg)
    return said


STAMPS = [10 * 10**9 + i * 10**8 for i in range(25)]     # 2.5 s at 10 Hz


def test_a_hand_over_only_tap_hands_every_message_to_the_inputs_while_they_alone_subscribe():
    tapped, pub, _graph, (got,), tap = _hand_over_publisher()
    assert tapped.get_subscription_count() == 1              # no recorder in this process: not counted
    assert tapped.wanted_at(STAMPS[0])                       # the input wants every frame
    assert all(_publish_frames(tapped, STAMPS))
    assert [stamp_ns(m.header) // 10**8 for m in got] == [s // 10**8 for s in STAMPS]
    assert pub.published == []                               # DDS carried none
    assert tap.topic_counts(pub.topic_name) == {'handed_over': 25, 'hand_over_failed': 0, 'dds': 0} and tap.counts()['delivered'] == 0


def test_with_only_the_recorder_of_another_process_besides_it_dds_carries_the_first_of_each_period(monkeypatch):
    """The recorder keeps the first message of each period by stamp: that one goes through DDS, to
    everyone (the input too: not handed over as well), the others are handed over. Each message
    reaches the input exactly once. (A still clock: the periodic re-lookup of a yes does not fire on a
    slow machine.)"""
    monkeypatch.setattr(recorded_topics.time, 'monotonic', lambda: 1000.0)
    tapped, pub, graph, (got,), tap = _hand_over_publisher()
    pub.count = 2
    graph.shown.append(_node(recorded_topics.RECORDER_NODE))
    said = _publish_frames(tapped, STAMPS)
    assert [stamp_ns(m.header) // 10**8 for m in pub.published] == [100, 110, 120]
    assert said == [s // 10**8 not in (100, 110, 120) for s in STAMPS]      # hands_over(msg) foretold it
    assert len(got) == 22 and not {id(m) for m in got} & {id(m) for m in pub.published}
    assert tap.topic_counts(pub.topic_name) == {'handed_over': 22, 'hand_over_failed': 0, 'dds': 3}
    assert graph.lookups == 1                                # looked up once for the count, not per message


@pytest.mark.parametrize('others', [['rviz'], [recorded_topics.RECORDER_NODE, 'rviz'],
                                    [recorded_topics.UNKNOWN_NODE], None])
def test_any_other_outside_subscriber_gets_every_message_through_dds(others):
    """RViz, a recorder and RViz, a subscriber whose node the graph does not name yet, or one the graph
    does not show yet (None): every message through DDS, none handed over."""
    tapped, pub, graph, (got,), tap = _hand_over_publisher()
    pub.count = 1 + len(others or [None])
    graph.shown += [_node(n) for n in others or []]
    assert not any(_publish_frames(tapped, STAMPS))
    assert len(pub.published) == 25 and got == []
    assert tap.topic_counts(pub.topic_name) == {'handed_over': 0, 'hand_over_failed': 0, 'dds': 25}


def test_without_a_record_period_the_recorder_gets_every_message_through_dds():
    """A topic the runner did not name (the launch files: no DEPTHMARKS_RECORDED_PERIODS) keeps every
    message for an outside subscriber, whatever its node's name."""
    tapped, pub, graph, (got,), _tap = _hand_over_publisher(period_ns=0)
    pub.count = 2
    graph.shown.append(_node(recorded_topics.RECORDER_NODE))
    _publish_frames(tapped, STAMPS)
    assert len(pub.published) == 25 and got == []


def test_without_inputs_in_the_process_the_recorder_alone_is_served_as_by_a_recorded_publisher():
    """depth_fusion not started in the container: nothing to hand over; with the recorder alone the
    output is wanted (built) for the first stamp of each period only, and published through DDS."""
    tapped, pub, graph, _got, _tap = _hand_over_publisher(inputs=0)
    pub.count = 1
    graph.shown = [_node(recorded_topics.RECORDER_NODE)]
    wanted = [s for s in STAMPS if tapped.wanted_at(s) and not tapped.publish(_image(s * 1e-9))]
    assert [s // 10**8 for s in wanted] == [100, 110, 120] and len(pub.published) == 3


def test_the_recorder_is_looked_up_beside_every_input_and_only_for_inputs_whose_readers_matched():
    """Two inputs and the recorder: the recorder's periods through DDS; an input whose reader has not
    matched yet holds every message on DDS (the module doc's rule), the recorder's period rule included."""
    tapped, pub, graph, got, tap = _hand_over_publisher(inputs=2)
    pub.count = 3
    graph.shown.append(_node(recorded_topics.RECORDER_NODE))
    _publish_frames(tapped, STAMPS[:10])
    assert len(pub.published) == 1 and [len(g) for g in got] == [9, 9]

    class Unmatched:
        def get_publisher_count(self):
            return 0
    late = []
    tap.add_input(pub.topic_name, late.append, Unmatched(), ('input_2', '/'))
    pub.count = 4
    graph.shown.append(_node('input_2'))
    _publish_frames(tapped, STAMPS[10:20])
    assert len(pub.published) == 11 and [len(g) for g in got] == [9, 9] and late == []


def test_when_rviz_replaces_the_recorder_at_the_same_count_it_gets_every_message_after_a_relookup(monkeypatch):
    """The recorder leaves and RViz joins between two messages: the subscriber count is the same, so
    only the periodic lookup (at most RETRY_MAX_S after the last) sees it; from then on every message
    goes through DDS, none handed over (not only the first of each period)."""
    clock = [100.0]
    monkeypatch.setattr(recorded_topics.time, 'monotonic', lambda: clock[0])
    tapped, pub, graph, (got,), tap = _hand_over_publisher()
    pub.count = 2
    graph.shown.append(_node(recorded_topics.RECORDER_NODE))
    assert _publish_frames(tapped, STAMPS[:10]) == [False] + [True] * 9     # the recorder's period: 1 DDS
    assert graph.lookups == 1
    graph.shown[-1] = _node('rviz')                                         # count unchanged: 2
    _publish_frames(tapped, STAMPS[10:12])                                  # cached until the re-lookup
    assert graph.lookups == 1
    clock[0] += recorded_topics.RecordedPublisher.RETRY_MAX_S
    dds_before = len(pub.published)
    assert not any(_publish_frames(tapped, STAMPS[12:25]))                  # every message through DDS
    assert len(pub.published) == dds_before + 13 and graph.lookups == 2     # looked up once more, not per message


def test_a_cached_only_recorder_answer_costs_no_graph_lookup_before_the_interval(monkeypatch):
    """While the answer is True and the count unchanged, the graph is asked at most once per RETRY_MAX_S."""
    clock = [100.0]
    monkeypatch.setattr(recorded_topics.time, 'monotonic', lambda: clock[0])
    pub, graph = _FakePublisher(), _FakeGraph()
    rp = recorded_topics.RecordedPublisher(pub, graph, 10**9)
    pub.count = 1
    graph.shown = [_node(recorded_topics.RECORDER_NODE)]
    for _ in range(30):                                  # 3 s at 10 Hz
        assert rp.only_recorder()
        clock[0] += 0.1
    assert 3 <= graph.lookups <= 4, graph.lookups


@pytest.mark.parametrize('stranger', [_node('rviz'), _node('input_0', '/elsewhere')])
def test_an_outside_node_where_an_input_should_be_gets_every_message_through_dds(stranger):
    """The recorder and one more subscriber, as many as the inputs, but the graph shows that one as
    another node (RViz; a node named like the input in another namespace), not the input's: the
    count alone would take it for the input's reader; every message through DDS, none handed over."""
    tapped, pub, graph, (got,), tap = _hand_over_publisher()
    pub.count = 2
    graph.shown = [_node(recorded_topics.RECORDER_NODE), stranger]        # the input's own reader not counted
    assert not any(_publish_frames(tapped, STAMPS))
    assert len(pub.published) == 25 and got == []
    assert tap.topic_counts(pub.topic_name) == {'handed_over': 0, 'hand_over_failed': 0, 'dds': 25}


def test_an_input_that_raises_on_a_handed_over_message_is_counted_per_topic():
    """A message handed over on which an input raised counts as hand_over_failed, not handed_over."""
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap.hand_over_only()
    taken = []
    tap.add_input(_FakePublisher.topic_name, taken.append, owner=('input_0', '/'))

    def broken(msg):
        raise RuntimeError('input broke')
    pub = _FakePublisher()
    tapped = local_tap.TappedPublisher(pub, None, tap, hand_over=True)
    tapped.publish(_image(1.0))
    tap.add_input(pub.topic_name, broken, owner=('input_1', '/'))
    tapped.publish(_image(2.0))
    tapped.publish(_image(3.0))
    assert len(taken) == 3 and pub.published == []
    assert tap.topic_counts(pub.topic_name) == {'handed_over': 1, 'hand_over_failed': 2, 'dds': 0}
    assert tap.counts()['input_failed'] == 2 and tap.counts()['handed_over'] == 3     # per input


def test_a_publisher_that_only_looks_like_a_recorded_one_is_not_asked_about_the_recorder():
    """Only a RecordedPublisher says whether another process's recorder is the other subscriber: a
    Mock (or any publisher with such attributes) over an input and one more subscriber: DDS."""
    from unittest import mock
    from depthmarks_ros.ros import local_tap
    tap = local_tap.LocalTap.hand_over_only()
    got = []
    tap.add_input(_FakePublisher.topic_name, got.append, owner=('input_0', '/'))
    pub = mock.MagicMock()
    pub.topic_name = _FakePublisher.topic_name
    pub.get_subscription_count.return_value = 2
    pub.keeps.return_value = False           # what a RecordedPublisher would say between the recorder's messages
    tapped = local_tap.TappedPublisher(pub, None, tap, hand_over=True)
    msg = _image(1.5)
    assert not tapped.hands_over(msg)
    tapped.publish(msg)
    assert got == [] and pub.publish.call_count == 1
