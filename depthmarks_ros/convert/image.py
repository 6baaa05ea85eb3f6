"""sensor_msgs/Image <-> numpy, without cv_bridge.

Reading is a zero-copy view of ``msg.data`` whenever the layout allows (native byte order;
row padding is honoured through strides). Writing copies the array once into the message's
``array.array`` (:func:`set_uint8_data`; assigning an ndarray to ``msg.data`` costs tens of ms).

Every reader also takes a sensor_msgs/CompressedImage (image_transport's ``compressed`` and
``compressedDepth`` formats, see :mod:`depthmarks_ros.convert.compressed`), decoded first.

Supported encodings: mono8, mono16, rgb8, bgr8, rgba8, bgra8, and every OpenCV-style
``{8U,8S,16U,16S,32S,32F,64F}C{1..4}`` (e.g. 8UC1, 8UC3, 16UC1, 32FC1). Semantics follow
cv_bridge: arrays are (H, W) for one channel and (H, W, C) otherwise; multi-byte data whose
``is_bigendian`` differs from this machine is byte-swapped (a copy) unless ``native=False``.
"""
from __future__ import annotations

import array
import re
import sys
from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.convert.errors import ConversionError

_NAMED = {
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1),
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3),
    'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'rgb16': (np.uint16, 3), 'bgr16': (np.uint16, 3),
    'rgba16': (np.uint16, 4), 'bgra16': (np.uint16, 4),
}
_CV_DEPTH = {'8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
             '32S': np.int32, '32F': np.float32, '64F': np.float64}
_CV_RE = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$')
_LITTLE = sys.byteorder == 'little'


def encoding_info(encoding: str) -> Tuple[np.dtype, int]:
    """(dtype, channels) of an encoding; raises :class:`ConversionError` for unknown ones."""
    if encoding in _NAMED:
        dt, ch = _NAMED[encoding]
        return np.dtype(dt), ch
    m = _CV_RE.match(encoding or '')
    if m:
        return np.dtype(_CV_DEPTH[m.group(1)]), int(m.group(2))
    raise ConversionError(f'unsupported image encoding {encoding!r}')


def image_to_numpy(msg, native: bool = True) -> np.ndarray:
    """View a sensor_msgs/Image as an array (H, W) or (H, W, C).

    Zero-copy when the data is in native byte order (or ``native=False``); the result is then
    read-only-ish: it aliases ``msg.data``. Raises :class:`ConversionError` for inconsistent
    messages (unknown encoding, step too small, data length != step * height).
    """
    dtype, channels = encoding_info(msg.encoding)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    pixel_bytes = dtype.itemsize * channels
    if h < 0 or w < 0:
        raise ConversionError(f'negative image size {w}x{h}')
    if step < w * pixel_bytes:
        raise ConversionError(f'step {step} is smaller than width * pixel size ({w} * {pixel_bytes})')
    n = len(msg.data)
    if n != step * h:
        raise ConversionError(f'data length {n} != step * height ({step} * {h} = {step * h}) '
                              f'for {w}x{h} {msg.encoding}')
    if step % dtype.itemsize and h > 1:
        raise ConversionError(f'step {step} is not a multiple of the element size {dtype.itemsize}')
    big = bool(msg.is_bigendian)
    dt = dtype.newbyteorder('>' if big else '<') if dtype.itemsize > 1 else dtype
    if h == 0 or w == 0:
        arr = np.zeros((h, w, channels), dtype=dtype)
    else:
        buf = np.frombuffer(msg.data, dtype=np.uint8)
        arr = np.ndarray(shape=(h, w, channels), dtype=dt, buffer=buf,
                         strides=(step, pixel_bytes, dtype.itemsize))
        if native and dtype.itemsize > 1 and big == _LITTLE:
            arr = arr.astype(dtype)  # byte swap to native order (copy)
    return arr[:, :, 0] if channels == 1 else arr


