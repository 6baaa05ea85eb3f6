"""A scaled-out node over real DDS (docs/multihost.md): two stereo_depth instances with shard_count 2
(shard_index 0 and 1) share one input stream, publish to <topic>/shard_<k>, and stamp_merge puts their
outputs back on <topic>: every input frame comes out exactly once, in stamp order."""
import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from stereo_msgs.msg import DisparityImage

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.sim import SimRig
from depthmarks_ros.core.sim.rig import SimConfig
from depthmarks_ros.ros.image_publisher import ImagePublisher
from depthmarks_ros.testing.scenes import stereo_input_publishers

pytestmark = pytest.mark.dds

FRAMES = 8
PERIOD_NS = 100_000_000          # 10 Hz stamps: shard_period's default (0.1 s)
BASE_NS = 1_000 * 1_000_000_000 + 37_000_000   # jitter of a few ms must not move a frame to the other shard
TOPICS = {'stereo/depth': Image, 'stereo/disparity': DisparityImage}


def _stereo(k: int):
    from depthmarks_ros.nodes.stereo_depth import StereoDepthNode
    remaps = [a for topic in TOPICS for a in ('-r', f'{topic}:={topic}/shard_{k}')]
    return StereoDepthNode(
        cli_args=['--ros-args', '-r', f'__node:=stereo_depth_{k}', *remaps],
        parameter_overrides=[Parameter('shard_count', value=2), Parameter('shard_index', value=k),
                             Parameter('disparity_range', value=32)])


def test_two_instances_and_stamp_merge_output_every_frame_once_in_stamp_order(probe):
    from depthmarks_ros.nodes.stamp_merge import StampMergeNode
    sim = SimRig(SimConfig(width=96, height=72, scene='simple'))
    frame = sim.render(0.0)
    shards = [_stereo(0), _stereo(1)]
    merge = StampMergeNode(parameter_overrides=[
        Parameter('topics', value=list(TOPICS)), Parameter('instances', value=2),
        Parameter('message_types', value=['sensor_msgs/msg/Image', 'stereo_msgs/msg/DisparityImage']),
        Parameter('max_wait', value=0.4)])
    for node in (*shards, merge):
        probe.add_node(node)
    rel = QoSProfile(depth=2 * FRAMES, reliability=ReliabilityPolicy.RELIABLE)
    merged = {topic: probe.subscribe(typ, topic, rel) for topic, typ in TOPICS.items()}
    per_shard = [probe.subscribe(Image, f'stereo/depth/shard_{k}', rel) for k in range(2)]
    pubs = stereo_input_publishers(probe)
    for p in pubs:
        assert probe.wait_for_subscribers(p, count=2)     # both instances see every input
    for topic in TOPICS:
        assert probe.wait_for_publishers(topic)
    # stereo/depth's compressed twin comes from stamp_merge under the merged name (each instance's moved to
    # stereo/depth/shard_<k>/compressedDepth with its remap); a topic without a twin in the graph gets none
    assert probe.wait_for_publishers('stereo/depth/compressedDepth')
    assert merge.count_publishers('/stereo/depth/compressedDepth') == 1
    assert merge.count_publishers('/stereo/disparity/compressed') == 0
    assert isinstance(merge._pubs['stereo/depth'], ImagePublisher) and merge._pubs['stereo/depth'].kind == 'depth'

    sent = []
    for k in range(FRAMES):
        stamp = BASE_NS + k * PERIOD_NS + (3_000_000 if k % 3 == 0 else -2_000_000)
        sent.append(stamp)
        msgs = [numpy_to_image(frame.left_rgb, 'rgb8'), info_from_camera(sim.stereo.left),
                numpy_to_image(frame.right_rgb, 'rgb8'), info_from_camera(sim.stereo.right)]
        for m in msgs:
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            m.header.frame_id = 'left_camera_optical_frame'
        # one frame at a time: each instance keeps only its latest input, and this is not a rate test
        for p, m in zip(pubs, msgs):
            p.publish(m)
        assert probe.spin_until(lambda: sum(map(len, per_shard)) == k + 1, timeout=10), f'frame {k} not processed'
    assert probe.spin_until(lambda: all(len(got) >= FRAMES for got in merged.values()), timeout=5)
    probe.spin_for(0.5)                                   # nothing more (no duplicates) may follow

    # round-robin by stamp: instance k took the frames whose number is k modulo 2, and only those
    for k, got in enumerate(per_shard):
        assert [stamp_ns(m.header) for m in got] == sent[k::2]
    for topic, got in merged.items():
        stamps = [stamp_ns(m.header) for m in got]
        assert stamps == sent, topic                      # every frame once, in stamp order
        assert merge._seq[topic].stats.dropped_late == 0
    depth = image_to_numpy(merged['stereo/depth'][0])
    assert depth.shape == (72, 96) and (depth[depth == depth] > 0).all()   # the instance's output, unchanged
    assert all(node.stats.frames_out == FRAMES // 2 for node in shards)


def test_stamp_merge_drops_a_twin_it_cannot_encode_and_keeps_the_raw_message(probe):
    """An instance's image whose compressed twin cannot be encoded (rgb8 on a depth topic) while the twin
    has a subscriber: the raw message still goes out, the twin is dropped with a counted, logged reason,
    and the node goes on (it raised out of the callback before)."""
    from sensor_msgs.msg import CompressedImage
    from depthmarks_ros.nodes.stamp_merge import StampMergeNode
    merge = StampMergeNode(parameter_overrides=[Parameter('topics', value=['stereo/depth']),
                                                Parameter('instances', value=1)])
    probe.add_node(merge)
    rel = QoSProfile(depth=4, reliability=ReliabilityPolicy.RELIABLE)
    raw, twin = probe.subscribe(Image, 'stereo/depth', rel), probe.subscribe(CompressedImage, 'stereo/depth/compressedDepth', rel)
    pub = merge._pubs['stereo/depth']
    assert probe.spin_until(lambda: pub.raw.get_subscription_count() >= 1 and pub.twin.get_subscription_count() >= 1)
    bad = numpy_to_image(np.zeros((4, 6, 3), np.uint8), 'rgb8')
    good = numpy_to_image(np.full((4, 6), 2.0, np.float32), '32FC1')
    for k, m in enumerate((bad, good)):
        m.header.stamp.sec = 100 + k
        merge._publish('stereo/depth', [(stamp_ns(m.header), m)])
    assert probe.spin_until(lambda: len(raw) == 2 and len(twin) == 1, timeout=5), (len(raw), len(twin))
    assert merge.stats.errors == 1 and twin[0].header.stamp.sec == 101
