"""Learned stereo backend (ROS-free): a disparity network from an ONNX or TorchScript file.

The model file comes with a small YAML beside it (``model.onnx`` -> ``model.yaml``, or
``model.onnx.yaml``) that declares its convention; see docs/learned_stereo.md for every key:

    format: onnx                 # onnx | torchscript (default: from the file extension)
    kind: disparity              # disparity: (left, right) -> disparity
                                 # refine: (left, right, classical disparity) -> refined disparity
                                 #   (+ sigma); its input features are built by refine_net.py
    inputs: separate             # separate: two inputs (left, right); concat: one, channels stacked
    color: rgb                   # rgb | bgr | gray  (channel order the network wants)
    scale: 0.00392156862745098   # pixel value x scale, then (x - mean) / std per channel
    mean: [0.485, 0.456, 0.406]
    std: [0.229, 0.224, 0.225]
    divisible_by: 32             # input padded up to a multiple of this
    pad_mode: replicate          # replicate | constant | reflect
    pad_position: bottom_right   # bottom_right | top_left | centre
    disparity_units: output      # output: px of the output grid (scaled up with it) | input: px of the input
    disparity_sign: 1            # -1 for networks that output negative (flow-like) disparities
    confidence: none             # none | probability (in [0, 1]) | sigma (px) | log_sigma:
                                 #   what a second output (or channel 1 of a 2-channel output) holds
    max_disparity: 0             # > 0: larger values are invalid (NaN)

``LearnedStereo.compute(left, right)`` returns the same :class:`StereoResult` as the classical
matcher (disparity px NaN invalid, confidence in [0, 1]) plus ``sigma`` (px) when the model has
one. Errors are :class:`LearnedModelError` (a ValueError) with a message that says what is wrong:
missing files, bad YAML, inputs or outputs of the wrong shape, NaN / negative disparities.

Runtime: onnxruntime with the TensorRT / CUDA execution providers when ``device`` is ``cuda`` or
``auto`` and they are present, else the CPU provider; TorchScript with torch on ``cpu`` or ``cuda``
(``half`` precision only on CUDA). The CUDA paths are written but were not run on a GPU here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.matching import StereoResult

FORMATS = ('onnx', 'torchscript')
KINDS = ('disparity', 'refine')
COLORS = ('rgb', 'bgr', 'gray')
CONFIDENCE_KINDS = ('none', 'probability', 'sigma', 'log_sigma')
DEVICES = ('auto', 'cpu', 'cuda')

# confidence published for a model with a sigma output: min(1, SIGMA_REF_PX / sigma), so that
# depth_fusion's sigma_d = stereo_sigma_d / confidence equals the network's sigma when
# stereo_sigma_d = SIGMA_REF_PX (docs/learned_stereo.md)
SIGMA_REF_PX = 0.25
# more invalid (NaN / negative / out of range) output pixels than this: the frame is an error
MAX_INVALID_FRACTION = 0.5


@dataclass
class LearnedResult(StereoResult):
    """StereoResult plus the disparity sigma (px, NaN invalid) of models that give one."""
    sigma: Optional[np.ndarray] = None


class LearnedModelError(ValueError):
    """The model file, its YAML or its output is unusable (the message says why)."""


@dataclass
class ModelSpec:
    format: str = ''
    kind: str = 'disparity'
    inputs: str = 'separate'
    color: str = 'rgb'
    scale: float = 1.0 / 255.0
    mean: List[float] = field(default_factory=lambda: [0.0])
    std: List[float] = field(default_factory=lambda: [1.0])
    divisible_by: int = 8
    pad_mode: str = 'replicate'
    pad_position: str = 'bottom_right'
    disparity_units: str = 'output'
    disparity_sign: float = 1.0
    confidence: str = 'none'
    max_disparity: float = 0.0
    # refine models: the feature set (refine_net.FEATURES) and the classical matcher it refines
    features: str = ''
    classical: Dict[str, Any] = field(default_factory=dict)
    sigma_scale: float = 1.0     # sigma = sigma_scale x the network's sigma (calibrated on the fit split)
    metadata: Dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return 1 if self.color == 'gray' else 3

    def validate(self, where: str) -> None:
        def bad(msg):
            raise LearnedModelError(f'{where}: {msg}')
        for name, allowed in (('format', FORMATS), ('kind', KINDS), ('inputs', ('separate', 'concat')),
                              ('color', COLORS), ('pad_mode', ('replicate', 'constant', 'reflect')),
                              ('pad_position', ('bottom_right', 'top_left', 'centre')),
                              ('disparity_units', ('output', 'input')), ('confidence', CONFIDENCE_KINDS)):
            if getattr(self, name) not in allowed:
                bad(f'{name} = {getattr(self, name)!r}, expected one of {", ".join(allowed)}')
        if not isinstance(self.divisible_by, int) or not 1 <= self.divisible_by <= 512:
            bad(f'divisible_by = {self.divisible_by!r}, expected an integer in [1, 512]')
        for name in ('mean', 'std'):
            v = getattr(self, name)
            if len(v) not in (1, self.channels):
                bad(f'{name} has {len(v)} values, expected 1 or {self.channels} (color {self.color})')
        if any(s == 0 for s in self.std):
            bad('std has a zero')
        if self.disparity_sign not in (1, -1, 1.0, -1.0):
            bad(f'disparity_sign = {self.disparity_sign!r}, expected 1 or -1')
        if self.kind == 'refine' and not self.features:
            bad('kind refine needs features (the feature set the network was trained on)')
        if not self.sigma_scale > 0:
            bad('sigma_scale must be > 0')


def spec_path_for(model_path: str) -> str:
    """The YAML beside ``model_path``: ``<stem>.yaml`` or ``<file>.yaml`` (first that exists)."""
    stem = os.path.splitext(model_path)[0]
    for cand in (stem + '.yaml', model_path + '.yaml', stem + '.yml'):
        if os.path.isfile(cand):
            return cand
    return stem + '.yaml'


def load_spec(model_path: str, spec_path: Optional[str] = None) -> ModelSpec:
    import yaml
    path = spec_path or spec_path_for(model_path)
    if not os.path.isfile(path):
        raise LearnedModelError(f'{model_path}: no input-convention YAML beside it (looked for {path}); '
                                'see docs/learned_stereo.md')
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LearnedModelError(f'{path}: cannot read: {exc}') from exc
    if not isinstance(data, dict):
        raise LearnedModelError(f'{path}: expected a mapping of keys, got {type(data).__name__}')
    known = {f.name for f in fields(ModelSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise LearnedModelError(f'{path}: unknown keys {", ".join(unknown)} (known: {", ".join(sorted(known))})')
    if not data.get('format'):
        ext = os.path.splitext(model_path)[1].lower()
        data['format'] = {'.onnx': 'onnx', '.pt': 'torchscript', '.ts': 'torchscript',
                          '.torchscript': 'torchscript', '.jit': 'torchscript'}.get(ext, '')
        if not data['format']:
            raise LearnedModelError(f'{path}: set format (onnx or torchscript); the extension {ext!r} does not tell')
    for name in ('mean', 'std'):
        if name in data and not isinstance(data[name], (list, tuple)):
            data[name] = [data[name]]
    try:
        spec = ModelSpec(**data)
        spec.mean = [float(x) for x in spec.mean]
        spec.std = [float(x) for x in spec.std]
        spec.scale = float(spec.scale)
        spec.max_disparity = float(spec.max_disparity)
    except (TypeError, ValueError) as exc:
        raise LearnedModelError(f'{path}: {exc}') from exc
    spec.validate(path)
    return spec


# ---------------------------------------------------------------------------------------- runtimes
class _OnnxRuntime:
    def __init__(self, path: str, device: str, half: bool, threads: int = 2):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
            raise LearnedModelError(f'{path}: onnxruntime is not installed ({exc})') from exc
        available = ort.get_available_providers()
        wanted = []
        if device in ('auto', 'cuda'):
            wanted = [p for p in ('TensorrtExecutionProvider', 'CUDAExecutionProvider') if p in available]
            if device == 'cuda' and not wanted:
                raise LearnedModelError(f'{path}: device cuda asked for, but onnxruntime has no CUDA/TensorRT '
                                        f'provider here (available: {", ".join(available)})')
        self.providers = wanted + ['CPUExecutionProvider']
        if half:
            raise LearnedModelError(f'{path}: half applies to TorchScript models; export the ONNX model in float16 '
                                    'instead (its input type is followed)')
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        # no busy-waiting threads: this machine's cores are shared (spinning measured slower under load)
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise LearnedModelError(f'{path}: onnxruntime cannot load it: {exc}') from exc
        self.inputs = self.session.get_inputs()
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.device = 'cuda' if wanted and self.session.get_providers()[0] != 'CPUExecutionProvider' else 'cpu'

    def input_shapes(self) -> List[Tuple]:
        return [tuple(i.shape) for i in self.inputs]

    def run(self, arrays: List[np.ndarray]) -> List[np.ndarray]:
        feed = {}
        for inp, a in zip(self.inputs, arrays):
            dtype = np.float16 if inp.type == 'tensor(float16)' else np.float32
            feed[inp.name] = a.astype(dtype, copy=False)
        try:
            out = self.session.run(self.outputs, feed)
        except Exception as exc:
            raise LearnedModelError(f'the model failed on inputs of shape {[a.shape for a in arrays]}: {exc}') from exc
        return [np.asarray(o, dtype=np.float32) for o in out]


class _TorchScriptRuntime:
    def __init__(self, path: str, device: str, half: bool, threads: int = 2):
        import torch
        self.torch = torch
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        if device == 'cuda' and not torch.cuda.is_available():
            raise LearnedModelError(f'{path}: device cuda asked for, but torch sees no CUDA device')
        if half and device != 'cuda':
            raise LearnedModelError(f'{path}: half precision runs only on CUDA (device is {device})')
        try:
            self.module = torch.jit.load(path, map_location=device).eval()
        except Exception as exc:  # torch raises RuntimeError / ValueError for bad archives
            raise LearnedModelError(f'{path}: torch.jit.load cannot load it (a TorchScript archive?): {exc}') from exc
        if half:
            self.module = self.module.half()
        self.device, self.half = device, half
        self.inputs = None

    def input_shapes(self) -> List[Tuple]:
        return []  # TorchScript does not declare input shapes; checked on the first frame

    def run(self, arrays: List[np.ndarray]) -> List[np.ndarray]:
        torch = self.torch
        dtype = torch.float16 if self.half else torch.float32
        tensors = [torch.from_numpy(np.ascontiguousarray(a)).to(self.device, dtype) for a in arrays]
        try:
            with torch.inference_mode():
                out = self.module(*tensors)
        except Exception as exc:  # a shape mismatch inside the network is a RuntimeError
            raise LearnedModelError(f'the model failed on inputs of shape {[a.shape for a in arrays]}: '
                                    f'{str(exc).splitlines()[0] if str(exc) else exc!r}') from exc
        if isinstance(out, dict):
            out = list(out.values())
        if not isinstance(out, (list, tuple)):
            out = [out]
        result = []
        for o in out:
            if not hasattr(o, 'detach'):
                raise LearnedModelError(f'the model returned a {type(o).__name__}, expected tensors')
            result.append(o.detach().float().cpu().numpy())
        return result


# ---------------------------------------------------------------------------------------- helpers
def pad_amounts(h: int, w: int, n: int, position: str) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that makes h and w multiples of ``n``."""
    ph, pw = (-h) % n, (-w) % n
    if position == 'bottom_right':
        return 0, ph, 0, pw
    if position == 'top_left':
        return ph, 0, pw, 0
    return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2