def image_array(msg) -> Tuple[np.ndarray, str]:
    """(array, encoding) of an Image (zero-copy view) or a CompressedImage (decoded)."""
    from depthmarks_ros.convert.compressed import decode_compressed, is_compressed
    if is_compressed(msg):
        return decode_compressed(msg)
    return image_to_numpy(msg), msg.encoding


def image_size(msg) -> Tuple[int, int]:
    """(width, height) of an Image, or of a CompressedImage from its PNG/JPEG header (no decoding;
    (0, 0) when the header is not readable: decoding will say why)."""
    from depthmarks_ros.convert.compressed import compressed_size, is_compressed
    if is_compressed(msg):
        return compressed_size(msg) or (0, 0)
    return int(msg.width), int(msg.height)


def numpy_to_image(arr: np.ndarray, encoding: str, header=None, msg=None, copy: bool = True):
    """Fill a sensor_msgs/Image from an array (H, W) or (H, W, C). Returns the message.

    The array's dtype and channel count must match ``encoding``; data is written densely
    (step = width * pixel size) in native byte order. ``copy=False`` (:func:`set_uint8_data`):
    the message's data is a view of a C-contiguous ``arr`` (no copy), for an array that nobody
    changes after the call.
    """
    from sensor_msgs.msg import Image
    dtype, channels = encoding_info(encoding)
    a = np.asarray(arr)
    if a.ndim == 2:
        a_ch = 1
    elif a.ndim == 3:
        a_ch = a.shape[2]
    else:
        raise ConversionError(f'image array must be 2-D or 3-D, got shape {a.shape}')
    if a_ch != channels:
        raise ConversionError(f'encoding {encoding} needs {channels} channel(s), array has {a_ch}')
    if a.dtype != dtype:
        raise ConversionError(f'encoding {encoding} needs dtype {dtype}, array is {a.dtype}')
    height, width, step = int(a.shape[0]), int(a.shape[1]), int(a.shape[1] * channels * dtype.itemsize)
    if msg is None and not copy and a.flags.c_contiguous and _unchecked(Image):
        return _image_of(Image, header, height, width, encoding, step, a)
    out = msg if msg is not None else Image()
    if header is not None:
        out.header = header
    out.height, out.width = height, width
    out.encoding = encoding
    out.is_bigendian = 0 if _LITTLE else 1
    out.step = step
    set_uint8_data(out, a, copy)
    return out


def _unchecked(msg_type) -> bool:
    """Whether new messages of ``msg_type`` skip their field checks (ROS_PYTHON_CHECK_FIELDS unset,
    read by rosidl when the message module is imported) and have the slots :func:`_image_of` fills."""
    module = sys.modules.get(msg_type.__module__)
    return (getattr(module, 'ros_python_check_fields', '1') != '1'
            and getattr(msg_type, '__slots__', None) == _IMAGE_SLOTS)


_IMAGE_SLOTS = ['_header', '_height', '_width', '_encoding', '_is_bigendian', '_step', '_data', '_check_fields']


def _image_of(image_type, header, height: int, width: int, encoding: str, step: int, a: np.ndarray):
    """A new Image holding a view of the C-contiguous ``a`` (``numpy_to_image(..., copy=False)``),
    its fields written straight into its slots: what ``Image()`` and the setters store without
    field checks, in one step instead of building a default Header and setting every field twice
    (the stereo node builds two of these per frame; issue 21)."""
    out = image_type.__new__(image_type)
    out._check_fields = False
    if header is None:
        from std_msgs.msg import Header
        header = Header()
    out._header = header
    out._height, out._width, out._encoding, out._step = height, width, encoding, step
    out._is_bigendian = 0 if _LITTLE else 1
    out._data = memoryview(a.reshape(-1).view(np.uint8))
    return out


