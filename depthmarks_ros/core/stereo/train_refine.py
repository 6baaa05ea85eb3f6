"""Training of the refinement network (ROS-free; torch): data, Laplace NLL, sigma calibration, export.

``depthmarks train-stereo`` (cli/train_stereo.py) is the command; this module is its core.
Training frames: simulated-rig frames (exact disparity; scenes, texture seeds, rig positions and
image noise varied) and the fit split of the real KITTI Stereo 2012 frames (datasets.SPLIT_RULE).
The Middlebury frames and the KITTI report split are never used here. The classical matcher is
the package default (StereoParams()) with the disparity range of the frame.
"""
from __future__ import annotations

import datetime
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.refine_net import (DISP_NORM, FEATURES_V1, FEATURES_V2, FEATURES_V3, LOG_B_RANGE,
                                                   build_network, build_network_v2, feature_builder)

COVERAGE = 0.6827  # sigma = the radius holding this share of the errors (a Gaussian's 1 sigma)


@dataclass
class TrainConfig:
    seed: int = 0
    iterations: int = 1500
    max_minutes: float = 8.0
    batch: int = 8
    crop: Tuple[int, int] = (128, 256)   # rows, cols (multiples of 8)
    lr: float = 2e-3
    width: int = 16
    sim_frames: int = 16
    real_weight: float = 0.5             # share of the crops drawn from real frames
    l1_weight: float = 0.3               # + this x mean |error|: keeps fixing pixels whose b is large
    threads: int = 1                     # OpenMP threads spin badly on a loaded shared machine
    disparity_range: int = 128
    features: str = FEATURES_V2          # v1: residual over the row fill; v2: candidates + residual; v3: refine_net
    mix_weight: float = 1.0              # v2: weight of the candidate-mixture NLL next to the output's NLL


@dataclass
class TrainSample:
    name: str
    features: np.ndarray   # (C, H, W) float32
    gt: np.ndarray         # (H, W) float32, NaN none
    real: bool


def make_sample(name: str, left: np.ndarray, right: np.ndarray, gt: np.ndarray, real: bool,
                disparity_range: int, matcher_cache: Dict, features: str = FEATURES_V2) -> TrainSample:
    """Classical disparity + features of one frame (grey uint8 images), as the backend builds them."""
    from depthmarks_ros.core.stereo import StereoMatcher, StereoParams
    if disparity_range not in matcher_cache:
        matcher_cache[disparity_range] = StereoMatcher(StereoParams(disparity_range=disparity_range))
    matcher = matcher_cache[disparity_range]
    fb = feature_builder(features)
    if hasattr(fb, 'classical_disparity'):
        base = fb.classical_disparity(matcher, left, right)
    else:
        base = matcher.compute(left, right, confidence=False).disparity
    feats, _state = fb.build(left, right, base)
    return TrainSample(name, feats, gt.astype(np.float32), real)


def sim_samples(n: int, seed: int, disparity_range: int, matcher_cache: Dict,
                log: Callable[[str], None] = print, features: str = FEATURES_V2) -> List[TrainSample]:
    """``n`` simulated frames: both scenes, texture seeds, rig sway positions, noise and gain."""
    import cv2
    from depthmarks_ros.core.sim import SimConfig, SimRig
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cfg = SimConfig(seed=seed * 1000 + i, scene=('default', 'simple')[i % 4 == 3], motion=True,
                        motion_amplitude=0.4, image_noise=float(rng.uniform(0.5, 4.0)))
        rig = SimRig(cfg)
        f = rig.render(float(rng.uniform(0.0, cfg.motion_period)))
        grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float32) for x in (f.left_rgb, f.right_rgb)]
        gain, gamma = rng.uniform(0.6, 1.3), rng.uniform(0.7, 1.4)
        grey = [np.clip(255.0 * (g / 255.0) ** gamma * gain, 0, 255).astype(np.uint8) for g in grey]
        gt = np.where(np.isfinite(f.disparity_gt) & (f.disparity_gt > 0), f.disparity_gt, np.nan)
        out.append(make_sample(f'sim/{i}', grey[0], grey[1], gt, False, disparity_range, matcher_cache, features))
        log(f'  sim frame {i + 1}/{n}')
    return out


def real_samples(data: str, disparity_range: int, matcher_cache: Dict, features: str = FEATURES_V2
                 ) -> List[TrainSample]:
    from depthmarks_ros.core.stereo.datasets import kitti2012_frames
    return [make_sample(fr.name, fr.left, fr.right, fr.gt, True, disparity_range, matcher_cache, features)
            for fr in kitti2012_frames(data, 'fit')]


def laplace_nll(pred, log_b, gt, mask):
    """Mean Laplace negative log-likelihood |pred - gt| / b + log b over ``mask`` (b = exp(log_b))."""
    import torch
    log_b = torch.clamp(log_b, *LOG_B_RANGE)
    nll = torch.abs(pred - gt) * torch.exp(-log_b) + log_b
    m = mask.float()
    return (nll * m).sum() / m.sum().clamp(min=1.0)


