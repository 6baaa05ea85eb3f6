"""stamp_merge over real DDS: outputs of two instances come out on one topic in stamp order."""
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.convert.stamps import stamp_ns

pytestmark = pytest.mark.dds


def _img(k: int) -> Image:
    import numpy as np
    msg = numpy_to_image(np.full((4, 4), k, np.float32), '32FC1')
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k // 10, (k % 10) * 100_000_000
    return msg


def test_merge_orders_two_instances_and_drops_what_is_too_late(probe):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.stamp_merge import StampMergeNode
    node = StampMergeNode(parameter_overrides=[
        Parameter('topics', value=['mono/depth']), Parameter('instances', value=2),
        Parameter('max_wait', value=0.3)])
    probe.add_node(node)
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    got = probe.subscribe(Image, 'mono/depth', rel)
    pubs = [probe.publisher(Image, f'mono/depth/shard_{k}', rel) for k in range(2)]
    for p in pubs:
        assert probe.wait_for_subscribers(p)
    assert probe.wait_for_publishers('mono/depth')
    # instance 0 has even frames, instance 1 odd; instance 1 is ahead by two frames
    order = [(1, 1), (1, 3), (0, 0), (0, 2), (1, 5), (0, 4), (0, 6), (1, 7)]
    for src, k in order:
        pubs[src].publish(_img(k))
        probe.spin_for(0.02)
    assert probe.spin_until(lambda: len(got) >= 8, timeout=5)
    stamps = [stamp_ns(m.header) for m in got]
    assert stamps == sorted(stamps) and len(stamps) == 8
    # instance 0 goes silent; frame 9 is released after max_wait, then a late frame 8 is dropped
    pubs[1].publish(_img(9))
    assert probe.spin_until(lambda: len(got) >= 9, timeout=3)
    pubs[0].publish(_img(8))
    probe.spin_for(0.5)
    stamps = [stamp_ns(m.header) for m in got]
    assert stamps == sorted(stamps) and len(stamps) == 9
    assert node._seq['mono/depth'].stats.dropped_late == 1
    values = node.diagnostic_values()
    assert values['status_level'] == 1 and 'too late' in values['status_message']


def test_merge_refuses_mismatched_types(rclpy_context):
    from rclpy.exceptions import ParameterException
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.stamp_merge import StampMergeNode
    with pytest.raises(ValueError, match='message_types has 2 entries for 3 topics'):
        StampMergeNode(parameter_overrides=[Parameter('topics', value=['a', 'b', 'c']),
                                            Parameter('message_types', value=['sensor_msgs/msg/Image',
                                                                              'sensor_msgs/msg/Image'])])
    with pytest.raises((ValueError, ParameterException), match='unknown message type'):
        StampMergeNode(parameter_overrides=[Parameter('message_types', value=['nope/msg/Nope'])])
