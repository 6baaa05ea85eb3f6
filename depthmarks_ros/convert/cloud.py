"""sensor_msgs/PointCloud2 <-> numpy structured arrays, without sensor_msgs_py.

Any field layout is read: the structured dtype carries each field's name, type, ``count``
(as a sub-array) and offset, and ``itemsize = point_step`` so padding between fields and after
the last one is kept. Unorganised clouds (height 1) read as shape (width,), organised ones as
(height, width) unless flattened. Reading is a zero-copy view when the byte order is native.

Writing takes a structured array and emits its fields in dtype order with their offsets; the
colour convention is PCL's: ``rgb`` is a FLOAT32 field whose bits hold 0x00RRGGBB
(see :func:`pack_rgb`).
"""
from __future__ import annotations

import sys
from typing import Dict, Optional, Sequence

import numpy as np

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import set_uint8_data

# sensor_msgs/PointField datatype constants
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_DATATYPE_TO_DTYPE = {
    INT8: np.dtype(np.int8), UINT8: np.dtype(np.uint8), INT16: np.dtype(np.int16),
    UINT16: np.dtype(np.uint16), INT32: np.dtype(np.int32), UINT32: np.dtype(np.uint32),
    FLOAT32: np.dtype(np.float32), FLOAT64: np.dtype(np.float64),
}
_DTYPE_TO_DATATYPE = {v.str[1:]: k for k, v in _DATATYPE_TO_DTYPE.items()}
_LITTLE = sys.byteorder == 'little'


def fields_to_dtype(fields: Sequence, point_step: int, big_endian: bool = False) -> np.dtype:
    """Structured dtype of a PointField list (itemsize = point_step)."""
    names, formats, offsets = [], [], []
    order = '>' if big_endian else '<'
    for f in fields:
        if f.datatype not in _DATATYPE_TO_DTYPE:
            raise ConversionError(f'field {f.name!r} has unknown datatype {f.datatype}')
        if not f.name:
            raise ConversionError('a PointField has an empty name')
        if f.name in names:
            raise ConversionError(f'field {f.name!r} appears twice')
        base = _DATATYPE_TO_DTYPE[f.datatype].newbyteorder(order)
        count = int(f.count) if f.count else 1
        end = int(f.offset) + base.itemsize * count
        if end > point_step or f.offset < 0:
            raise ConversionError(f'field {f.name!r} (offset {f.offset}, {count} x {base.itemsize} B) '
                                  f'does not fit in point_step {point_step}')
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
    if point_step <= 0 and fields:
        raise ConversionError(f'point_step must be positive, got {point_step}')
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                     'itemsize': max(int(point_step), 1)})


def dtype_to_fields(dtype: np.dtype):
    """PointField list of a structured dtype (sub-array fields give count > 1)."""
    from sensor_msgs.msg import PointField
    out = []
    for name in dtype.names:
        ftype, offset = dtype.fields[name][:2]
        count = 1
        if ftype.subdtype is not None:
            ftype, shape = ftype.subdtype
            count = int(np.prod(shape))
        key = ftype.newbyteorder('<').str[1:] if ftype.itemsize > 1 else ftype.str[1:]
        if key not in _DTYPE_TO_DATATYPE:
            raise ConversionError(f'field {name!r} has dtype {ftype}, which PointField cannot hold')
        out.append(PointField(name=name, offset=int(offset), datatype=_DTYPE_TO_DATATYPE[key], count=count))
    return out


def cloud_to_array(msg, flatten: bool = True, skip_nans: bool = False,
                   nan_fields: Sequence[str] = ('x', 'y', 'z'), native: bool = True) -> np.ndarray:
    """A PointCloud2 as a structured array.

    flatten: organised clouds become (height*width,) instead of (height, width).
    skip_nans: drop points whose ``nan_fields`` (those present) hold NaN/Inf (implies flatten).
    Raises :class:`ConversionError` for inconsistent messages.
    """
    h, w = int(msg.height), int(msg.width)
    ps, rs = int(msg.point_step), int(msg.row_step)
    dt = fields_to_dtype(msg.fields, ps, bool(msg.is_bigendian))
    if h * w == 0:
        arr = np.zeros((0,), dtype=dt)
        return arr if (flatten or skip_nans) else arr.reshape(h, w)
    if rs < w * ps:
        raise ConversionError(f'row_step {rs} is smaller than width * point_step ({w} * {ps})')
    n = len(msg.data)
    if n != rs * h:
        raise ConversionError(f'data length {n} != row_step * height ({rs} * {h} = {rs * h})')
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    arr = np.ndarray(shape=(h, w), dtype=dt, buffer=buf, strides=(rs, ps))
    if native and bool(msg.is_bigendian) == _LITTLE:
        arr = arr.astype(arr.dtype.newbyteorder('='))
    if flatten or skip_nans:
        arr = arr.reshape(-1)  # a view when rows are dense, else a copy
    if skip_nans:
        keep = np.ones(arr.shape[0], dtype=bool)
        for name in nan_fields:
            if name in arr.dtype.names:
                col = arr[name]
                if col.dtype.kind == 'f':
                    keep &= np.isfinite(col) if col.ndim == 1 else np.all(np.isfinite(col), axis=1)
        if not keep.all():
            arr = arr[keep]
    return arr


