#!/usr/bin/env python3
"""Conversion costs: 640x480 rgb8 image and a 100k-point cloud, both ways.

Prints ours side by side with the naive ways (``msg.data = ndarray`` for writing, a
per-element Python copy for reading) that cv_bridge-less code often uses.

Then the per-message costs the stereo node's rest is made of (docs/stereo_depth.md, issue 21), each
next to its reference in the same run: a 640x480 32FC1 view message (``numpy_to_image(copy=False)``)
built straight into its slots against the setters' path (``msg=Image()``, how it was built before
93dc4d4); rclpy's publish of a 640x480 32FC1 image against a 1x1 one, nobody subscribed and one DDS
reader in the process (never spun, history 1); the same 640x480 32FC1 message handed over by
``TappedPublisher.publish`` (ros/local_tap.py, ``hand_over=True``) to one matched in-process input
against rclpy's publish of it to one DDS reader in the process; a read of the node's clock
(``get_clock().now()``) against ``SyncedInputs._check_future`` (called on a stub: its test that skips
the read, the read itself once its reading is CLOCK_READING_S old). The machine load is printed before
and after.
Usage: python benchmarks/bench_conversions.py [--repeat N]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import median_ms  # noqa: E402
from depthmarks_ros.convert.cloud import array_to_cloud, cloud_to_array, make_struct, xyz_from_cloud  # noqa: E402
from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image  # noqa: E402




def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--repeat', type=int, default=30)
    args = ap.parse_args()
    print('load before: ' + ' '.join(f'{x:.2f}' for x in os.getloadavg()))
    from sensor_msgs.msg import Image
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    msg = numpy_to_image(img, 'rgb8')

    def naive_write():
        m = Image(height=480, width=640, encoding='rgb8', step=640 * 3)
        m.data = img.ravel()  # assigning an ndarray: element-wise conversion
    rows = [
        ('image 640x480 rgb8: numpy -> Image', median_ms(lambda: numpy_to_image(img, 'rgb8'), args.repeat),
         median_ms(naive_write, max(3, args.repeat // 10)), 'msg.data = ndarray'),
        ('image 640x480 rgb8: Image -> numpy', median_ms(lambda: image_to_numpy(msg), args.repeat),
         median_ms(lambda: np.array(list(msg.data), np.uint8).reshape(480, 640, 3), 3), 'np.array(list(msg.data))'),
    ]
    pts = make_struct(100_000, {'x': np.float32, 'y': np.float32, 'z': np.float32,
                                'intensity': np.float32, 'ring': np.uint16})
    for c in ('x', 'y', 'z', 'intensity'):
        pts[c] = rng.standard_normal(100_000)
    cloud = array_to_cloud(pts)

    def naive_cloud_read():
        import struct
        data = bytes(cloud.data)
        return [struct.unpack_from('<fff', data, i * cloud.point_step) for i in range(cloud.width)]
    rows += [
        ('cloud 100k (x,y,z,intensity,ring): numpy -> PointCloud2', median_ms(lambda: array_to_cloud(pts), args.repeat),
         float('nan'), ''),
        ('cloud 100k: PointCloud2 -> structured array', median_ms(lambda: cloud_to_array(cloud), args.repeat),
         median_ms(naive_cloud_read, 3), 'struct.unpack per point'),
        ('cloud 100k: PointCloud2 -> (N,3) xyz, skip NaN', median_ms(lambda: xyz_from_cloud(cloud), args.repeat),
         float('nan'), ''),
    ]
    print(f'{"conversion":58s} {"ours ms":>9s} {"naive ms":>9s}  naive way')
    for name, ours, naive, how in rows:
        print(f'{name:58s} {ours:9.3f} {naive:9.1f}  {how}')
    message_costs(args.repeat)
    print('load after: ' + ' '.join(f'{x:.2f}' for x in os.getloadavg()))


def _per_call_us(fn, calls: int, repeat: int) -> float:
    """Median over ``repeat`` batches of the time per call (microseconds) of ``calls`` calls."""
    def batch():
        for _ in range(calls):
            fn()
    return median_ms(batch, repeat) * 1e3 / calls


def message_costs(repeat: int) -> None:
    import threading
    from types import SimpleNamespace

    import rclpy
    from sensor_msgs.msg import Image
    from depthmarks_ros.ros import local_tap
    from depthmarks_ros.ros.synced_inputs import SyncedInputs
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    depth = np.random.default_rng(1).random((480, 640), dtype=np.float32)
    tiny = np.zeros((1, 1), np.float32)
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node('bench_conversions', context=context)
        pub = node.create_publisher(Image, 'bench_conversions/unsubscribed', 1)
        taken = node.create_publisher(Image, 'bench_conversions/subscribed', 1)
        reader = rclpy.create_node('bench_conversions_reader', context=context)
        reader.create_subscription(Image, 'bench_conversions/subscribed', lambda m: None, 1)   # never spun
        # the hand-over: a tap on the topic (the recorder's callback a no-op) and one input, as
        # DepthmarksNode.create_publisher(hand_over=True) / create_input_subscription make them
        tap = local_tap.LocalTap({'/bench_conversions/handed': lambda m: None})
        handed = local_tap.TappedPublisher(node.create_publisher(Image, 'bench_conversions/handed', 1),
                                           lambda m: None, tap, hand_over=True)
        got = []
        sub = reader.create_subscription(Image, 'bench_conversions/handed', got.append, 1)   # never spun
        tap.add_input(sub.topic_name, got.append, sub)
        end = time.monotonic() + 5.0
        while (taken.get_subscription_count() < 1 or not handed.hands_over()) and time.monotonic() < end:
            time.sleep(0.05)
        if not handed.hands_over():
            raise SystemExit('the tapped publisher does not hand over (its input did not match in 5 s)')
        big_msg, tiny_msg = numpy_to_image(depth, '32FC1', copy=False), numpy_to_image(tiny, '32FC1', copy=False)
        inputs = SimpleNamespace(_clock_reading=None, _clock_generation=0, node=node, _lock=threading.Lock(),
                                 sync=None, _on_event=None)     # what _check_future uses of SyncedInputs
        stamp = node.get_clock().now().nanoseconds

        def handed_over():
            handed.publish(big_msg)
            got.clear()
        rows = [
            ('640x480 32FC1 view message (copy=False): slots / setters', 'us',
             _per_call_us(lambda: numpy_to_image(depth, '32FC1', copy=False), 2000, repeat),
             _per_call_us(lambda: numpy_to_image(depth, '32FC1', msg=Image(), copy=False), 2000, repeat)),
            ('rclpy publish, nobody subscribed: 640x480 32FC1 / 1x1', 'ms',
             median_ms(lambda: pub.publish(big_msg), repeat * 10), median_ms(lambda: pub.publish(tiny_msg), repeat * 10)),
            ('rclpy publish, one DDS reader in this process: 640x480 32FC1 / 1x1', 'ms',
             median_ms(lambda: taken.publish(big_msg), repeat * 10), median_ms(lambda: taken.publish(tiny_msg), repeat * 10)),
            ('640x480 32FC1 to one in-process input: handed over / rclpy publish', 'us',
             _per_call_us(handed_over, 200, repeat), _per_call_us(lambda: taken.publish(big_msg), 200, repeat)),
            ("future-stamp check: SyncedInputs._check_future / a clock read", 'us',
             _per_call_us(lambda: SyncedInputs._check_future(inputs, 0, stamp, time.monotonic()), 2000, repeat),
             _per_call_us(lambda: node.get_clock().now().nanoseconds, 2000, repeat)),
        ]
        if not tap.handed_over or tap.topic_counts('/bench_conversions/handed')['dds']:
            raise SystemExit('the hand-over row published through DDS (all or part), not to the input')
        reader.destroy_node()
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    print(f'{"per message":58s} {"ours":>9s} {"reference":>9s}  unit')
    for name, unit, ours, ref in rows:
        print(f'{name:58s} {ours:9.3f} {ref:9.3f}  {unit}')


if __name__ == '__main__':
    main()
