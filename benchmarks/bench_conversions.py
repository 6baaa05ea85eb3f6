#!/usr/bin/env python3
"""Conversion costs: 640x480 rgb8 image and a 100k-point cloud, both ways.

Prints ours side by side with the naive ways (``msg.data = ndarray`` for writing, a
per-element Python copy for reading) that cv_bridge-less code often uses.
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


if __name__ == '__main__':
    main()
