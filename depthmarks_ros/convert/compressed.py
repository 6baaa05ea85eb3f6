"""sensor_msgs/CompressedImage <-> numpy, as image_transport's ``compressed`` and
``compressedDepth`` plugins (ros-perception/image_transport_plugins) write and read them.

``compressed`` (JPEG or PNG): ``format`` is ``"<encoding>; <jpeg|png> compressed <target>"``,
e.g. ``"rgb8; jpeg compressed bgr8"``: colour images are compressed as bgr8 (bgr16 for 16-bit
PNG), mono images as they are (the target is then empty: ``"mono8; jpeg compressed "``). Decoding
gives the image back in ``<encoding>``. A bare ``"jpeg"``/``"png"`` (older publishers) decodes
as bgr8 / mono8.

``compressedDepth`` (PNG): ``format`` is ``"<encoding>; compressedDepth png"`` (``"...;
compressedDepth"`` from older publishers), and ``data`` is a 12-byte header - int32 format
(0 = inverse depth) and two float32 quantisation parameters (a, b), native (little-endian)
byte order - followed by a 16-bit PNG. 32FC1 depth d (m) is stored as the integer part of
a / d + b with a = q (q + 1) and b = 1 - a / depth_max (q = ``depth_quantization``, default 100;
``depth_max`` default 10 m), 0 for invalid or >= depth_max; it decodes to a / (v - b) (NaN for
0). 16UC1 (mm) is stored as it is, with values above depth_max (in mm) set to 0. The RVL codec
is not supported (refused with the reason).

Every problem raises :class:`~depthmarks_ros.convert.errors.ConversionError`.
"""
from __future__ import annotations

import struct
from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.convert.errors import ConversionError

DEPTH_HEADER = struct.Struct('<iff')   # compressionFormat (INV_DEPTH = 0), depthParam[2]
INV_DEPTH = 0
_COLOUR_8 = {'rgb8', 'bgr8', 'rgba8', 'bgra8', '8UC3', '8UC4'}
_COLOUR_16 = {'rgb16', 'bgr16', 'rgba16', 'bgra16', '16UC3', '16UC4'}
_MONO_8 = {'mono8', '8UC1'}
_MONO_16 = {'mono16', '16UC1'}


def is_compressed(msg) -> bool:
    """True for a sensor_msgs/CompressedImage (it has ``format``, no ``encoding``)."""
    return hasattr(msg, 'format') and not hasattr(msg, 'encoding')


def parse_format(fmt: str) -> Tuple[str, str, str]:
    """(encoding, transport, codec) of a CompressedImage ``format`` string.

    transport is 'compressed' or 'compressedDepth'; codec 'jpeg', 'png' or 'rvl';
    encoding '' when the publisher did not say (a bare 'jpeg').
    """
    fmt = (fmt or '').strip()
    if ';' not in fmt:
        low = fmt.lower()
        if low in ('jpeg', 'jpg'):
            return '', 'compressed', 'jpeg'
        if low == 'png':
            return '', 'compressed', 'png'
        raise ConversionError(f'unknown CompressedImage format {fmt!r} (expected e.g. "rgb8; jpeg compressed bgr8" '
                              'or "32FC1; compressedDepth png")')
    encoding, rest = (part.strip() for part in fmt.split(';', 1))
    words = rest.split()
    if words and words[0] == 'compressedDepth':
        codec = words[1] if len(words) > 1 else 'png'
        if codec not in ('png', 'rvl'):
            raise ConversionError(f'unknown compressedDepth codec in format {fmt!r}')
        return encoding, 'compressedDepth', codec
    if len(words) >= 2 and words[0] in ('jpeg', 'png') and words[1] == 'compressed':
        return encoding, 'compressed', words[0]
    raise ConversionError(f'unknown CompressedImage format {fmt!r}')


# ---------------------------------------------------------------------------- size without decoding
def compressed_size(msg) -> Optional[Tuple[int, int]]:
    """(width, height) read from the PNG or JPEG header, without decoding; None if not found."""
    data = bytes(msg.data[:65536]) if not isinstance(msg.data, (bytes, bytearray)) else bytes(msg.data[:65536])
    if is_compressed(msg) and parse_format(msg.format)[1] == 'compressedDepth':
        data = data[DEPTH_HEADER.size:]
    return _png_size(data) or _jpeg_size(data)


