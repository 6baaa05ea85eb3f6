"""Process-wide set-up of node processes (ros/process.py): malloc keeps large buffers, so a node
process that receives 640x480 images over DDS does not fault their pages in again for each one."""
import json
import os
import subprocess
import sys
import time

import pytest

from depthmarks_ros.pipeline.cpu import minor_faults

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))


def _child(code: str, **env) -> dict:
    """Run ``code`` in a child process without glibc's MALLOC_* variables (unless given in ``env``)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60,
                         env=dict(base, PYTHONPATH=ROOT, **env))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


KEEP = ('import json; from depthmarks_ros.ros.process import keep_large_buffers; '
        'print(json.dumps(keep_large_buffers()))')


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc options (Linux)')
def test_keep_large_buffers_sets_both_thresholds_unless_told_otherwise():
    from depthmarks_ros.ros.process import MMAP_THRESHOLD, TRIM_THRESHOLD
    assert _child(KEEP) == {'MALLOC_MMAP_THRESHOLD': MMAP_THRESHOLD, 'MALLOC_TRIM_THRESHOLD': TRIM_THRESHOLD}
    assert _child(KEEP, DEPTHMARKS_MALLOPT='0') == {}
    # glibc's own variable, set by the user, wins: only the other threshold is set
    assert _child(KEEP, MALLOC_TRIM_THRESHOLD_='1048576') == {'MALLOC_MMAP_THRESHOLD': MMAP_THRESHOLD}




@pytest.mark.dds
@pytest.mark.skipif(not os.path.exists('/proc/self/stat'), reason='needs /proc')
def test_node_process_receives_images_without_faulting_them_in(probe):
    """stamp_merge (the lightest node with image inputs) as its own process takes 640x480 float32
    images: fewer than 100 minor page faults per image (one image is 300 pages; before the fix a
    node process could take ~870 per image, depending on the order of its first allocations)."""
    import numpy as np
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from depthmarks_ros.convert.image import numpy_to_image
    from depthmarks_ros.testing.ros_harness import NodeProcess
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    depth = np.random.default_rng(0).random((480, 640), dtype=np.float32)
    with NodeProcess('stamp_merge', params={'topics': ['depth'], 'instances': 1}) as node:
        pub = probe.publisher(Image, 'depth/shard_0', qos)
        got = probe.subscribe(Image, 'depth', qos)
        assert probe.wait_for_subscribers(pub, timeout=30), node.output

        def send(n: int, first: int) -> None:
            for k in range(first, first + n):
                msg = numpy_to_image(depth, '32FC1')
                msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k // 10, (k % 10) * 100_000_000
                pub.publish(msg)
                probe.spin_for(0.03)
        # warm-up (the first buffers are new pages), repeated until the node's output reaches us: its
        # publisher may match our subscription only after the first images (a loaded CI machine)
        sent = 0
        for _ in range(6):
            send(10, sent)
            sent += 10
            if probe.spin_until(lambda: len(got) >= 5, timeout=5):
                break
        assert len(got) >= 5, node.output
        time.sleep(0.2)
        before, received = minor_faults(node.proc.pid), len(got)
        send(40, sent)
        assert probe.spin_until(lambda: len(got) >= received + 30, timeout=30), node.output
        faults = minor_faults(node.proc.pid) - before
        assert faults / 40 < 100, f'{faults} minor page faults for 40 images'
        assert node.stop() == 0, node.output
