"""Training of the patch uncertainty model with the LUVLi loss (PyTorch, ROS-free)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from depthmarks_ros.core.learning.losses import luvli_loss
from depthmarks_ros.core.learning.model import PatchUncertaintyNet


@dataclass
class TrainConfig:
    patch: int = 32
    width: int = 16
    steps: int = 800
    batch: int = 128
    lr: float = 3e-3
    seed: int = 0
    samples: int = 6000          # synthetic task size

    def to_dict(self):
        return asdict(self)


def train_patches(patches: np.ndarray, offsets: np.ndarray, visible: np.ndarray, cfg: TrainConfig,
                  model: Optional[PatchUncertaintyNet] = None, log_every: int = 0) -> PatchUncertaintyNet:
    """Fit on (N, 1, S, S) patches with target offsets (N, 2) px and visibility (N,)."""
    torch.manual_seed(cfg.seed)
    model = model or PatchUncertaintyNet(cfg.patch, cfg.width)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    X = torch.from_numpy(patches)
    Y = torch.from_numpy(offsets)
    V = torch.from_numpy(visible.astype(np.float32))
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    model.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(X), (cfg.batch,), generator=g)
        mean, chol, vis = model(X[idx])
        loss = luvli_loss(mean, chol, vis, Y[idx], V[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and step % log_every == 0:
            print(f'step {step:5d} loss {loss.item():.4f} ({time.time() - t0:.1f} s)')
    model.eval()
    return model
