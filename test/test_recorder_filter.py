"""The recorder's stamp filter (multi-process runs): only the messages it writes cross DDS.

Real DDS, in-process (the probe's publisher and the recorder node): the filtered topic delivers about
one message per record period, the unfiltered one every message, both write the same instants; a
filter left behind by stamps that went back is opened again; DEPTHMARKS_RECORDER_FILTER=0 turns the
filters off.
"""
import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depthmarks_ros.pipeline.recorder import TopicStats
from depthmarks_ros.pipeline.recorder_node import RecordedTopic, RecorderNode

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


def test_filtered_topic_receives_only_what_it_writes(probe):
    names = ['rec_filter_a/filtered', 'rec_filter_a/plain']
    node, written, stats, pubs = _recorder(probe, names, filtered=[names[0]])
    assert list(node.filters) == [names[0]]          # Fast DDS content filter in place
    stamps = [10.0 + 0.1 * i for i in range(30)]     # three record periods of 1 s
    _send(probe, pubs, stamps, stats, names)
    assert probe.spin_until(lambda: stats.count[names[1]] == 30, 5.0)
    # both write the first message of each period; the filtered one let little else through
    for n in names:
        assert [s // 1_000_000_000 for s in written.stamps[n]] == [10, 11, 12]
    assert stats.count[names[0]] < 12, stats.count[names[0]]


def test_filter_opens_again_when_stamps_go_back(probe):
    names = ['rec_filter_b/filtered']
    node, written, stats, pubs = _recorder(probe, names, filtered=names, reopen_after=0.3)
    _send(probe, pubs, [20.0], stats, names)
    _send(probe, pubs, [5.0], stats, names)           # before the filter's start: not delivered
    assert [s // 1_000_000_000 for s in written.stamps[names[0]]] == [20]
    probe.spin_for(1.2)                                # nothing through for > reopen_after: opened again
    _send(probe, pubs, [5.1], stats, names)
    assert probe.spin_until(lambda: len(written.stamps[names[0]]) == 2, 5.0)
    assert written.stamps[names[0]][-1] == 5_100_000_000


def test_filters_off_with_the_environment_switch(probe, monkeypatch):
    monkeypatch.setenv('DEPTHMARKS_RECORDER_FILTER', '0')
    names = ['rec_filter_c/filtered']
    node, written, stats, pubs = _recorder(probe, names, filtered=names)
    assert node.filters == {}
    _send(probe, pubs, [30.0 + 0.1 * i for i in range(5)], stats, names)
    assert probe.spin_until(lambda: stats.count[names[0]] == 5, 5.0)
    assert len(written.stamps[names[0]]) == 1


if __name__ == '__main__':
    raise SystemExit(pytest.main([__file__, '-q']))