def mixture_nll(logits, offsets, base, residual, log_b, gt, mask):
    """Mean negative log-likelihood of a mixture of Laplace densities, one per candidate: weight
    softmax(logits)_k, centre base + offset_k + residual, scale b (shared), over ``mask``."""
    import math
    import torch
    log_b = torch.clamp(log_b, *LOG_B_RANGE)
    centre = base[:, None] + offsets + residual[:, None]
    comp = -torch.abs(gt[:, None] - centre) * torch.exp(-log_b)[:, None] - log_b[:, None] - math.log(2.0)
    ll = torch.logsumexp(torch.log_softmax(logits, dim=1) + comp, dim=1)
    m = mask.float()
    return -(ll * m).sum() / m.sum().clamp(min=1.0)


def _v2_loss(net, f, g, m, cfg: TrainConfig):
    """v2: mixture NLL (teaches the choice among candidates and the residual) + the Laplace NLL and
    L1 of the output (the chosen candidate + residual; teaches its sigma)."""
    import torch
    logits, offsets, residual, log_b_mix, log_b_out = net.train_outputs(f)
    base = f[:, 2] * DISP_NORM
    idx = torch.argmax(logits, dim=1, keepdim=True)
    pred = base + torch.gather(offsets, 1, idx)[:, 0] + residual
    loss = laplace_nll(pred, log_b_out, g, m) + cfg.mix_weight * mixture_nll(
        logits, offsets, base, residual, log_b_mix, g, m)
    return loss, pred


def _crop_batch(samples: List[TrainSample], cfg: TrainConfig, rng: np.random.Generator):
    import torch
    ch, cw = cfg.crop
    feats, gts = [], []
    real = [s for s in samples if s.real]
    sim = [s for s in samples if not s.real]
    while len(feats) < cfg.batch:
        pool = real if real and (not sim or rng.random() < cfg.real_weight) else sim
        s = pool[rng.integers(len(pool))]
        _c, h, w = s.features.shape
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        g = s.gt[y:y + ch, x:x + cw]
        if np.isfinite(g).sum() < 0.02 * ch * cw:
            continue  # KITTI's ground truth covers only the lower part of the image
        feats.append(s.features[:, y:y + ch, x:x + cw])
        gts.append(g)
    f = torch.from_numpy(np.stack(feats))
    g = torch.from_numpy(np.stack(gts))
    return f, torch.nan_to_num(g, nan=0.0), torch.isfinite(g)


def _predict(net, feats):
    """(disparity, log b) tensors (N, H, W) from features (N, C, H, W)."""
    out = net(feats)
    return feats[:, 2] * DISP_NORM + out[:, 0], out[:, 1]


def learning_rate(lr: float, progress: float) -> float:
    """Linear warm-up over the first 5 % of the run, then cosine decay to 2 % of ``lr``."""
    import math
    if progress < 0.05:
        return lr * (0.1 + 0.9 * progress / 0.05)
    p = min(1.0, (progress - 0.05) / 0.95)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))


def train(samples: List[TrainSample], cfg: TrainConfig, log: Callable[[str], None] = print):
    """Train the network on crops of ``samples`` on ``cfg.threads`` torch threads (the caller's
    count is back afterwards); returns (net, history list of (iteration, loss))."""
    from depthmarks_ros.core.threads import torch_threads
    with torch_threads(cfg.threads):
        return _train(samples, cfg, log)


def _train(samples: List[TrainSample], cfg: TrainConfig, log: Callable[[str], None]):
    import torch
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    v2 = cfg.features in (FEATURES_V2, FEATURES_V3)   # v3: v2's network on other candidates
    net = build_network_v2(cfg.width) if v2 else build_network(cfg.width)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    t0 = time.monotonic()
    history, running = [], []
    net.train()
    budget_s = cfg.max_minutes * 60
    for it in range(cfg.iterations):
        # progress by iterations or by time, whichever is further: the schedule ends when either runs out
        progress = max(it / cfg.iterations, (time.monotonic() - t0) / budget_s)
        for group in opt.param_groups:
            group['lr'] = learning_rate(cfg.lr, progress)
        f, g, m = _crop_batch(samples, cfg, rng)
        if v2:
            loss, pred = _v2_loss(net, f, g, m, cfg)
        else:
            pred, log_b = _predict(net, f)
            loss = laplace_nll(pred, log_b, g, m)
        if cfg.l1_weight:
            mf = m.float()
            loss = loss + cfg.l1_weight * (torch.abs(pred - g) * mf).sum() / mf.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running.append(float(loss.detach()))
        if (it + 1) % 50 == 0 or it == cfg.iterations - 1:
            history.append((it + 1, float(np.mean(running))))
            log(f'  iteration {it + 1}/{cfg.iterations}: Laplace NLL {np.mean(running):.3f} '
                f'({time.monotonic() - t0:.0f} s)')
            running = []
        if time.monotonic() - t0 > budget_s:
            log(f'  stopped at iteration {it + 1}: {cfg.max_minutes} min reached')
            history.append((it + 1, float(np.mean(running)) if running else history[-1][1]))
            break
    net.eval()
    return net, history


