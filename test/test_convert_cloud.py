"""PointCloud2 <-> structured arrays: any layout, padding, organised clouds, NaN skipping."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sensor_msgs.msg import PointCloud2, PointField

from depthmarks_ros.convert.cloud import (array_to_cloud, cloud_to_array, fields_to_dtype, pack_rgb,
                                          unpack_rgb, xyz_from_cloud, xyzrgb_cloud)
from depthmarks_ros.convert.errors import ConversionError

DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.float32, np.float64]


@st.composite
def layouts(draw):
    n_fields = draw(st.integers(1, 5))
    names = ['x', 'y', 'z', 'intensity', 'ring', 'extra'][:n_fields]
    fields, offset = [], 0
    for name in names:
        dt = np.dtype(draw(st.sampled_from(DTYPES)))
        count = draw(st.sampled_from([1, 1, 1, 3]))
        offset += draw(st.integers(0, 3))  # padding before the field
        fields.append((name, dt, count, offset))
        offset += dt.itemsize * count
    tail = draw(st.integers(0, 8))
    return fields, offset + tail


def _structured(fields, itemsize):
    return np.dtype({'names': [f[0] for f in fields],
                     'formats': [f[1] if f[2] == 1 else (f[1], (f[2],)) for f in fields],
                     'offsets': [f[3] for f in fields], 'itemsize': itemsize})


@settings(max_examples=60, deadline=None)
@given(layout=layouts(), h=st.integers(1, 4), w=st.integers(0, 6), seed=st.integers(0, 999))
def test_round_trip_any_layout(layout, h, w, seed):
    fields, itemsize = layout
    dt = _structured(fields, itemsize)
    rng = np.random.default_rng(seed)
    arr = np.frombuffer(rng.integers(0, 255, h * w * itemsize, dtype=np.uint8).tobytes(), dtype=dt).reshape(h, w)
    msg = array_to_cloud(arr)
    assert (msg.height, msg.width, msg.point_step) == (h, w, itemsize)
    back = cloud_to_array(msg, flatten=False)
    assert back.shape == (h, w) or w == 0
    for name in dt.names:
        assert np.ascontiguousarray(back[name]).tobytes() == np.ascontiguousarray(arr[name]).tobytes()


def test_row_padding_and_big_endian():
    dt = np.dtype({'names': ['x', 'y', 'z'], 'formats': ['>f4'] * 3, 'offsets': [0, 4, 8], 'itemsize': 16})
    arr = np.zeros((2, 3), dtype=dt)
    arr['x'] = np.arange(6).reshape(2, 3)
    rows = [arr[i].tobytes() + b'\0' * 8 for i in range(2)]
    fields = [PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, c in enumerate('xyz')]
    msg = PointCloud2(height=2, width=3, fields=fields, is_bigendian=True, point_step=16, row_step=56,
                      data=b''.join(rows), is_dense=True)
    out = cloud_to_array(msg)
    np.testing.assert_array_equal(out['x'], np.arange(6, dtype=np.float32))
    assert out['x'].dtype.byteorder in ('=', '<')


def test_read_is_zero_copy():
    msg = xyzrgb_cloud(np.ones((5, 3), np.float32))
    arr = cloud_to_array(msg)
    assert np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))


def test_skip_nans_and_xyz():
    pts = np.array([[1, 2, 3], [np.nan, 0, 0], [4, 5, np.inf], [7, 8, 9]], np.float32)
    msg = xyzrgb_cloud(pts)
    assert not msg.is_dense
    np.testing.assert_array_equal(xyz_from_cloud(msg), pts[[0, 3]])
    assert xyz_from_cloud(msg, skip_nans=False).shape == (4, 3)


def test_organised_cloud_and_rgb():
    pts = np.random.default_rng(0).standard_normal((4, 5, 3)).astype(np.float32)
    rgb = np.random.default_rng(1).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    msg = xyzrgb_cloud(pts, rgb)
    assert (msg.height, msg.width) == (4, 5)
    arr = cloud_to_array(msg, flatten=False)
    np.testing.assert_array_equal(unpack_rgb(arr['rgb']), rgb)
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb)), rgb)


def test_empty_cloud():
    msg = xyzrgb_cloud(np.zeros((0, 3), np.float32))
    assert xyz_from_cloud(msg).shape == (0, 3)


@pytest.mark.parametrize('mutate, match', [
    (lambda m: setattr(m, 'data', bytes(7)), 'data length'),
    (lambda m: setattr(m, 'row_step', 4), 'row_step'),
    (lambda m: m.fields.__setitem__(0, PointField(name='x', offset=0, datatype=99, count=1)), 'unknown datatype'),
    (lambda m: m.fields.__setitem__(0, PointField(name='x', offset=30, datatype=7, count=1)), 'does not fit'),
])
def test_malformed_clouds_raise(mutate, match):
    msg = xyzrgb_cloud(np.ones((3, 3), np.float32))
    mutate(msg)
    with pytest.raises(ConversionError, match=match):
        cloud_to_array(msg)


def test_missing_xyz_fields():
    arr = np.zeros(3, dtype=[('intensity', np.float32)])
    with pytest.raises(ConversionError, match='no x/y/z'):
        xyz_from_cloud(array_to_cloud(arr))


def test_fields_to_dtype_duplicate_name():
    f = PointField(name='x', offset=0, datatype=7, count=1)
    with pytest.raises(ConversionError, match='twice'):
        fields_to_dtype([f, f], 8)
