"""A compact patch CNN for landmark refinement with uncertainty (PyTorch, ROS-free).

Input: a grey patch (1, S, S) centred on a backend's landmark (or any guess). Output per patch:
offset (2, px, from the patch centre to the landmark), Cholesky parameters (3) of the 2x2
covariance in px, and a visibility logit (1). ~30k parameters: trains on 2 CPU cores in seconds to
minutes.
"""
from __future__ import annotations

import torch
from torch import nn


class PatchUncertaintyNet(nn.Module):
    def __init__(self, patch: int = 32, width: int = 16):
        super().__init__()
        self.patch = patch
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        n = 2 * width * (patch // 8) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n, 64), nn.ReLU(), nn.Linear(64, 6))

    def forward(self, x: torch.Tensor):
        """x (B, 1, S, S) -> offset (B, 2), chol params (B, 3), visibility logit (B,)."""
        out = self.head(self.features(x))
        return out[:, :2] * (self.patch / 4), out[:, 2:5], out[:, 5]
