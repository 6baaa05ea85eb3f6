"""Compact disparity refinement network trained here (ROS-free; torch only for training/export).

The network refines the classical matcher's disparity, guided by the left image:

    features (6, H, W) = [left / 255 - 0.5,
                          (left - right warped by the filled disparity) / 255,
                          filled disparity / DISP_NORM,
                          1 where the classical matcher gave a disparity, else 0,
                          (smooth 2-D fill - filled disparity) / DISP_NORM,
                          (left - right warped by the smooth 2-D fill) / 255]
    network(features) -> (residual px, log b) at full resolution
    disparity = filled disparity + residual;  sigma = sigma_scale * b (b: Laplace scale)

"filled" = the classical disparity with its holes filled along rows (fill.py, KITTI's rule), so
the output is dense; "smooth 2-D fill" = normalised convolution of the valid disparities (a wide
Gaussian over valid pixels only, at 1/4 resolution): what the neighbours above and below say,
where row filling (right for occlusions) is wrong (textureless road, walls, cars). Trained with the Laplace negative log-likelihood |d - d_gt| / b + log b
(``depthmarks train-stereo``, core in train_refine.py); ``sigma_scale`` is fitted on the fit split
so that sigma is the radius holding 68.3 % of the errors (a Gaussian's 1 sigma).

The network is fully convolutional: a stride-2 stem, an encoder to 1/8 resolution with dilated
convolutions for context, a decoder back to 1/2 with skip connections, and one 3x3
convolution at full resolution over a few upsampled feature channels and the input features
(full-resolution layers dominate the CPU cost). Inputs must
be a multiple of 8 in size (the YAML's divisible_by; the backend pads).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.fill import fill_holes_rows

FEATURES_V1 = 'depthmarks_refine_v1'
DISP_NORM = 64.0
LOG_B_RANGE = (-4.0, 4.0)   # log Laplace scale clamped to this range (px)
HEAD_CHANNELS = 6           # upsampled features next to the inputs in the full-resolution layer


@dataclass
class _State:
    filled: np.ndarray


SMOOTH_SIGMA_PX = 24.0      # width of the 2-D fill's Gaussian (full-resolution px)


def smooth_fill(disparity: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Normalised convolution: Gaussian-weighted mean of the valid disparities around each pixel,
    computed at 1/4 resolution; where no valid pixel is near, 0."""
    import cv2
    h, w = disparity.shape
    small = (max(w // 4, 1), max(h // 4, 1))
    d = cv2.resize(np.where(valid, disparity, 0).astype(np.float32), small, interpolation=cv2.INTER_AREA)
    m = cv2.resize(valid.astype(np.float32), small, interpolation=cv2.INTER_AREA)
    s = SMOOTH_SIGMA_PX / 4.0
    num = cv2.GaussianBlur(d, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(m, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    out = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0).astype(np.float32)
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


class RefineFeaturesV1:
    """Builds the network input from a grey pair and the classical disparity, and turns the network
    output back into disparity and sigma."""
    name = FEATURES_V1
    channels = 6
    divisible_by = 8

    def build(self, left: np.ndarray, right: np.ndarray, disparity: np.ndarray, params=None
              ) -> Tuple[np.ndarray, _State]:
        import cv2
        h, w = left.shape
        valid = np.isfinite(disparity) & (disparity > 0)
        filled = fill_holes_rows(disparity)
        cols = np.arange(w, dtype=np.float32)[None, :]
        ys = np.ascontiguousarray(np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
        lf = left.astype(np.float32)

        def photometric(disp):
            warped = cv2.remap(right, cols - disp, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            return (lf - warped.astype(np.float32)) * np.float32(1 / 255.0)

        smooth = smooth_fill(disparity, valid)
        f = np.empty((self.channels, h, w), np.float32)
        f[0] = lf * np.float32(1 / 255.0) - np.float32(0.5)
        f[1] = photometric(filled)
        f[2] = filled * np.float32(1.0 / DISP_NORM)
        f[3] = valid
        f[4] = (smooth - filled) * np.float32(1.0 / DISP_NORM)
        f[5] = photometric(smooth)
        return f, _State(filled)

    def finish(self, residual: np.ndarray, log_b: Optional[np.ndarray], state: _State
               ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        disp = state.filled + residual.astype(np.float32)
        sigma = None
        if log_b is not None:
            sigma = np.exp(np.clip(log_b, *LOG_B_RANGE)).astype(np.float32)
        return disp, sigma


FEATURES = {FEATURES_V1: RefineFeaturesV1}


def feature_builder(name: str):
    from depthmarks_ros.core.stereo.learned import LearnedModelError
    if name not in FEATURES:
        raise LearnedModelError(f'unknown refine features {name!r} (this package knows {", ".join(FEATURES)})')
    return FEATURES[name]()


def build_network(width: int = 16):
    """The torch module (imported lazily: torch is needed only to train and export)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def conv(cin, cout, stride=1, dilation=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                             nn.LeakyReLU(0.1, inplace=True))

    c1, c2, c3 = width, int(width * 1.5), 2 * width

    class RefineNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(RefineFeaturesV1.channels, c1, stride=2)                 # 1/2
            self.down2 = conv(c1, c2, stride=2)               # 1/4
            self.ctx2 = conv(c2, c2, dilation=2)
            self.down3 = conv(c2, c3, stride=2)               # 1/8
            self.ctx3a = conv(c3, c3, dilation=2)
            self.ctx3b = conv(c3, c3, dilation=4)
            self.up3 = nn.Conv2d(c3, c2, 1)
            self.dec2 = conv(c2, c2)
            self.up2 = nn.Conv2d(c2, c1, 1)
            self.dec1 = conv(c1, c1)
            self.to_full = nn.Conv2d(c1, HEAD_CHANNELS, 1)
            self.head = nn.Conv2d(HEAD_CHANNELS + RefineFeaturesV1.channels, 2, 3, padding=1)  # the only full-resolution layer
            with torch.no_grad():
                self.head.weight.mul_(0.1)
                self.head.bias.zero_()

        def forward(self, x):
            s1 = self.stem(x)
            s2 = self.ctx2(self.down2(s1))
            s3 = self.ctx3b(self.ctx3a(self.down3(s2)))
            u2 = self.dec2(s2 + F.interpolate(self.up3(s3), size=s2.shape[-2:], mode='bilinear',
                                              align_corners=False))
            u1 = self.dec1(s1 + F.interpolate(self.up2(u2), size=s1.shape[-2:], mode='bilinear',
                                              align_corners=False))
            full = F.interpolate(self.to_full(u1), size=x.shape[-2:], mode='bilinear', align_corners=False)
            return self.head(torch.cat([full, x], dim=1))

    return RefineNet()
