"""stereo_depth with backend learned over real DDS: a tiny ONNX network exported here gives the same
outputs and messages as the classical backend; an unusable model drops frames with the reason and
the node keeps running."""
import os
import warnings

import numpy as np
import pytest
import yaml
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from stereo_msgs.msg import DisparityImage

from depthmarks_ros.convert.image import image_to_numpy
from depthmarks_ros.testing.scenes import (publish_and_spin as _send, start_stereo_node,
                                           stereo_pair_msgs as _pair_msgs)

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')


class ConstWithSigma(torch.nn.Module):
    """Disparity 8 px everywhere, sigma 0.5 px (as two outputs)."""

    def forward(self, left, right):
        z = (left[:, :1] + right[:, :1]) * 0.0
        return z + 8.0, z + 0.5


@pytest.fixture(scope='module')
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp('learned')
    path = str(folder / 'const.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(ConstWithSigma(), (torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)), path,
                          dynamo=False, input_names=['left', 'right'], output_names=['disparity', 'sigma'],
                          dynamic_axes={n: {2: 'h', 3: 'w'} for n in ('left', 'right')}, opset_version=17)
    with open(os.path.join(folder, 'const.yaml'), 'w') as f:
        yaml.safe_dump({'color': 'rgb', 'divisible_by': 32, 'confidence': 'sigma'}, f)
    return path


@pytest.mark.dds
def test_learned_backend_gives_every_output_of_the_classical_one(probe, sim, tiny_model):
    node, pubs = start_stereo_node(probe, backend='learned', model_path=tiny_model, disparity_range=64)
    qos = node.output_qos()
    disp = probe.subscribe(DisparityImage, 'stereo/disparity', qos)
    depth = probe.subscribe(Image, 'stereo/depth', qos)
    conf = probe.subscribe(Image, 'stereo/confidence', qos)
    points = probe.subscribe(PointCloud2, 'stereo/points', qos)
    info = probe.subscribe(CameraInfo, 'stereo/camera_info', qos)
    for _ in range(30):
        _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
        if probe.spin_until(lambda: disp and depth and conf and points and info, 0.5):
            break
    assert disp and depth and conf and points and info, node.stats.last_error
    d = disp[-1]
    dv = image_to_numpy(d.image)
    assert dv.shape == (240, 320) and np.allclose(dv, 8.0)
    z = image_to_numpy(depth[-1])
    np.testing.assert_allclose(z, d.f * d.t / 8.0, rtol=1e-5)
    np.testing.assert_allclose(image_to_numpy(conf[-1]), 0.5)      # min(1, 0.25 / sigma 0.5)
    assert depth[-1].encoding == '32FC1' and conf[-1].encoding == '32FC1'
    assert points[-1].width * points[-1].height >= 240 * 320 and depth[-1].header.stamp == info[-1].header.stamp
    assert node.diagnostic_values()['backend'] == 'learned'


@pytest.mark.dds
def test_unusable_model_drops_frames_with_the_reason_and_node_lives(probe, sim):
    node, pubs = start_stereo_node(probe, backend='learned', model_path='/nonexistent/net.onnx', disparity_range=64)
    depth = probe.subscribe(Image, 'stereo/depth', node.output_qos())
    _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
    assert probe.spin_until(lambda: node.stats.errors > 0, 5)
    assert 'does not exist' in node.stats.last_error
    assert depth == []
    # switching to the classical backend at run time brings the outputs back
    node.set_parameters([Parameter('backend', value='opencv')])
    for _ in range(20):
        _send(probe, pubs, _pair_msgs(sim, node.get_clock().now().to_msg()))
        if probe.spin_until(lambda: depth, 0.5):
            break
    assert depth
