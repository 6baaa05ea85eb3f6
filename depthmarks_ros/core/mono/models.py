"""One loading path for monocular depth models (ROS-free).

``model`` may be:

* a local folder saved by Hugging Face transformers (``config.json`` + weights) of any
  ``AutoModelForDepthEstimation`` family: DPT / MiDaS-DPT (Intel/dpt-hybrid-midas, Intel/dpt-large),
  Depth Anything (V1/V2, e.g. depth-anything/Depth-Anything-V2-Small-hf), ...;
* a hub id (``owner/name``): used from the local Hugging Face cache only (``local_files_only``:
  no model download; huggingface_hub's own telemetry may still try to connect unless
  ``HF_HUB_OFFLINE`` or ``HF_HUB_DISABLE_TELEMETRY`` is set, docs/mono_depth.md), unless ``allow_download`` (and ``HF_HUB_OFFLINE`` is not set) — nothing
  retries the network for long. Loading never changes the process environment;
* ``midas:<type>`` with ``midas_repo`` (a local clone of intel-isl/MiDaS) and ``checkpoint`` (its
  .pt file): the original MiDaS models through ``torch.hub.load(..., source='local')``; or
  ``midas:<type>`` with ``allow_download`` through torch.hub online.

Missing weights raise :class:`ModelNotFound` saying what was looked for and how to get it.
All models output relative inverse depth (larger = nearer); :meth:`DepthModel.predict` resizes it
to the input image.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
DOWNLOAD_HINT = ('on a machine with internet run `depthmarks download-model {model} -o DIR` '
                 '(or `huggingface-cli download {model} --local-dir DIR`), copy DIR here and set model:=DIR')


def hub_offline() -> bool:
    """Whether the hub is switched off by the environment, read as huggingface_hub reads it:
    ``HF_HUB_OFFLINE`` (else ``TRANSFORMERS_OFFLINE``) is 1/on/yes/true."""
    value = os.environ.get('HF_HUB_OFFLINE') or os.environ.get('TRANSFORMERS_OFFLINE') or ''
    return value.upper() in ('1', 'ON', 'YES', 'TRUE')


class ModelNotFound(FileNotFoundError):
    """No weights where we looked; the message says where and how to provide them."""


class ModelLoadError(RuntimeError):
    """Weights were found but cannot be read (corrupt, truncated, random bytes, another format)."""


class NotADepthModel(ValueError):
    """The files exist but are not a monocular depth model."""


@dataclass
class ModelInfo:
    family: str
    source: str
    input_size: int
    multiple: int


class DepthModel:
    """A loaded model: ``predict(rgb (H, W, 3) uint8) -> (H, W) float32 relative inverse depth``."""

    def __init__(self, net, info: ModelInfo, device: str = 'cpu', half: bool = False,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        import torch
        self.torch = torch
        if device.startswith('cuda') and not torch.cuda.is_available():
            raise RuntimeError('device cuda requested but torch sees no CUDA device')
        self.device = torch.device(device)
        self.half = bool(half and self.device.type == 'cuda')
        self.net = net.to(self.device).eval()
        if self.half:
            self.net = self.net.half()
        self.info = info
        self.mean, self.std = mean, std

    def preprocess(self, rgb: np.ndarray):
        import cv2
        # a square input of input_size (rounded to the patch multiple): every family accepts it
        # (DPT's position embeddings do not resize to arbitrary grids); the output is resized back
        m = self.info.multiple
        n = max(m, int(round(self.info.input_size / m)) * m)
        x = cv2.resize(rgb, (n, n), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        x = (x - self.mean) / self.std
        t = self.torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.device)
        return t.half() if self.half else t

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        import cv2
        if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 2:
            raise ValueError(f'need an (H, W, 3) image, got shape {rgb.shape}')
        with self.torch.inference_mode():
            out = self._forward(self.preprocess(rgb))
        pred = out.float().squeeze().cpu().numpy().astype(np.float32)
        return cv2.resize(pred, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    def _forward(self, x):
        out = self.net(pixel_values=x) if self.info.family == 'transformers' else self.net(x)
        return out.predicted_depth if hasattr(out, 'predicted_depth') else out


def _load_transformers(path_or_id: str, local_only: bool):
    from transformers import AutoConfig, AutoModelForDepthEstimation
    try:
        config = AutoConfig.from_pretrained(path_or_id, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelNotFound(f'no model configuration at {path_or_id!r} ({exc.__class__.__name__}); '
                            + DOWNLOAD_HINT.format(model=path_or_id if '/' in path_or_id else '<hub id>')) from exc
    try:
        net = AutoModelForDepthEstimation.from_pretrained(path_or_id, local_files_only=local_only)
    except ValueError as exc:
        raise NotADepthModel(f'{path_or_id!r} holds a {config.model_type!r} model, not a depth estimation model '
                             '(AutoModelForDepthEstimation cannot load it)') from exc
    except OSError as exc:
        raise ModelNotFound(f'{path_or_id!r}: configuration found but no readable weights ({exc}); '
                            + DOWNLOAD_HINT.format(model=path_or_id)) from exc
    except Exception as exc:  # noqa: BLE001 - safetensors / pickle / torch errors of a corrupt file
        first = str(exc).splitlines()[0][:200] if str(exc) else ''
        raise ModelLoadError(f'{path_or_id!r}: the weights file cannot be read ({type(exc).__name__}: {first}); it '
                             'is corrupt or not a checkpoint of this model: ' + DOWNLOAD_HINT.format(model=path_or_id)
                             ) from exc
    patch = getattr(getattr(config, 'backbone_config', None), 'patch_size', None) or getattr(config, 'patch_size', 16)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if os.path.isdir(path_or_id):
        pp = os.path.join(path_or_id, 'preprocessor_config.json')
        if os.path.isfile(pp):  # the model's own normalisation (e.g. 0.5/0.5 for DPT-MiDaS)
            import json
            with open(pp) as f:
                prep = json.load(f)
            mean = np.asarray(prep.get('image_mean', mean), np.float32)
            std = np.asarray(prep.get('image_std', std), np.float32)
    return net, (int(patch) if int(patch) in (14, 16) else 32), mean, std


def load_depth_model(model: str, device: str = 'cpu', input_size: int = 384, half: bool = False,
                     allow_download: bool = False, midas_repo: str = '', checkpoint: str = '') -> DepthModel:
    """Load a depth model (see module docstring); raises ModelNotFound / NotADepthModel clearly."""
    if not model:
        raise ModelNotFound('no model given; ' + DOWNLOAD_HINT.format(model='depth-anything/Depth-Anything-V2-Small-hf'))
    offline = hub_offline() or not allow_download
    if model.startswith('midas:'):
        return _load_midas(model.split(':', 1)[1], device, input_size, half, allow_download, midas_repo, checkpoint)
    path = os.path.expanduser(model)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, 'config.json')):
            raise ModelNotFound(f'{path}: folder has no config.json (not a saved transformers model); '
                                + DOWNLOAD_HINT.format(model='depth-anything/Depth-Anything-V2-Small-hf'))
        net, multiple, mean, std = _load_transformers(path, True)
        return DepthModel(net, ModelInfo('transformers', path, input_size, multiple), device, half, mean, std)
    if os.path.exists(path) or model.startswith(('/', '.', '~')):
        raise ModelNotFound(f'{path}: not a model folder; '
                            + DOWNLOAD_HINT.format(model='depth-anything/Depth-Anything-V2-Small-hf'))
    if '/' not in model:
        raise ModelNotFound(f'{model!r} is neither a folder nor a hub id (owner/name)')
    net, multiple, mean, std = _load_transformers(model, offline)
    return DepthModel(net, ModelInfo('transformers', model, input_size, multiple), device, half, mean, std)


def _load_midas(model_type: str, device, input_size, half, allow_download, repo, checkpoint) -> DepthModel:
    import torch
    if repo:
        if not os.path.isdir(repo):
            raise ModelNotFound(f'MiDaS repository {repo} not found (a local clone of intel-isl/MiDaS)')
        if not os.path.isfile(checkpoint):
            raise ModelNotFound(f'MiDaS checkpoint {checkpoint!r} not found (the {model_type} .pt file)')
        net = torch.hub.load(repo, model_type, source='local', pretrained=False)
        try:
            state = torch.load(checkpoint, map_location='cpu')
            net.load_state_dict(state.get('state_dict', state) if isinstance(state, dict) else state)
        except Exception as exc:  # noqa: BLE001 - a corrupt or foreign checkpoint
            raise ModelLoadError(f'MiDaS checkpoint {checkpoint!r} cannot be loaded ({type(exc).__name__}: '
                                 f'{str(exc).splitlines()[0][:200] if str(exc) else ""})') from exc
    elif allow_download and not hub_offline():
        net = torch.hub.load('intel-isl/MiDaS', model_type, trust_repo=True)
    else:
        raise ModelNotFound(f'original MiDaS {model_type!r} needs midas_repo + checkpoint (local) or allow_download '
                            '(torch.hub, internet); or use the transformers port, e.g. Intel/dpt-hybrid-midas: '
                            + DOWNLOAD_HINT.format(model='Intel/dpt-hybrid-midas'))
    return DepthModel(net, ModelInfo('midas', model_type, input_size, 32), device, half,
                      mean=np.array([0.5, 0.5, 0.5], np.float32), std=np.array([0.5, 0.5, 0.5], np.float32))