def set_uint8_data(msg, arr: np.ndarray, copy: bool = True) -> None:
    """``msg.data = the bytes of arr`` with one copy, or none with ``copy=False``.

    rosidl's uint8[] setter stores ``array.array('B', value)``, a second copy of what
    ``tobytes()`` already copied (1.2 MB per 640x480 depth image, twice per published image;
    issue 21): the array.array is built here from the array's buffer and stored as the setter
    would store it. ``copy=False`` with a C-contiguous ``arr``: the field holds a ``memoryview`` of
    ``arr``'s bytes (``len``, indexing, ``==``, ``bytes()``, ``np.frombuffer`` work as on the
    array.array; it cannot be pickled or deep-copied), and rclpy's publish reads it through the buffer protocol (the C conversion of
    a uint8[] field takes any buffer): the caller must not change ``arr`` afterwards. Messages
    without that layout (or with field checks on, ROS_PYTHON_CHECK_FIELDS=1) go through the
    setter (a copy)."""
    checked = getattr(msg, '_check_fields', True) or not hasattr(type(msg), '_data')
    if not copy and not checked and arr.flags.c_contiguous:
        msg._data = memoryview(arr.reshape(-1).view(np.uint8))
        return
    buf = array.array('B')
    buf.frombytes(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    if checked:
        msg.data = buf
    else:
        msg._data = buf


_TO_RGB = {
    'rgb8': None, 'bgr8': 'COLOR_BGR2RGB', 'rgba8': 'COLOR_RGBA2RGB', 'bgra8': 'COLOR_BGRA2RGB',
    'mono8': 'COLOR_GRAY2RGB', '8UC1': 'COLOR_GRAY2RGB', '8UC3': None,
}


def image_to_rgb8(msg) -> np.ndarray:
    """Any 8-bit colour or mono image message as an (H, W, 3) uint8 RGB array (8UC3 taken as RGB).

    mono16 is scaled down by 256. Raises :class:`ConversionError` for other encodings.
    """
    arr, enc = image_array(msg)
    return _rgb8(arr, enc)


def _rgb8(arr: np.ndarray, enc: str) -> np.ndarray:
    import cv2
    if enc == 'mono16' or enc == '16UC1':
        return cv2.cvtColor((arr >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    if enc not in _TO_RGB:
        raise ConversionError(f'cannot convert {enc!r} to rgb8')
    code = _TO_RGB[enc]
    if code is None:
        return arr
    return cv2.cvtColor(np.ascontiguousarray(arr), getattr(cv2, code))


def image_to_mono8(msg) -> np.ndarray:
    """Any 8-bit colour or mono image message as (H, W) uint8 grey."""
    import cv2
    arr, enc = image_array(msg)
    if enc in ('mono8', '8UC1'):
        return arr
    if enc in ('bgr8',):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGR2GRAY)
    if enc in ('bgra8',):
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(_rgb8(arr, enc), cv2.COLOR_RGB2GRAY)


def depth_image_to_metres(msg) -> np.ndarray:
    """A depth image (32FC1 metres, or 16UC1/mono16 millimetres) as float32 metres, NaN invalid.

    REP-118: 32FC1 is metres with NaN (or non-positive / Inf) for invalid; 16UC1 is millimetres
    with 0 invalid.
    """
    arr, enc = image_array(msg)
    if enc == '32FC1':
        out = np.array(arr, dtype=np.float32, copy=True)
        out[~(np.isfinite(out) & (out > 0))] = np.nan
        return out
    if enc in ('16UC1', 'mono16'):
        out = arr.astype(np.float32) * np.float32(1e-3)
        out[arr == 0] = np.nan
        return out
    raise ConversionError(f'depth image must be 32FC1 or 16UC1, got {enc!r}')


def check_same_size(a, b, what: str = 'images') -> None:
    if (a.width, a.height) != (b.width, b.height):
        raise ConversionError(f'{what} differ in size: {a.width}x{a.height} vs {b.width}x{b.height}')


