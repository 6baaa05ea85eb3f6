"""Learned stereo backend: tiny networks built and exported here (ONNX and TorchScript), the whole
path (convention YAML, colour order, normalisation, padding, reduced-scale output, confidence),
errors, and the refinement network trained by `depthmarks train-stereo` (ROS-free)."""
import os
import warnings

import numpy as np
import pytest
import yaml

torch = pytest.importorskip('torch')
pytest.importorskip('onnxruntime')

from depthmarks_ros.core.stereo.fill import fill_holes_rows  # noqa: E402
from depthmarks_ros.core.stereo.learned import (SIGMA_REF_PX, LearnedModelError, LearnedStereo,  # noqa: E402
                                                pad_amounts, shipped_model_path)


# ------------------------------------------------------------------------------ tiny networks
class Const(torch.nn.Module):
    """Disparity = c everywhere, at 1/k of the input size (k = 1: input size)."""

    def __init__(self, c=3.0, k=1):
        super().__init__()
        self.c, self.k = c, k

    def forward(self, left, right):
        d = left[:, :1] * 0.0 + right[:, :1] * 0.0 + self.c
        if self.k > 1:
            d = torch.nn.functional.avg_pool2d(d, self.k)
        return d


class NeedsMultipleOf(torch.nn.Module):
    """Fails unless H, W are multiples of 8 (as real networks with 1/8 pyramids do); outputs the
    row index so the crop of the padding can be checked."""

    def forward(self, left, right):
        h, w = left.shape[-2], left.shape[-1]
        blocks = (left[:, :1] + right[:, :1]).reshape(1, 1, h // 8, 8, w // 8, 8).reshape(1, 1, h, w)
        rows = torch.arange(h, dtype=left.dtype).view(1, 1, h, 1)
        return rows + 0.0 * blocks + 1.0


class Channel0(torch.nn.Module):
    """Disparity = the left input's channel 0 (after the backend's normalisation)."""

    def forward(self, left, right):
        return left[:, :1] + 0.0 * right[:, :1]


class WithSigma(torch.nn.Module):
    """Two outputs: disparity 5, sigma = 0.5 on the left half, 2.0 on the right half."""

    def forward(self, left, right):
        z = left[:, :1] * 0.0 + right[:, :1] * 0.0
        w = left.shape[-1]
        cols = torch.arange(w, dtype=left.dtype).view(1, 1, 1, w)
        return z + 5.0, z + 0.5 + 1.5 * (cols >= w // 2).to(left.dtype)


class Concat(torch.nn.Module):
    """One input with left and right stacked: disparity = left grey - right grey (x 255)."""

    def forward(self, x):
        return (x[:, :1] - x[:, 1:2]) * 255.0


class Negative(torch.nn.Module):
    def forward(self, left, right):
        return (left[:, :1] + right[:, :1]) * 0.0 - 4.0


class HalfNaN(torch.nn.Module):
    def forward(self, left, right):
        h = left.shape[-2]
        rows = torch.arange(h, dtype=left.dtype).view(1, 1, h, 1)
        d = (left[:, :1] + right[:, :1]) * 0.0 + 2.0
        return torch.where(rows < 2, torch.full_like(d, float('nan')), d)


class ThreeChannels(torch.nn.Module):
    def forward(self, left, right):
        return (left[:, :1] + right[:, :1]).repeat(1, 3, 1, 1)


def _export(tmp_path, module, spec, fmt, name='net', inputs=2, channels=1):
    path = str(tmp_path / (name + ('.onnx' if fmt == 'onnx' else '.pt')))
    example = tuple(torch.zeros(1, channels, 24, 32) for _ in range(inputs))
    if fmt == 'onnx':
        names = ['left', 'right'][:inputs] if inputs == 2 else ['x']
        axes = {n: {2: 'h', 3: 'w'} for n in names}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(module, example, path, dynamo=False, input_names=names, dynamic_axes=axes,
                              opset_version=17)
    else:
        torch.jit.script(module).save(path)
    with open(os.path.splitext(path)[0] + '.yaml', 'w') as f:
        yaml.safe_dump(spec, f)
    return path


GREY = {'color': 'gray', 'divisible_by': 1}
FORMATS = ['onnx', 'torchscript']


def _pair(h=30, w=44, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (h, w), dtype=np.uint8), rng.integers(0, 255, (h, w), dtype=np.uint8)


@pytest.mark.parametrize('fmt', FORMATS)
def test_constant_network_gives_same_result_type_as_classical(tmp_path, fmt):
    m = LearnedStereo(_export(tmp_path, Const(3.0), GREY, fmt), device='cpu')
    left, right = _pair()
    r = m.compute(left, right)
    assert r.disparity.shape == left.shape and r.disparity.dtype == np.float32
    np.testing.assert_allclose(r.disparity, 3.0, atol=1e-5)
    assert r.confidence.shape == left.shape and np.all(r.confidence == 1.0)
    assert r.valid_window == (0, 0, 44, 30)
    assert r.sigma is None
    assert m.compute(left, right, confidence=False).confidence is None


@pytest.mark.parametrize('fmt', FORMATS)
def test_padding_to_a_multiple_and_crop_back(tmp_path, fmt):
    spec = dict(GREY, divisible_by=8, pad_position='top_left')
    m = LearnedStereo(_export(tmp_path, NeedsMultipleOf(), spec, fmt), device='cpu')
    left, right = _pair(30, 44)   # 30 -> 32 (2 rows on top), 44 -> 48
    r = m.compute(left, right)
    assert r.disparity.shape == (30, 44)
    # the network saw row index + 1; the 2 padded rows on top are cropped away
    np.testing.assert_allclose(r.disparity[:, 0], np.arange(30) + 3.0)
    assert pad_amounts(30, 44, 8, 'centre') == (1, 1, 2, 2)
    # without padding the network itself refuses: a clear error, not a crash
    spec1 = dict(GREY, divisible_by=1)
    m1 = LearnedStereo(_export(tmp_path, NeedsMultipleOf(), spec1, fmt, 'nopad'), device='cpu')
    with pytest.raises(LearnedModelError, match='the model failed on inputs of shape'):
        m1.compute(left, right)


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('units,expected', [('output', 8.0), ('input', 2.0)])
def test_reduced_scale_output_is_upsampled_and_scaled(tmp_path, fmt, units, expected):
    spec = dict(GREY, divisible_by=4, disparity_units=units)
    m = LearnedStereo(_export(tmp_path, Const(2.0, k=4), spec, fmt), device='cpu')
    left, right = _pair(30, 42)
    r = m.compute(left, right)
    assert r.disparity.shape == (30, 42)
    np.testing.assert_allclose(r.disparity, expected, atol=1e-4)


@pytest.mark.parametrize('fmt', FORMATS)
def test_colour_order_and_normalisation(tmp_path, fmt):
    img = np.zeros((16, 24, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 50   # RGB
    for color, mean, std, expected in (('rgb', [0.5, 0, 0], [0.25, 1, 1], (200 / 255 - 0.5) / 0.25),
                                       ('bgr', [0, 0, 0], [1, 1, 1], 50 / 255)):
        spec = {'color': color, 'mean': mean, 'std': std, 'divisible_by': 8}
        m = LearnedStereo(_export(tmp_path, Channel0(), spec, fmt, f'c_{color}', channels=3), device='cpu')
        r = m.compute(img, img)
        np.testing.assert_allclose(r.disparity, expected, rtol=1e-5)
    # a grey image for a colour network: repeated into the three channels
    r = m.compute(img[..., 0], img[..., 0])
    np.testing.assert_allclose(r.disparity, 200 / 255, rtol=1e-5)


@pytest.mark.parametrize('fmt', FORMATS)
def test_sigma_output_becomes_confidence_and_sigma(tmp_path, fmt):
    spec = dict(GREY, confidence='sigma')
    m = LearnedStereo(_export(tmp_path, WithSigma(), spec, fmt), device='cpu')
    left, right = _pair(20, 40)
    r = m.compute(left, right)
    np.testing.assert_allclose(r.disparity, 5.0)
    np.testing.assert_allclose(r.sigma[:, :20], 0.5)
    np.testing.assert_allclose(r.sigma[:, 20:], 2.0)
    np.testing.assert_allclose(r.confidence[:, :20], SIGMA_REF_PX / 0.5)
    np.testing.assert_allclose(r.confidence[:, 20:], SIGMA_REF_PX / 2.0)


def test_concatenated_input(tmp_path):
    spec = dict(GREY, inputs='concat')
    m = LearnedStereo(_export(tmp_path, Concat(), spec, 'onnx', inputs=1, channels=2), device='cpu')
    left = np.full((16, 16), 100, np.uint8)
    right = np.full((16, 16), 60, np.uint8)
    np.testing.assert_allclose(m.compute(left, right).disparity, 40.0, atol=1e-3)


# ------------------------------------------------------------------------------ errors
def test_missing_files_and_bad_yaml(tmp_path):
    with pytest.raises(LearnedModelError, match='does not exist'):
        LearnedStereo(str(tmp_path / 'nothing.onnx'))
    path = _export(tmp_path, Const(), GREY, 'onnx')
    os.remove(os.path.splitext(path)[0] + '.yaml')
    with pytest.raises(LearnedModelError, match='no input-convention YAML'):
        LearnedStereo(path)
    for bad, msg in (({'colour': 'rgb'}, 'unknown keys colour'), ({'color': 'hsv'}, 'color'),
                     ({'divisible_by': 0}, 'divisible_by'), ({'std': [0.0]}, 'std has a zero'),
                     ({'kind': 'refine'}, 'needs features')):
        with open(os.path.splitext(path)[0] + '.yaml', 'w') as f:
            yaml.safe_dump(bad, f)
        with pytest.raises(LearnedModelError, match=msg):
            LearnedStereo(path)
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a model')
    (tmp_path / 'garbage.yaml').write_text('color: gray\n')
    with pytest.raises(LearnedModelError, match='cannot load'):
        LearnedStereo(str(garbage))
    (tmp_path / 'garbage.onnx').write_bytes(b'not a model')
    with pytest.raises(LearnedModelError, match='onnxruntime cannot load'):
        LearnedStereo(str(tmp_path / 'garbage.onnx'), spec_path=str(tmp_path / 'garbage.yaml'))


def test_declared_input_channels_checked_at_load(tmp_path):
    path = _export(tmp_path, Channel0(), {'color': 'rgb'}, 'onnx', channels=3)
    with open(os.path.splitext(path)[0] + '.yaml', 'w') as f:
        yaml.safe_dump({'color': 'gray'}, f)
    with pytest.raises(LearnedModelError, match='input 0 has 3 channels'):
        LearnedStereo(path)
    with open(os.path.splitext(path)[0] + '.yaml', 'w') as f:
        yaml.safe_dump({'color': 'rgb', 'inputs': 'concat'}, f)
    with pytest.raises(LearnedModelError, match='has 2 inputs'):
        LearnedStereo(path)


@pytest.mark.parametrize('fmt', FORMATS)
def test_bad_outputs_are_errors_not_crashes(tmp_path, fmt):
    left, right = _pair(24, 32)
    m = LearnedStereo(_export(tmp_path, ThreeChannels(), GREY, fmt, 'three'), device='cpu')
    with pytest.raises(LearnedModelError, match='output 0 has 3 channels'):
        m.compute(left, right)
    m = LearnedStereo(_export(tmp_path, Negative(), GREY, fmt, 'neg'), device='cpu')
    with pytest.raises(LearnedModelError, match='negative.*disparity_sign: -1'):
        m.compute(left, right)
    m = LearnedStereo(_export(tmp_path, Negative(), dict(GREY, disparity_sign=-1), fmt, 'neg2'), device='cpu')
    np.testing.assert_allclose(m.compute(left, right).disparity, 4.0)
    # a few NaN rows: those pixels are invalid (NaN, confidence 0) and counted, the rest kept
    m = LearnedStereo(_export(tmp_path, HalfNaN(), GREY, fmt, 'nan'), device='cpu')
    r = m.compute(left, right)
    assert np.isnan(r.disparity[:2]).all() and np.all(r.disparity[2:] == 2.0)
    assert np.all(r.confidence[:2] == 0) and m.invalid_pixels == 2 * 32
    # an output of another size that is no integer fraction of the input
    m = LearnedStereo(_export(tmp_path, Const(1.0, k=3), dict(GREY, divisible_by=4), fmt, 'k3'), device='cpu')
    with pytest.raises(LearnedModelError, match='integer fraction'):
        m.compute(left, right)
    with pytest.raises(ValueError, match='differ in size'):
        m.compute(left, right[:, :-1])


def test_cuda_and_half_requests_are_checked(tmp_path):
    path = _export(tmp_path, Const(), GREY, 'torchscript')
    with pytest.raises(LearnedModelError, match='half precision runs only on CUDA'):
        LearnedStereo(path, device='cpu', half=True)
    with pytest.raises(LearnedModelError, match='device'):
        LearnedStereo(path, device='tpu')
    if not torch.cuda.is_available():
        with pytest.raises(LearnedModelError, match='no CUDA'):
            LearnedStereo(path, device='cuda')
        with pytest.raises(LearnedModelError, match='CUDA/TensorRT'):
            LearnedStereo(_export(tmp_path, Const(), GREY, 'onnx'), device='cuda')
    assert LearnedStereo(path, device='auto').device in ('cpu', 'cuda')


# ------------------------------------------------------------------------------ refinement network
def test_fill_holes_rows_rule():
    n = np.nan
    d = np.array([[n, 5, n, n, 3, n], [n] * 6, [1, 2, 0, 4, n, n]], np.float32)
    np.testing.assert_array_equal(fill_holes_rows(d), [[5, 5, 3, 3, 3, 3], [1] * 6, [1, 2, 2, 4, 4, 4]])


@pytest.fixture(scope='module')
def sim_pair():
    import cv2
    from depthmarks_ros.core.sim import SimConfig, SimRig
    f = SimRig(SimConfig(width=320, height=240, seed=7)).render(0.0)
    return (cv2.cvtColor(f.left_rgb, cv2.COLOR_RGB2GRAY), cv2.cvtColor(f.right_rgb, cv2.COLOR_RGB2GRAY),
            f.disparity_gt)


def test_train_stereo_command_exports_a_refine_model_that_runs(tmp_path, sim_pair):
    from depthmarks_ros.cli.main import main
    out = tmp_path / 'refine.onnx'
    assert main(['train-stereo', '-o', str(out), '--iterations', '4', '--sim-frames', '1', '--batch', '2',
                 '--crop', '64', '128', '--width', '8']) == 0
    spec = yaml.safe_load((tmp_path / 'refine.yaml').read_text())
    assert spec['kind'] == 'refine' and spec['metadata']['config']['seed'] == 0
    assert spec['metadata']['iterations_done'] == 4 and 'split_rule' in spec['metadata']
    left, right, _gt = sim_pair
    m = LearnedStereo(str(out))
    r = m.compute(left, right)
    assert r.disparity.shape == left.shape and np.isfinite(r.disparity).all()   # dense: holes filled
    assert np.all(r.sigma > 0) and np.all((r.confidence > 0) & (r.confidence <= 1))
    assert main(['train-stereo', '-o', str(out), '--crop', '60', '128']) == 2


def test_refine_model_with_zero_residual_returns_the_filled_classical_disparity(tmp_path, sim_pair):
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    from depthmarks_ros.core.stereo.refine_net import build_network
    from depthmarks_ros.core.stereo.train_refine import export
    net = build_network(8).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, np.log(0.5)]))
    path = str(tmp_path / 'zero.onnx')
    export(net, path, 2.0, {'test': True}, 64)
    left, right, _gt = sim_pair
    r = LearnedStereo(path).compute(left, right)
    base = StereoMatcher(StereoParams(disparity_range=64)).compute(left, right)
    np.testing.assert_allclose(r.disparity, fill_holes_rows(base.disparity), atol=1e-4)
    np.testing.assert_allclose(r.sigma, 1.0, rtol=1e-4)          # sigma_scale 2 x b 0.5
    # the node's classical parameters replace the YAML's
    r2 = LearnedStereo(path, classical=StereoParams(disparity_range=32)).compute(left, right)
    assert not np.allclose(r2.disparity, r.disparity)


def test_shipped_model_is_small_documented_and_its_sigma_ranks_errors(sim_pair):
    path = shipped_model_path()
    if not os.path.isfile(path):
        pytest.skip('no shipped refinement model yet')
    assert os.path.getsize(path) < 5e6
    spec = yaml.safe_load(open(os.path.splitext(path)[0] + '.yaml'))
    md = spec['metadata']
    assert 'sha1' in md['split_rule'] and md['real_fit_frames']
    # the KITTI report split (sha1 rule) was never trained on
    assert not any(n.endswith(s) for n in md['real_fit_frames']
                   for s in ('000000_10', '000106_10', '000141_10', '000166_10'))
    left, right, gt = sim_pair   # texture seed 7 at 320x240: not a training frame
    r = LearnedStereo(path).compute(left, right)
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    base = fill_holes_rows(StereoMatcher(StereoParams()).compute(left, right).disparity)
    ok = np.isfinite(gt)
    err = np.abs(r.disparity[ok] - gt[ok])
    assert np.mean(err > 2) <= np.mean(np.abs(base[ok] - gt[ok]) > 2) + 0.005   # no worse than its start
    sig = r.sigma[ok]
    low = sig <= np.median(sig)
    assert err[low].mean() < 0.5 * err[~low].mean()   # the half with the smaller sigma has far smaller errors


def test_depthmarks_stereo_with_the_learned_backend(tmp_path, sim_pair):
    import cv2
    from depthmarks_ros.cli.main import main
    left, right, _gt = sim_pair
    cv2.imwrite(str(tmp_path / 'l.png'), left)
    cv2.imwrite(str(tmp_path / 'r.png'), right)
    model = _export(tmp_path, WithSigma(), dict(GREY, confidence='sigma'), 'onnx')
    out = tmp_path / 'out'
    assert main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(out), '--backend', 'learned',
                 '--model', model, '--focal', '100', '--baseline', '0.1']) == 0
    np.testing.assert_allclose(np.load(out / 'depth.npy'), 100 * 0.1 / 5.0, rtol=1e-5)
    assert np.load(out / 'sigma.npy').shape == left.shape
    assert main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(out), '--backend', 'learned',
                 '--model', str(tmp_path / 'missing.onnx')]) == 2
    assert main(['stereo', str(tmp_path / 'l.png'), str(tmp_path / 'r.png'), '-o', str(out),
                 '--model', model]) == 2
