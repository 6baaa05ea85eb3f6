"""CompressedImage codec (image_transport's compressed / compressedDepth formats) and the readers
that take either an Image or a CompressedImage."""
import struct

import numpy as np
import pytest

from depthmarks_ros.convert.compressed import (DEPTH_HEADER, compressed_size, decode_compressed,
                                               encode_compressed, encode_compressed_depth, parse_format)
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_size, image_to_mono8, image_to_rgb8


def _rgb(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.dstack([(x * 4) % 256, (y * 5) % 256, np.full_like(x, 200)]).astype(np.uint8)


def test_format_strings_are_those_of_image_transport():
    rgb = _rgb()
    msg = encode_compressed(rgb, 'rgb8', 'jpeg')
    assert msg.format == 'rgb8; jpeg compressed bgr8'
    assert encode_compressed(rgb[:, :, 0], 'mono8', 'png').format == 'mono8; png compressed '
    assert parse_format('rgb8; jpeg compressed bgr8') == ('rgb8', 'compressed', 'jpeg')
    assert parse_format('jpeg') == ('', 'compressed', 'jpeg')
    assert parse_format('32FC1; compressedDepth png') == ('32FC1', 'compressedDepth', 'png')
    assert parse_format('16UC1; compressedDepth') == ('16UC1', 'compressedDepth', 'png')
    with pytest.raises(ConversionError, match='unknown CompressedImage format'):
        parse_format('h264')


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_png_round_trip_is_exact_and_keeps_channel_order(encoding):
    rgb = _rgb()
    arr = rgb if encoding == 'rgb8' else rgb[:, :, ::-1].copy()
    msg = encode_compressed(arr, encoding, 'png')
    back, enc = decode_compressed(msg)
    assert enc == encoding and np.array_equal(back, arr)
    assert np.array_equal(image_to_rgb8(msg), rgb)    # the readers decode a CompressedImage too
    assert image_size(msg) == (64, 48) == compressed_size(msg)


def test_jpeg_decodes_close_to_the_original_in_rgb_order():
    rgb = _rgb()
    msg = encode_compressed(rgb, 'rgb8', 'jpeg', jpeg_quality=95)
    out = image_to_rgb8(msg)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 4
    assert image_size(msg) == (64, 48)
    grey = image_to_mono8(encode_compressed(rgb[:, :, 1], 'mono8', 'jpeg'))
    assert grey.shape == (48, 64)


def test_compressed_depth_32fc1_quantised_as_the_plugin():
    d = np.linspace(0.5, 12.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    d[0, :5] = np.nan
    msg = encode_compressed_depth(d, '32FC1', depth_max=10.0, depth_quantization=100.0)
    assert msg.format == '32FC1; compressedDepth png'
    fmt, a, b = DEPTH_HEADER.unpack(bytes(msg.data[:12]))
    assert fmt == 0 and a == pytest.approx(100 * 101) and b == pytest.approx(1 - 10100 / 10.0)
    assert bytes(msg.data[12:20]) == b'\x89PNG\r\n\x1a\n'    # 12-byte header, then the PNG
    z = depth_image_to_metres(msg)
    ok = d < 10.0
    assert np.all(np.isnan(z[~ok | np.isnan(d)]))
    rel = np.abs(z[ok] - d[ok]) / d[ok]
    # inverse-depth quantisation: error below d / (a / d) = d^2 / a, i.e. < 1% at 10 m
    assert np.all(np.abs(z[ok] - d[ok]) <= d[ok] ** 2 / a + 1e-4) and rel.max() < 0.011
    # the decoder follows the header's parameters, whatever they are
    v = np.full((2, 3), 2000, np.uint16)
    import cv2
    data = struct.pack('<iff', 0, 50.0, -3.0) + cv2.imencode('.png', v)[1].tobytes()
    msg.data = data
    assert np.allclose(depth_image_to_metres(msg), 50.0 / (2000 + 3.0))


def test_compressed_depth_16uc1_is_lossless_and_cut_at_depth_max():
    mm = np.array([[0, 500, 1234], [9999, 10001, 65535]], dtype=np.uint16)
    msg = encode_compressed_depth(mm, '16UC1', depth_max=10.0)
    assert msg.format == '16UC1; compressedDepth png'
    z = depth_image_to_metres(msg)
    assert np.isnan(z[0, 0]) and np.allclose(z[0, 1:], [0.5, 1.234]) and z[1, 0] == pytest.approx(9.999)
    assert np.isnan(z[1, 1:]).all()


def test_broken_compressed_messages_raise_conversion_errors():
    msg = encode_compressed(_rgb(), 'rgb8', 'png')
    msg.data = b'\x89PNG garbage'
    with pytest.raises(ConversionError, match='not a readable'):
        image_to_rgb8(msg)
    depth = encode_compressed_depth(np.ones((4, 4), np.float32))
    depth.data = bytes(depth.data[:10])
    with pytest.raises(ConversionError, match='too short'):
        depth_image_to_metres(depth)
    depth.format = '32FC1; compressedDepth rvl'
    with pytest.raises(ConversionError, match='rvl'):
        depth_image_to_metres(depth)