def array_to_cloud(arr: np.ndarray, header=None, msg=None):
    """Fill a PointCloud2 from a structured array: (N,) unorganised or (H, W) organised.

    ``is_dense`` is True when no x/y/z value is NaN/Inf.
    """
    from sensor_msgs.msg import PointCloud2
    a = np.asarray(arr)
    if a.dtype.names is None:
        raise ConversionError('array_to_cloud needs a structured array (named fields)')
    if a.ndim == 1:
        h, w = 1, a.shape[0]
    elif a.ndim == 2:
        h, w = a.shape
    else:
        raise ConversionError(f'cloud array must be 1-D or 2-D, got shape {a.shape}')
    if any(a.dtype.fields[n][0].byteorder == ('>' if _LITTLE else '<') for n in a.dtype.names):
        a = a.astype(a.dtype.newbyteorder('='))
    out = msg if msg is not None else PointCloud2()
    if header is not None:
        out.header = header
    out.height, out.width = int(h), int(w)
    out.fields = dtype_to_fields(a.dtype)
    out.is_bigendian = not _LITTLE
    out.point_step = int(a.dtype.itemsize)
    out.row_step = int(a.dtype.itemsize * w)
    dense = True
    for name in ('x', 'y', 'z'):
        if name in a.dtype.names and a.dtype[name].kind == 'f' and a.size:
            dense &= bool(np.isfinite(a[name]).all())
    out.is_dense = dense
    set_uint8_data(out, a)
    return out


def xyz_from_cloud(msg, skip_nans: bool = True) -> np.ndarray:
    """(N, 3) float32 x, y, z of a cloud. Raises :class:`ConversionError` if a field is missing."""
    names = {f.name for f in msg.fields}
    missing = [c for c in 'xyz' if c not in names]
    if missing:
        raise ConversionError(f'cloud has no {"/".join(missing)} field(s) (fields: {sorted(names)})')
    arr = cloud_to_array(msg, flatten=True, skip_nans=skip_nans)
    out = np.empty((arr.shape[0], 3), dtype=np.float32)
    out[:, 0], out[:, 1], out[:, 2] = arr['x'], arr['y'], arr['z']
    return out


def make_struct(n_or_shape, fields: Dict[str, object]) -> np.ndarray:
    """A packed structured array from {name: dtype}, e.g. make_struct(10, {'x': np.float32})."""
    dt = np.dtype([(k, v) for k, v in fields.items()])
    return np.zeros(n_or_shape, dtype=dt)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB to PCL's float32 ``rgb`` (bits 0x00RRGGBB)."""
    rgb = np.asarray(rgb, dtype=np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    return packed.astype(np.uint32).view(np.float32)


def unpack_rgb(rgb_float: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`: (...) float32 to (..., 3) uint8."""
    bits = np.asarray(rgb_float, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 255, (bits >> 8) & 255, bits & 255], axis=-1).astype(np.uint8)


def xyzrgb_cloud(points: np.ndarray, rgb: Optional[np.ndarray] = None, header=None):
    """A PointCloud2 with fields x, y, z (float32) [+ rgb (float32, packed)] from (N, 3) points.

    Organised input (H, W, 3) gives an organised cloud (NaN points kept, is_dense False).
    """
    pts = np.asarray(points, dtype=np.float32)
    shape = pts.shape[:-1]
    fields = {'x': np.float32, 'y': np.float32, 'z': np.float32}
    if rgb is not None:
        fields['rgb'] = np.float32
    arr = make_struct(shape, fields)
    arr['x'], arr['y'], arr['z'] = pts[..., 0], pts[..., 1], pts[..., 2]
    if rgb is not None:
        arr['rgb'] = pack_rgb(np.asarray(rgb).reshape(shape + (3,)))
    return array_to_cloud(arr, header)


POINTS_LAYOUTS = ('organized', 'dense')


def points_cloud(points: np.ndarray, rgb: Optional[np.ndarray] = None, header=None, layout: str = 'organized'):
    """The PointCloud2 of an organised point image: x, y, z float32 [+ rgb float32 (packed)].

    points: (H, W, 3) float32 metres, NaN where invalid (core's ``depth_to_points``); rgb: (H, W, 3)
    uint8 or None. ``layout`` 'organized': height H x width W, every pixel kept (NaN points,
    is_dense False), as stereo_image_proc's points2 and depth_image_proc; 'dense': height 1, only
    points with finite x, y, z, in row-major pixel order (is_dense True).
    """
    if layout not in POINTS_LAYOUTS:
        raise ValueError(f'points layout {layout!r} is not one of {POINTS_LAYOUTS}')
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise ValueError(f'points must be (H, W, 3), got {pts.shape}')
    if layout == 'dense':
        valid = np.isfinite(pts).all(axis=2)
        return xyzrgb_cloud(pts[valid], None if rgb is None else np.asarray(rgb)[valid], header)
    return xyzrgb_cloud(pts, rgb, header)