def _png_size(data: bytes) -> Optional[Tuple[int, int]]:
    if len(data) >= 24 and data[:8] == b'\x89PNG\r\n\x1a\n' and data[12:16] == b'IHDR':
        w, h = struct.unpack('>II', data[16:24])
        return int(w), int(h)
    return None


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    if len(data) < 4 or data[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:   # no length
            i += 2
            continue
        length = struct.unpack('>H', data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack('>HH', data[i + 5:i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


# ---------------------------------------------------------------------------- decode
def _imdecode(data) -> np.ndarray:
    import cv2
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray)) else data, dtype=np.uint8)
    if buf.size == 0:
        raise ConversionError('CompressedImage holds no data')
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ConversionError(f'CompressedImage could not be decoded: {exc}') from exc
    if arr is None:
        raise ConversionError(f'CompressedImage data is not a readable JPEG/PNG ({buf.size} bytes)')
    return arr


def decode_compressed(msg) -> Tuple[np.ndarray, str]:
    """A ``compressed``-transport message as (array, encoding): (H, W) or (H, W, C) in ``encoding``."""
    import cv2
    encoding, transport, _codec = parse_format(msg.format)
    if transport == 'compressedDepth':
        return decode_compressed_depth(msg)
    arr = _imdecode(msg.data)
    ch = 1 if arr.ndim == 2 else arr.shape[2]
    if not encoding:   # bare 'jpeg'/'png': what OpenCV gives (BGR order)
        encoding = {1: 'mono8', 3: 'bgr8', 4: 'bgra8'}.get(ch, '')
        if arr.dtype == np.uint16:
            encoding = {1: 'mono16', 3: 'bgr16', 4: 'bgra16'}.get(ch, '')
        if not encoding:
            raise ConversionError(f'CompressedImage with {ch} channels and no encoding in its format')
        return arr, encoding
    want_ch = 1 if encoding in _MONO_8 | _MONO_16 else (4 if encoding in ('rgba8', 'bgra8', 'rgba16', 'bgra16', '8UC4',
                                                                           '16UC4') else 3)
    if encoding not in _MONO_8 | _MONO_16 | _COLOUR_8 | _COLOUR_16:
        raise ConversionError(f'CompressedImage encoding {encoding!r} is not supported')
    # OpenCV decodes colour as BGR(A); bring it to the published encoding
    if ch == 1 and want_ch != 1:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
        ch = 3
    if ch in (3, 4) and want_ch == 1:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY if ch == 3 else cv2.COLOR_BGRA2GRAY)
    elif ch == 3 and want_ch == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2BGRA)
    elif ch == 4 and want_ch == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    if encoding.startswith('rgb'):
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB if want_ch == 3 else cv2.COLOR_BGRA2RGBA)
    bits = 16 if encoding in _MONO_16 | _COLOUR_16 else 8
    if bits == 8 and arr.dtype != np.uint8:
        arr = (arr >> 8).astype(np.uint8)
    elif bits == 16 and arr.dtype != np.uint16:
        arr = arr.astype(np.uint16) << 8
    return arr, encoding