def pad_image(img: np.ndarray, pads: Tuple[int, int, int, int], mode: str) -> np.ndarray:
    if not any(pads):
        return img
    t, b, l, r = pads
    width = ((t, b), (l, r)) + ((0, 0),) * (img.ndim - 2)
    np_mode = {'replicate': 'edge', 'constant': 'constant', 'reflect': 'reflect'}[mode]
    return np.pad(img, width, mode=np_mode)


def _as_map(out: np.ndarray, what: str) -> np.ndarray:
    """An output array (N=1, C, h, w) / (1, h, w) / (h, w) as (C, h, w)."""
    a = np.asarray(out)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise LearnedModelError(f'{what} has shape {tuple(np.shape(out))}; expected (1, C, H, W), (1, H, W) or (H, W)')
    return a


def _resize_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2
    if a.shape == (h, w):
        return a
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)


class LearnedStereo:
    """A stereo network from a file, with the classical matcher's interface.

    ``compute(left, right, confidence=True) -> StereoResult`` on rectified images (uint8 (H, W) grey
    or (H, W, 3) RGB; grey is repeated for colour networks, colour averaged for grey ones).
    """

    def __init__(self, model_path: str, device: str = 'auto', half: bool = False,
                 spec_path: Optional[str] = None, threads: int = 2, classical=None):
        if not model_path:
            raise LearnedModelError('no model file given')
        if not os.path.isfile(model_path):
            raise LearnedModelError(f'model file {model_path!r} does not exist')
        if device not in DEVICES:
            raise LearnedModelError(f'device = {device!r}, expected one of {", ".join(DEVICES)}')
        self.model_path = model_path
        self.spec = load_spec(model_path, spec_path)
        self.threads = max(1, threads)
        runtime = _OnnxRuntime if self.spec.format == 'onnx' else _TorchScriptRuntime
        self.runtime = runtime(model_path, device, half, self.threads)
        self.device = self.runtime.device
        self.invalid_pixels = 0  # NaN / negative / out-of-range output pixels of the last frame
        self._classical = None
        self._classical_override = classical
        if self.spec.kind == 'refine':
            from depthmarks_ros.core.stereo.refine_net import feature_builder
            self._features = feature_builder(self.spec.features)
            self._classical = self._make_classical()
        self._check_declared_inputs()

    # ------------------------------------------------------------------ set-up
    def _make_classical(self):
        """The classical matcher a refine model starts from: ``classical`` (StereoParams) when given,
        else the package defaults with the YAML's ``classical`` values."""
        from depthmarks_ros.core.stereo.matching import StereoMatcher
        from depthmarks_ros.core.stereo.params import StereoParams
        if self._classical_override is not None:
            return StereoMatcher(self._classical_override, threads=self.threads)
        try:
            params = StereoParams().replace(**self.spec.classical)
        except (TypeError, ValueError) as exc:
            raise LearnedModelError(f'{self.model_path}: classical matcher parameters unusable: {exc}') from exc
        return StereoMatcher(params, threads=self.threads)

    @property
    def classical_params(self):
        return None if self._classical is None else self._classical.params

    def expected_inputs(self) -> List[int]:
        """Channels of each network input."""
        if self.spec.kind == 'refine':
            return [self._features.channels]
        c = self.spec.channels
        return [2 * c] if self.spec.inputs == 'concat' else [c, c]

    def _check_declared_inputs(self) -> None:
        shapes = self.runtime.input_shapes()
        if not shapes:
            return
        want = self.expected_inputs()
        if len(shapes) != len(want):
            raise LearnedModelError(f'{self.model_path}: the model has {len(shapes)} inputs, its YAML '
                                    f'(kind {self.spec.kind}, inputs {self.spec.inputs}) means {len(want)}')
        for i, (shape, c) in enumerate(zip(shapes, want)):
            if len(shape) != 4:
                raise LearnedModelError(f'{self.model_path}: input {i} has shape {list(shape)}; expected '
                                        f'(1, {c}, H, W)')
            if isinstance(shape[1], int) and shape[1] != c:
                raise LearnedModelError(f'{self.model_path}: input {i} has {shape[1]} channels; the YAML '
                                        f'(color {self.spec.color}, kind {self.spec.kind}) gives {c}')

    # ------------------------------------------------------------------ per frame
    def _prepare(self, img: np.ndarray) -> np.ndarray:
        """uint8 image -> (C, H, W) float32 normalised as the YAML says."""
        s = self.spec
        a = np.asarray(img)
        if a.ndim == 2:
            a = a[:, :, None]
        if s.color == 'gray':
            a = a.mean(axis=2, keepdims=True) if a.shape[2] == 3 else a
        else:
            if a.shape[2] == 1:
                a = np.repeat(a, 3, axis=2)
            if s.color == 'bgr':
                a = a[:, :, ::-1]
        x = a.astype(np.float32) * np.float32(s.scale)
        x = (x - np.asarray(s.mean, np.float32)) / np.asarray(s.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def _network_inputs(self, left, right, pads) -> Tuple[List[np.ndarray], Any]:
        if self.spec.kind == 'refine':
            gl, gr = _gray(left), _gray(right)
            if hasattr(self._features, 'classical_disparity'):   # the feature set runs the matcher itself
                base = self._features.classical_disparity(self._classical, gl, gr)
            else:
                base = self._classical.compute(gl, gr, confidence=False).disparity
            feats, state = self._features.build(gl, gr, base, self._classical.params)
            return [pad_image(feats.transpose(1, 2, 0), pads, 'replicate').transpose(2, 0, 1)[None]], state
        lx = pad_image(self._prepare(left).transpose(1, 2, 0), pads, self.spec.pad_mode).transpose(2, 0, 1)
        rx = pad_image(self._prepare(right).transpose(1, 2, 0), pads, self.spec.pad_mode).transpose(2, 0, 1)
        if self.spec.inputs == 'concat':
            return [np.concatenate([lx, rx])[None]], None
        return [lx[None], rx[None]], None

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True) -> LearnedResult:
        left, right = np.asarray(left), np.asarray(right)
        if left.shape != right.shape:
            raise ValueError(f'left and right images differ in size: {left.shape} vs {right.shape}')
        if left.ndim not in (2, 3) or (left.ndim == 3 and left.shape[2] not in (1, 3)):
            raise ValueError(f'images must be (H, W) grey or (H, W, 3) colour, got shape {left.shape}')
        h, w = left.shape[:2]
        s = self.spec
        pads = pad_amounts(h, w, s.divisible_by, s.pad_position)
        hp, wp = h + pads[0] + pads[1], w + pads[2] + pads[3]
        arrays, state = self._network_inputs(left, right, pads)
        outs = self.runtime.run(arrays)
        disp, second = self._split_outputs(outs, hp, wp)
        t, _b, l, _r = pads
        disp = disp[t:t + h, l:l + w]
        second = None if second is None else second[t:t + h, l:l + w]
        if s.kind == 'refine':
            disp, sigma = self._features.finish(disp, second, state)
            sigma = None if sigma is None else sigma * np.float32(s.sigma_scale)
        else:
            disp = disp * np.float32(s.disparity_sign)
            sigma = None
            if second is not None and s.confidence in ('sigma', 'log_sigma'):
                sigma = np.exp(second) if s.confidence == 'log_sigma' else second
                sigma = sigma * np.float32(s.sigma_scale)
        disp = self._checked(disp)
        conf = None
        if confidence:
            if sigma is not None:
                conf = confidence_from_sigma(sigma)
            elif second is not None and s.confidence == 'probability':
                conf = np.clip(np.nan_to_num(second, nan=0.0), 0.0, 1.0).astype(np.float32)
            else:
                conf = np.where(np.isfinite(disp), np.float32(1.0), np.float32(0.0))
            conf[~np.isfinite(disp)] = 0.0
        if sigma is not None:
            sigma = np.where(np.isfinite(disp), sigma, np.nan).astype(np.float32)
        return LearnedResult(disp, conf, (0, 0, w, h), sigma)

    def _split_outputs(self, outs: List[np.ndarray], hp: int, wp: int):
        """(disparity, second map or None) at the padded input size, disparity in input px."""
        if not outs:
            raise LearnedModelError('the model returned no output')
        first = _as_map(outs[0], 'output 0')
        second = None
        if first.shape[0] == 2:
            first, second = first[:1], first[1:]
        elif first.shape[0] != 1:
            raise LearnedModelError(f'output 0 has {first.shape[0]} channels; expected 1 (disparity) or 2 '
                                    '(disparity, confidence)')
        if second is None and len(outs) > 1 and (self.spec.confidence != 'none' or self.spec.kind == 'refine'):
            second = _as_map(outs[1], 'output 1')
            if second.shape[0] != 1:
                raise LearnedModelError(f'output 1 has {second.shape[0]} channels; expected 1 (confidence)')
        if self.spec.kind == 'refine' and second is None:
            raise LearnedModelError('a refine model must output (residual, log sigma)')
        oh, ow = first.shape[1:]
        if (oh, ow) != (hp, wp):
            k = hp / oh if oh else 0
            if not (oh and ow and hp % oh == 0 and wp % ow == 0 and wp // ow == hp // oh):
                raise LearnedModelError(f'output disparity is {oh}x{ow} (HxW); expected the padded input '
                                        f'{hp}x{wp} or an integer fraction of it')
            scale = np.float32(k if self.spec.disparity_units == 'output' else 1.0)
            d = _resize_to(first[0].astype(np.float32), hp, wp) * scale
        else:
            d = first[0].astype(np.float32, copy=False)
        if second is not None:
            if second.shape[1:] != (oh, ow):
                raise LearnedModelError(f'confidence output is {second.shape[1]}x{second.shape[2]}, the '
                                        f'disparity {oh}x{ow}')
            second = _resize_to(second[0].astype(np.float32, copy=False), hp, wp)
        return d, second

    def _checked(self, disp: np.ndarray) -> np.ndarray:
        """NaN / inf / negative / above max_disparity -> NaN; an error when most pixels are so."""
        bad = ~np.isfinite(disp) | (disp < 0)
        if self.spec.max_disparity > 0:
            bad |= disp > self.spec.max_disparity
        n = int(bad.sum())
        self.invalid_pixels = n
        if n > MAX_INVALID_FRACTION * disp.size:
            n_nan = int((~np.isfinite(disp)).sum())
            n_neg = int((disp < 0).sum())
            hint = ' (a network that outputs negative disparities needs disparity_sign: -1)' if n_neg > n_nan else ''
            raise LearnedModelError(f'the model gave {100.0 * n / disp.size:.0f}% invalid disparities '
                                    f'({n_nan} NaN/inf, {n_neg} negative){hint}; frame dropped')
        if n:
            disp = disp.copy()
            disp[bad] = np.nan
        return disp.astype(np.float32, copy=False)

    def set_classical_params(self, params) -> None:
        """New parameters for a refine model's classical matcher (no-op for other models)."""
        self._classical_override = params
        if self._classical is not None:
            self._classical.set_params(params)

    def close(self) -> None:
        if self._classical is not None:
            self._classical.close()


def _gray(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 2:
        return a
    if a.shape[2] == 1:
        return a[:, :, 0]
    import cv2
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)


def confidence_from_sigma(sigma: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] of a disparity sigma (px): min(1, SIGMA_REF_PX / sigma); 0 where NaN."""
    with np.errstate(divide='ignore', invalid='ignore'):
        c = np.float32(SIGMA_REF_PX) / np.asarray(sigma, np.float32)
    return np.clip(np.nan_to_num(c, nan=0.0, posinf=1.0), 0.0, 1.0).astype(np.float32)


def shipped_model_path() -> str:
    """The refinement network trained here (depthmarks train-stereo), shipped in the package."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'data', 'stereo_refine.onnx')
