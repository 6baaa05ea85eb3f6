"""Monocular depth: the real loading + inference path on tiny models built here, metric alignment
with outliers, missing/corrupt/wrong weights, and the node over DDS."""
import os

import numpy as np
import pytest
from sensor_msgs.msg import Image

from depthmarks_ros.convert.image import image_to_numpy, numpy_to_image
from depthmarks_ros.core.mono.alignment import Alignment, TemporalAligner, fit_scale_shift
from depthmarks_ros.core.mono.models import ModelNotFound, NotADepthModel, load_depth_model
from depthmarks_ros.testing.ros_harness import NodeProcess


def _tiny_depth_anything(folder):
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    bb = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                      patch_size=14, image_size=70, out_features=['stage1', 'stage2', 'stage3', 'stage4'],
                      reshape_hidden_states=False)
    cfg = DepthAnythingConfig(backbone_config=bb, fusion_hidden_size=16, neck_hidden_sizes=[8, 16, 32, 32],
                              reassemble_hidden_size=32, head_hidden_size=8)
    DepthAnythingForDepthEstimation(cfg).save_pretrained(folder)
    return str(folder)


def _tiny_dpt(folder):
    from transformers import DPTConfig, DPTForDepthEstimation
    cfg = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=64,
                    patch_size=16, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                    backbone_out_indices=[0, 1, 2, 3], reassemble_factors=[4, 2, 1, 0.5])
    DPTForDepthEstimation(cfg).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope='module')
def tiny_da(tmp_path_factory):
    return _tiny_depth_anything(tmp_path_factory.mktemp('da'))


def test_loads_and_runs_depth_anything_and_dpt(tiny_da, tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (97, 131, 3), dtype=np.uint8)  # odd size
    for path in (tiny_da, _tiny_dpt(tmp_path / 'dpt')):
        model = load_depth_model(path, input_size=64)
        out = model.predict(img)
        assert out.shape == (97, 131) and out.dtype == np.float32 and np.isfinite(out).all()
    assert load_depth_model(tiny_da, input_size=64).info.multiple == 14


def test_missing_corrupt_and_wrong_models_fail_clearly(tmp_path, tiny_da):
    with pytest.raises(ModelNotFound, match='download-model'):
        load_depth_model(str(tmp_path / 'nothing_here'))
    with pytest.raises(ModelNotFound, match='download-model'):
        load_depth_model('depth-anything/Depth-Anything-V2-Small-hf')  # not in the local cache, no download
    with pytest.raises(ModelNotFound, match='no model given'):
        load_depth_model('')
    corrupt = tmp_path / 'corrupt'
    os.makedirs(corrupt)
    (corrupt / 'config.json').write_text(open(os.path.join(tiny_da, 'config.json')).read())
    (corrupt / 'model.safetensors').write_bytes(b'\x00' * 100)
    with pytest.raises((ModelNotFound, NotADepthModel, OSError, Exception)):
        load_depth_model(str(corrupt))
    from transformers import BertConfig, BertModel
    BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                         vocab_size=50)).save_pretrained(tmp_path / 'bert')
    with pytest.raises(NotADepthModel, match='not a depth estimation model'):
        load_depth_model(str(tmp_path / 'bert'))
    with pytest.raises(ModelNotFound, match='midas_repo'):
        load_depth_model('midas:DPT_Hybrid')


def test_alignment_recovers_scale_and_shift_with_outliers():
    rng = np.random.default_rng(3)
    depth = rng.uniform(1.0, 20.0, (120, 160)).astype(np.float32)
    s, t = 0.37, 0.05                               # 1/Z = s r + t  ->  r = (1/Z - t) / s
    rel = ((1.0 / depth - t) / s).astype(np.float32)
    ref = np.full_like(depth, np.nan)
    idx = rng.choice(depth.size, 2000, replace=False)
    ref.ravel()[idx] = depth.ravel()[idx] * (1 + rng.normal(0, 0.005, 2000))
    out = rng.choice(idx, 300, replace=False)       # 15% gross outliers
    ref.ravel()[out] = rng.uniform(0.5, 50, 300)
    fit = fit_scale_shift(rel, ref)
    assert fit.scale == pytest.approx(s, rel=0.01) and fit.shift == pytest.approx(t, rel=0.01, abs=0.002)
    z = fit.apply(rel)
    assert np.nanmedian(np.abs(z - depth) / depth) < 0.01
    assert fit_scale_shift(rel, np.full_like(depth, np.nan)) is None  # too few points


def test_temporal_aligner_smooths_and_keeps_last_fit():
    al = TemporalAligner(alpha=0.5, min_points=5)
    rel = np.linspace(1, 10, 100, dtype=np.float32).reshape(10, 10)
    first = al.update(rel, 1.0 / (0.1 * rel))
    assert first.scale == pytest.approx(0.1, rel=1e-3)
    second = al.update(rel, 1.0 / (0.3 * rel))
    assert second.scale == pytest.approx(0.2, rel=1e-2)            # halfway
    assert al.update(rel, None) is second                           # no reference: last fit
    z = Alignment(1.0, 0.0, 1, 0, 1).apply(np.array([-1.0, 0.5, 0.001]), max_depth=100.0)
    assert np.isnan(z[0]) and z[1] == pytest.approx(2.0) and np.isnan(z[2])  # negative / beyond max_depth