def decode_compressed_depth(msg) -> Tuple[np.ndarray, str]:
    """A ``compressedDepth``-transport message as (array, encoding): float32 metres with NaN for
    32FC1, uint16 millimetres (0 invalid) for 16UC1."""
    encoding, transport, codec = parse_format(msg.format)
    if transport != 'compressedDepth':
        raise ConversionError(f'format {msg.format!r} is not compressedDepth')
    if codec == 'rvl':
        raise ConversionError('compressedDepth rvl is not supported: publish with format png')
    data = bytes(msg.data)
    if len(data) <= DEPTH_HEADER.size:
        raise ConversionError(f'compressedDepth message too short ({len(data)} bytes; the header alone is '
                              f'{DEPTH_HEADER.size})')
    fmt, a, b = DEPTH_HEADER.unpack(data[:DEPTH_HEADER.size])
    v = _imdecode(data[DEPTH_HEADER.size:])
    if v.ndim != 2 or v.dtype != np.uint16:
        raise ConversionError(f'compressedDepth PNG must be one 16-bit channel, got {v.dtype} shape {v.shape}')
    if encoding == '32FC1':
        if fmt != INV_DEPTH or not np.isfinite([a, b]).all() or a <= 0:
            raise ConversionError(f'compressedDepth header unusable (format {fmt}, a {a}, b {b})')
        vf = v.astype(np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            depth = np.float32(a) / (vf - np.float32(b))
        depth[v == 0] = np.nan
        return depth.astype(np.float32, copy=False), '32FC1'
    if encoding in ('16UC1', 'mono16'):
        return v, encoding
    raise ConversionError(f'compressedDepth encoding must be 32FC1 or 16UC1, got {encoding!r}')


# ---------------------------------------------------------------------------- encode
def _compressed_msg(header, fmt: str, data: bytes):
    from sensor_msgs.msg import CompressedImage
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = data
    return msg


def encode_compressed(arr: np.ndarray, encoding: str, codec: str = 'jpeg', header=None,
                      jpeg_quality: int = 95, png_level: int = 3):
    """A CompressedImage as image_transport's ``compressed`` publisher writes it."""
    import cv2
    if codec not in ('jpeg', 'png'):
        raise ConversionError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    a = np.ascontiguousarray(arr)
    colour = encoding in _COLOUR_8 | _COLOUR_16
    bits = 16 if encoding in _MONO_16 | _COLOUR_16 else 8
    if encoding not in _MONO_8 | _MONO_16 | _COLOUR_8 | _COLOUR_16:
        raise ConversionError(f'cannot compress encoding {encoding!r}')
    if codec == 'jpeg' and bits == 16:
        a = (a >> 8).astype(np.uint8)   # OpenCV writes 8-bit JPEG
        bits_out = 8
    else:
        bits_out = bits
    target = ''
    if colour:
        if a.ndim == 3 and a.shape[2] == 4:
            a = cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if encoding.startswith('rgb') else cv2.COLOR_BGRA2BGR)
        elif encoding.startswith('rgb'):
            a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
        target = f'bgr{bits_out}' if codec == 'png' else 'bgr8'
    if codec == 'jpeg':
        ok, buf = cv2.imencode('.jpg', a, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        ok, buf = cv2.imencode('.png', a, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ConversionError(f'{codec} encoding failed')
    return _compressed_msg(header, f'{encoding}; {codec} compressed {target}', buf.tobytes())


def encode_compressed_depth(depth: np.ndarray, encoding: str = '32FC1', header=None, depth_max: float = 10.0,
                            depth_quantization: float = 100.0, png_level: int = 9):
    """A CompressedImage as image_transport's ``compressedDepth`` publisher writes it (PNG).

    ``depth``: float32 metres (NaN invalid) for 32FC1, uint16 millimetres for 16UC1. Depths
    whose quantised value would not fit 16 bits (closer than about a / 65535 m) are clipped.
    """
    import cv2
    if encoding == '32FC1':
        d = np.asarray(depth, dtype=np.float32)
        q = np.float32(depth_quantization)
        a = np.float32(q * (q + np.float32(1.0)))
        b = np.float32(np.float32(1.0) - a / np.float32(depth_max))
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = a / d + b
        keep = d < np.float32(depth_max)        # False for NaN, as in the plugin
        inv = np.where(keep, np.clip(inv, 0, 65535), 0)
        v = np.floor(inv).astype(np.uint16)       # C++ float -> unsigned short truncates
        head = DEPTH_HEADER.pack(INV_DEPTH, float(a), float(b))
    elif encoding in ('16UC1', 'mono16'):
        v = np.array(depth, dtype=np.uint16, copy=True)
        v[v > np.uint16(min(int(depth_max * 1000.0), 65535))] = 0
        head = DEPTH_HEADER.pack(INV_DEPTH, 0.0, 0.0)
    else:
        raise ConversionError(f'compressedDepth needs 32FC1 or 16UC1 depth, got {encoding!r}')
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(v), [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ConversionError('png encoding failed')
    return _compressed_msg(header, f'{encoding}; compressedDepth png', head + buf.tobytes())
