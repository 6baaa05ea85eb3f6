"""ImagePublisher: raw images with image_transport-style compressed twins, encoded only while subscribed."""
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from depthmarks_ros.convert.compressed import decode_compressed, decode_compressed_depth
from depthmarks_ros.convert.image import numpy_to_image

pytestmark = pytest.mark.dds
REL = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def publisher_node(rclpy_context):
    import rclpy
    node = rclpy.create_node('image_publisher_test')
    yield node
    node.destroy_node()


def test_twins_encode_only_while_subscribed_and_round_trip(probe, publisher_node):
    from depthmarks_ros.ros.image_publisher import ImagePublisher
    probe.add_node(publisher_node)
    colour = ImagePublisher(publisher_node, 'cam/image_raw', REL, 'image')
    depth = ImagePublisher(publisher_node, 'cam/depth', REL, 'depth')
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 3], -1) + rng.normal(0, 2, (48, 64, 3))
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)        # smooth colours: channel order shows
    d = np.linspace(0.5, 8.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    d[0, :5] = np.nan
    raw = probe.subscribe(Image, 'cam/image_raw', REL)
    assert probe.wait_for_subscribers(colour.raw)
    colour.publish(numpy_to_image(rgb, 'rgb8'))
    assert probe.spin_until(lambda: len(raw) == 1)
    assert colour.encoded == 0                     # nobody on the twin: nothing encoded
    assert colour.get_subscription_count() == 1

    got_c = probe.subscribe(CompressedImage, 'cam/image_raw/compressed', REL)
    got_d = probe.subscribe(CompressedImage, 'cam/depth/compressedDepth', REL)
    assert probe.wait_for_subscribers(colour.twin) and probe.wait_for_subscribers(depth.twin)
    assert depth.get_subscription_count() == 1     # consumed only compressed: still wanted
    msg = numpy_to_image(rgb, 'rgb8')
    msg.header.frame_id = 'cam_optical_frame'
    colour.publish(msg)
    depth.publish(numpy_to_image(d, '32FC1'))
    assert probe.spin_until(lambda: got_c and got_d)
    c = got_c[0]
    assert c.format == 'rgb8; jpeg compressed bgr8' and c.header.frame_id == 'cam_optical_frame'
    back, enc = decode_compressed(c)
    assert enc == 'rgb8' and back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 4          # JPEG q95: close, not equal
    assert len(c.data) < rgb.nbytes
    dd, denc = decode_compressed_depth(got_d[0])
    assert denc == '32FC1' and np.isnan(dd[0, :5]).all()
    ok = np.isfinite(d)
    assert np.nanmax(np.abs(dd[ok] - d[ok]) / d[ok]) < 0.01   # inverse-depth quantisation, 1 %


def test_png_twin_is_lossless_and_bad_kind_refused(probe, publisher_node):
    from depthmarks_ros.ros.image_publisher import CompressionSettings, ImagePublisher
    pub = ImagePublisher(publisher_node, 'cam2/image_raw', REL, 'image', CompressionSettings(image_format='png'))
    img = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64).astype(np.uint8)
    back, enc = decode_compressed(pub.compress(numpy_to_image(img, 'mono8')))
    assert enc == 'mono8' and np.array_equal(back, img)
    with pytest.raises(ValueError, match='kind'):
        ImagePublisher(publisher_node, 'x', REL, 'lidar')


def test_settings_are_read_for_each_frame(publisher_node):
    """A node passes its compression_settings (its compressed_* parameters): a change applies from
    the next frame."""
    from depthmarks_ros.ros.image_publisher import CompressionSettings, ImagePublisher
    current = [CompressionSettings(jpeg_quality=95)]
    pub = ImagePublisher(publisher_node, 'cam3/image_raw', REL, 'image', lambda: current[0])
    depth = ImagePublisher(publisher_node, 'cam3/depth', REL, 'depth', lambda: current[0])
    rng = np.random.default_rng(1)
    img = numpy_to_image(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), 'rgb8')
    d = numpy_to_image(np.linspace(1.0, 30.0, 48 * 64, dtype=np.float32).reshape(48, 64), '32FC1')
    fine, near = pub.compress(img), decode_compressed_depth(depth.compress(d))[0]
    current[0] = CompressionSettings(jpeg_quality=20, depth_max=40.0)
    coarse, far = pub.compress(img), decode_compressed_depth(depth.compress(d))[0]
    assert len(coarse.data) < len(fine.data) * 0.6
    assert np.isnan(near[-1, -1]) and np.isfinite(far).all()    # 30 m: beyond 10 m, within 40 m
    current[0] = CompressionSettings(image_format='png')
    assert pub.compress(img).format == 'rgb8; png compressed bgr8'


def test_a_remapped_output_takes_its_twin_along(probe):
    """image_transport's rule: the twin hangs under the raw topic's resolved name (namespace and remaps
    applied), and a rule naming the twin's full name still moves it. A real node (the simulated rig)
    started with remaps of its image outputs; the moved depth twin carries the rig's depth."""
    from depthmarks_ros.nodes.sim_rig import SimRigNode
    node = SimRigNode(cli_args=['--ros-args', '-r', '__ns:=/rig1', '-r', 'sim/depth_gt:=/moved/depth',
                                '-r', 'camera/image_raw:=cam/image',
                                '-r', 'stereo/left/image_raw:=/pair/left', '-r', '/pair/left/compressed:=/pair/left_jpeg'])
    probe.add_node(node)           # spun and destroyed with the probe
    published = {t for t, _ in node.get_publisher_names_and_types_by_node(node.get_name(), node.get_namespace())}
    assert {'/moved/depth', '/moved/depth/compressedDepth', '/rig1/cam/image', '/rig1/cam/image/compressed',
            '/pair/left', '/pair/left_jpeg', '/rig1/stereo/right/image_raw/compressed'} <= published
    assert not {'/rig1/sim/depth_gt/compressedDepth', '/rig1/camera/image_raw/compressed',
                '/pair/left/compressed'} & published
    got = probe.subscribe(CompressedImage, '/moved/depth/compressedDepth', REL)
    assert probe.spin_until(lambda: got, timeout=10.0)
    depth, enc = decode_compressed_depth(got[0])
    assert enc == '32FC1' and np.isfinite(depth).mean() > 0.5 and 0.5 < np.nanmedian(depth) < 20.0