@pytest.mark.dds
def test_node_runs_tiny_model_and_aligns_to_reference(probe, tiny_da):
    from rclpy.parameter import Parameter
    from depthmarks_ros.nodes.mono_depth import MonoDepthNode
    node = MonoDepthNode(parameter_overrides=[Parameter('model', value=tiny_da), Parameter('input_size', value=70),
                                              Parameter('reference_topic', value='ref'),
                                              Parameter('min_reference_points', value=10)])
    probe.add_node(node)
    pub_img, pub_ref = probe.publisher(Image, 'camera/image_raw'), probe.publisher(Image, 'ref')
    inv = probe.subscribe(Image, 'mono/inverse_depth', node.output_qos())
    depth = probe.subscribe(Image, 'mono/depth', node.output_qos())
    assert probe.wait_for_subscribers(pub_img) and probe.wait_for_subscribers(pub_ref)
    img = numpy_to_image(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8), 'rgb8')
    bad = numpy_to_image(np.zeros((60, 80), np.float32), '32FC1')  # not a colour image
    pub_img.publish(bad)
    probe.spin_for(0.3)
    node.worker.wait_idle(10)
    assert node.stats.errors == 1
    img.header.stamp = node.get_clock().now().to_msg()
    pub_img.publish(img)
    assert probe.spin_until(lambda: inv, 10)
    assert depth == []                                   # no reference yet: inverse depth only
    rel = image_to_numpy(inv[-1])
    ref = numpy_to_image((1.0 / (0.5 * rel - rel.min() + 0.1)).astype(np.float32), '32FC1')
    for _ in range(20):
        stamp = node.get_clock().now().to_msg()
        ref.header.stamp = img.header.stamp = stamp
        pub_ref.publish(ref)
        probe.spin_for(0.05)
        pub_img.publish(img)
        if probe.spin_until(lambda: depth, 0.5):
            break
    assert depth
    z = image_to_numpy(depth[-1])
    assert np.nanmedian(np.abs(z - image_to_numpy(ref)) / image_to_numpy(ref)) < 0.05
    # issue 17: min_reference_points set through the parameter service applies to the next frame
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(probe.node, 'mono_depth')
    assert client.wait_for_services(10.0)
    fut = client.set_parameters([Parameter('min_reference_points', value=10_000_000)])
    assert probe.spin_until(fut.done, 10) and fut.result().results[0].successful
    assert node.aligner.min_points == 10_000_000
    fitted = node.aligner.current
    ref2 = numpy_to_image((0.5 * image_to_numpy(ref)).astype(np.float32), '32FC1')   # another scale
    n = len(depth)
    for _ in range(20):
        ref2.header.stamp = img.header.stamp = node.get_clock().now().to_msg()
        pub_ref.publish(ref2)
        probe.spin_for(0.05)
        pub_img.publish(img)
        if probe.spin_until(lambda: len(depth) >= n + 2, 0.5):
            break
    assert len(depth) >= n + 2
    assert node.aligner.current is fitted                 # 4800 reference pixels < 10^7: no new fit


@pytest.mark.dds
def test_node_without_weights_idles_with_a_clear_message(probe):
    with NodeProcess('mono_depth', params={'model': '/nonexistent/model'}) as node:
        assert probe.wait_for_publishers('/diagnostics', timeout=20)
        probe.spin_for(1.0)
        assert node.alive()
        assert node.stop() == 0
    assert 'mono_depth is idle' in node.output and 'download-model' in node.output


@pytest.mark.dds
def test_node_process_publishes_inverse_depth_and_exits_cleanly(probe, tiny_da):
    with NodeProcess('mono_depth', params={'model': tiny_da, 'input_size': 70}) as node:
        pub = probe.publisher(Image, 'camera/image_raw')
        inv = probe.subscribe(Image, 'mono/inverse_depth')
        assert probe.wait_for_subscribers(pub, timeout=30)
        img = numpy_to_image(np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8), 'rgb8')
        for _ in range(40):
            img.header.stamp = probe.node.get_clock().now().to_msg()
            pub.publish(img)
            if probe.spin_until(lambda: inv, 0.5):
                break
        assert inv and (inv[-1].height, inv[-1].width) == (60, 80)
        assert node.stop() == 0, node.output


@pytest.mark.dds
def test_node_idles_on_random_weights_takes_compressed_input_and_refuses_huge_frames(probe, tiny_da, tmp_path):
    import shutil
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CompressedImage
    from depthmarks_ros.convert.compressed import encode_compressed
    from depthmarks_ros.nodes.mono_depth import MonoDepthNode
    rand = tmp_path / 'random'
    shutil.copytree(tiny_da, rand)
    (rand / 'model.safetensors').write_bytes(np.random.default_rng(1).integers(0, 255, 5000, np.uint8).tobytes())
    idle = MonoDepthNode(parameter_overrides=[Parameter('model', value=str(rand))])   # no traceback: idles
    values = idle.diagnostic_values()
    idle.destroy_node()
    assert values['status_level'] == 2 and 'weights file cannot be read' in values['status_message']
    node = MonoDepthNode(parameter_overrides=[Parameter('model', value=tiny_da), Parameter('input_size', value=70),
                                              Parameter('reference_topic', value=''),
                                              Parameter('image_transport', value='compressed'),
                                              Parameter('max_image_pixels', value=80 * 60)])
    probe.add_node(node)
    pub = probe.publisher(CompressedImage, 'camera/image_raw/compressed')
    inv = probe.subscribe(Image, 'mono/inverse_depth', node.output_qos())
    assert probe.wait_for_subscribers(pub)
    rgb = np.random.default_rng(1).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    for _ in range(20):
        msg = encode_compressed(rgb, 'rgb8', 'jpeg')
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        if probe.spin_until(lambda: inv, 0.5):
            break
    assert inv and (inv[-1].height, inv[-1].width) == (60, 80)
    big = encode_compressed(np.zeros((61, 80, 3), np.uint8), 'rgb8', 'png')
    pub.publish(big)
    assert probe.spin_until(lambda: node.stats.errors > 0, 5)
    assert 'image 80x61' in node.stats.last_error and 'max_image_pixels' in node.stats.last_error
