"""sensor_msgs/Image <-> numpy: exact round trips, padding, endianness, bad messages."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sensor_msgs.msg import Image

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import (depth_image_to_metres, encoding_info, image_to_mono8,
                                          image_to_numpy, image_to_rgb8, numpy_to_image)

ENCODINGS = ['mono8', 'mono16', 'rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC1', '8UC3', '16UC1', '32FC1',
             '8UC4', '16SC1', '32SC1', '64FC1', '32FC3']


def _random_image(encoding, h, w, rng):
    dtype, ch = encoding_info(encoding)
    shape = (h, w) if ch == 1 else (h, w, ch)
    if dtype.kind == 'f':
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize('encoding', ENCODINGS)
def test_round_trip_every_encoding(encoding):
    arr = _random_image(encoding, 7, 11, np.random.default_rng(0))
    msg = numpy_to_image(arr, encoding)
    assert msg.step == 11 * arr.itemsize * (1 if arr.ndim == 2 else arr.shape[2])
    back = image_to_numpy(msg)
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


@settings(max_examples=60, deadline=None)
@given(encoding=st.sampled_from(ENCODINGS), h=st.integers(1, 9), w=st.integers(1, 9),
       pad=st.integers(0, 3), big=st.booleans(), seed=st.integers(0, 2**16))
def test_padded_and_big_endian_messages_read_exactly(encoding, h, w, pad, big, seed):
    arr = _random_image(encoding, h, w, np.random.default_rng(seed))
    dtype, ch = encoding_info(encoding)
    row = arr.reshape(h, w * ch).astype(dtype.newbyteorder('>' if big else '<'))
    pad_bytes = pad * dtype.itemsize
    raw = b''.join(row[i].tobytes() + b'\xAB' * pad_bytes for i in range(h))
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big),
                step=w * ch * dtype.itemsize + pad_bytes, data=raw)
    np.testing.assert_array_equal(image_to_numpy(msg), arr)


def test_read_is_zero_copy_view():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = numpy_to_image(arr, 'mono8')
    view = image_to_numpy(msg)
    assert not view.flags.owndata
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize('mutate, match', [
    (lambda m: setattr(m, 'encoding', 'yuv_weird'), 'unsupported image encoding'),
    (lambda m: setattr(m, 'step', 3), 'step'),
    (lambda m: setattr(m, 'data', bytes(10)), 'data length'),
    (lambda m: setattr(m, 'height', 5), 'data length'),
])
def test_inconsistent_messages_raise_clear_errors(mutate, match):
    msg = numpy_to_image(np.zeros((4, 6, 3), np.uint8), 'rgb8')
    mutate(msg)
    with pytest.raises(ConversionError, match=match):
        image_to_numpy(msg)


def test_writing_rejects_mismatched_arrays():
    with pytest.raises(ConversionError, match='channel'):
        numpy_to_image(np.zeros((4, 4), np.uint8), 'rgb8')
    with pytest.raises(ConversionError, match='dtype'):
        numpy_to_image(np.zeros((4, 4), np.float64), '32FC1')


def test_colour_and_depth_helpers():
    rgb = np.random.default_rng(1).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    bgr_msg = numpy_to_image(rgb[..., ::-1].copy(), 'bgr8')
    np.testing.assert_array_equal(image_to_rgb8(bgr_msg), rgb)
    assert image_to_mono8(bgr_msg).shape == (5, 6)
    mm = np.array([[0, 1500], [65535, 250]], np.uint16)
    metres = depth_image_to_metres(numpy_to_image(mm, '16UC1'))
    assert np.isnan(metres[0, 0]) and metres[0, 1] == pytest.approx(1.5)
    f = np.array([[np.nan, -1.0], [np.inf, 2.5]], np.float32)
    out = depth_image_to_metres(numpy_to_image(f, '32FC1'))
    assert np.isnan(out[:1]).all() and np.isnan(out[1, 0]) and out[1, 1] == 2.5
    with pytest.raises(ConversionError):
        depth_image_to_metres(numpy_to_image(rgb, 'rgb8'))


def test_writing_copies_once_into_the_same_message_the_setter_makes():
    import array
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    a = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    via_setter = Image(height=12, width=5, encoding='32FC1', step=20)
    via_setter.data = a.tobytes()
    fast = numpy_to_image(a, '32FC1')
    assert isinstance(fast.data, array.array) and fast == via_setter
    assert serialize_message(fast) == serialize_message(via_setter)
    a[0, 0] = -1.0                                     # the message holds its own copy
    assert image_to_numpy(fast)[0, 0] == 0.0
    checked = numpy_to_image(a, '32FC1', msg=Image(check_fields=True))   # field checks on: the setter
    assert np.array_equal(image_to_numpy(checked), a)


def test_writing_without_a_copy_views_the_array_and_serialises_the_same():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    a = np.arange(12 * 5, dtype=np.float32).reshape(12, 5)
    copied = numpy_to_image(a, '32FC1')
    view = numpy_to_image(a, '32FC1', copy=False)
    assert isinstance(view.data, memoryview) and len(view.data) == 240 and view == copied
    assert serialize_message(view) == serialize_message(copied)            # what publish sends
    assert deserialize_message(serialize_message(view), Image) == copied
    a[0, 1] = -1.0                                     # no copy: the message shows the change
    assert image_to_numpy(view)[0, 1] == -1.0 and image_to_numpy(copied)[0, 1] == 1.0
    strided = numpy_to_image(a[:, ::2], '32FC1', copy=False)   # not contiguous: copied
    assert not isinstance(strided.data, memoryview) and np.array_equal(image_to_numpy(strided), a[:, ::2])
    checked = numpy_to_image(a, '32FC1', msg=Image(check_fields=True), copy=False)   # field checks: the setter
    assert not isinstance(checked.data, memoryview) and np.array_equal(image_to_numpy(checked), a)


def test_a_view_message_is_the_setters_message_with_its_header_and_stays_a_normal_message(monkeypatch):
    """numpy_to_image(copy=False) writes a new Image's slots directly (issue 21: the stereo node's
    two images per frame); the result equals, serialises and behaves as the setters' message."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from depthmarks_ros.convert import image as image_module
    fast, image_of = [], image_module._image_of
    monkeypatch.setattr(image_module, '_image_of', lambda *a: (fast.append(1), image_of(*a))[1])
    assert image_module._unchecked(Image)              # the fast path is open here (no field checks)
    a = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    header = Header(frame_id='left')
    header.stamp.sec, header.stamp.nanosec = 7, 9
    view = numpy_to_image(a, 'rgb8', header, copy=False)
    setters = numpy_to_image(a, 'rgb8', header, msg=Image(check_fields=True), copy=False)
    assert isinstance(view.data, memoryview) and view == setters and view.header is header
    assert (view.height, view.width, view.step, view.encoding) == (6, 4, 12, 'rgb8')
    assert serialize_message(view) == serialize_message(setters) and 'rgb8' in repr(view)
    assert len(fast) == 1                              # the view was built by the fast path, the setters' not
    assert numpy_to_image(a, 'rgb8', copy=False) == numpy_to_image(a, 'rgb8')    # no header: a default one
    view.height = 3                                    # the setters still work on it
    assert view.height == 3
