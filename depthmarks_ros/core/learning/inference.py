"""Use a trained patch model on a backend's landmarks (ROS-free).

    m = LandmarkUncertaintyModel.load(folder)
    cov, vis = m.predict(image_rgb, landmarks_xy)     # (K, 2, 2) px^2, (K,) in [0, 1]

A checkpoint folder holds ``weights.pt`` and ``config.json`` (patch size, the patch side as a share
of the landmark set's size, training configuration and results).
"""
from __future__ import annotations

import json
import os
from typing import Tuple

import numpy as np
import torch

from depthmarks_ros.core.learning.evaluate import predict_patches
from depthmarks_ros.core.learning.model import PatchUncertaintyNet


def extract_patches(grey: np.ndarray, points: np.ndarray, side_px: float, patch: int) -> np.ndarray:
    """(K, 1, patch, patch) float32 patches of ``side_px`` pixels centred on each point (bilinear)."""
    import cv2
    out = np.empty((len(points), 1, patch, patch), np.float32)
    scale = side_px / patch
    for i, (x, y) in enumerate(points):
        A = np.array([[scale, 0, x - side_px / 2 + scale / 2], [0, scale, y - side_px / 2 + scale / 2]])
        out[i, 0] = cv2.warpAffine(grey, A, (patch, patch), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
    return out / 255.0


def landmark_set_size(points: np.ndarray) -> float:
    return float(max(np.ptp(points, axis=0).max(), 8.0))


class LandmarkUncertaintyModel:
    def __init__(self, net: PatchUncertaintyNet, config: dict):
        self.net = net.eval()
        self.config = config

    @property
    def side_fraction(self) -> float:
        return float(self.config.get('patch_side_fraction', 0.2))

    @classmethod
    def load(cls, folder: str) -> 'LandmarkUncertaintyModel':
        cfg_path, w_path = os.path.join(folder, 'config.json'), os.path.join(folder, 'weights.pt')
        if not (os.path.isfile(cfg_path) and os.path.isfile(w_path)):
            raise FileNotFoundError(f'{folder}: needs config.json and weights.pt (depthmarks train-landmarks)')
        with open(cfg_path) as f:
            config = json.load(f)
        net = PatchUncertaintyNet(config['patch'], config['width'])
        net.load_state_dict(torch.load(w_path, map_location='cpu', weights_only=True))
        return cls(net, config)

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        torch.save(self.net.state_dict(), os.path.join(folder, 'weights.pt'))
        with open(os.path.join(folder, 'config.json'), 'w') as f:
            json.dump(self.config, f, indent=2)

    def predict_full(self, image_rgb: np.ndarray, landmarks_xy: np.ndarray):
        """(refined landmarks (K, 2), cov (K, 2, 2) px^2, visibility (K,))."""
        import cv2
        grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY) if image_rgb.ndim == 3 else image_rgb
        side = self.side_fraction * landmark_set_size(landmarks_xy)
        patches = extract_patches(grey, landmarks_xy, side, self.config['patch'])
        offsets, cov, vis, _ = predict_patches(self.net, patches)
        s = side / self.config['patch']
        return landmarks_xy + offsets * s, cov * s * s, vis

    def predict(self, image_rgb: np.ndarray, landmarks_xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        _, cov, vis = self.predict_full(image_rgb, landmarks_xy)
        return cov, vis