def full_frame(net, features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(disparity, b) (H, W) of one frame's features, padded to a multiple of 8 (torch)."""
    import torch
    from depthmarks_ros.core.stereo.learned import pad_amounts, pad_image
    _c, h, w = features.shape
    pads = pad_amounts(h, w, 8, 'bottom_right')
    f = pad_image(features.transpose(1, 2, 0), pads, 'replicate').transpose(2, 0, 1)
    with torch.inference_mode():
        pred, log_b = _predict(net, torch.from_numpy(np.ascontiguousarray(f))[None])
    b = np.exp(np.clip(log_b[0].numpy(), *LOG_B_RANGE))
    return pred[0].numpy()[:h, :w], b[:h, :w]


def fit_sigma_scale(net, samples: List[TrainSample]) -> float:
    """Factor k so that |error| <= k b holds for COVERAGE of the ground-truth pixels of ``samples``."""
    ratios = []
    for s in samples:
        pred, b = full_frame(net, s.features)
        ok = np.isfinite(s.gt)
        ratios.append(np.abs(pred[ok] - s.gt[ok]) / b[ok])
    return float(np.quantile(np.concatenate(ratios), COVERAGE))


def export(net, path: str, sigma_scale: float, metadata: Dict, disparity_range: int,
           features: str = FEATURES_V1) -> str:
    """ONNX file + its YAML (kind refine) at ``path``; returns the YAML's path."""
    import warnings
    import torch
    import yaml
    fb = feature_builder(features)
    x = torch.zeros(1, fb.channels, 64, 96)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(net, (x,), path, dynamo=False, input_names=['features'], output_names=['out'],
                          dynamic_axes={'features': {2: 'height', 3: 'width'}, 'out': {2: 'height', 3: 'width'}},
                          opset_version=17)
    spec = {
        'format': 'onnx', 'kind': 'refine', 'features': features, 'color': 'gray',
        'divisible_by': fb.divisible_by, 'pad_mode': 'replicate', 'pad_position': 'bottom_right',
        'disparity_units': 'input', 'confidence': 'sigma', 'sigma_scale': round(float(sigma_scale), 5),
        'classical': {'disparity_range': int(disparity_range)},
        'metadata': metadata,
    }
    yaml_path = os.path.splitext(path)[0] + '.yaml'
    with open(yaml_path, 'w') as f:
        f.write('# Input convention of the refinement network next to it (docs/learned_stereo.md).\n')
        yaml.safe_dump(spec, f, sort_keys=False, width=110)
    return yaml_path


def run_training(data: Optional[str], output: str, cfg: TrainConfig, command: str,
                 log: Callable[[str], None] = print) -> Dict:
    """The whole job: samples, training, sigma calibration on the real fit frames, export."""
    from depthmarks_ros.core.stereo.datasets import SPLIT_RULE
    t0 = time.monotonic()
    cache: Dict = {}
    log(f'rendering {cfg.sim_frames} simulated frames and matching them')
    samples = sim_samples(cfg.sim_frames, cfg.seed, cfg.disparity_range, cache, log, cfg.features)
    real = real_samples(data, cfg.disparity_range, cache, cfg.features) if data else []
    log(f'{len(real)} real fit-split frames (KITTI 2012), {len(samples)} simulated; '
        f'{time.monotonic() - t0:.0f} s')
    samples += real
    if not samples:
        raise ValueError('no training frames')
    from depthmarks_ros.core.threads import torch_threads
    with torch_threads(cfg.threads):              # the calibration too, as the training
        net, history = train(samples, cfg, log)
        k = fit_sigma_scale(net, real if real else samples)
    log(f'sigma_scale {k:.3f} ({100 * COVERAGE:.1f}% of the errors within sigma on the '
        f'{"real fit" if real else "simulated"} frames)')
    metadata = {
        'command': command,
        'trained': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'config': {k2: (list(v) if isinstance(v, tuple) else v) for k2, v in asdict(cfg).items()},
        'split_rule': SPLIT_RULE,
        'real_fit_frames': [s.name for s in real],
        'never_trained_on': 'KITTI 2012 report split, all Middlebury frames',
        'sim_frames': len(samples) - len(real),
        'iterations_done': history[-1][0] if history else 0,
        'final_loss': round(history[-1][1], 4) if history else None,
        'sigma_scale_fitted_on': 'real fit frames' if real else 'simulated frames',
        'parameters': int(sum(p.numel() for p in net.parameters())),
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    yaml_path = export(net, output, k, metadata, cfg.disparity_range, cfg.features)
    log(f'wrote {output} and {yaml_path} ({time.monotonic() - t0:.0f} s)')
    return metadata
