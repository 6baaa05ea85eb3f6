"""Compact disparity refinement networks trained here (ROS-free; torch only for training/export).

Two feature sets / networks (the YAML's ``features`` names the one a model file was trained with):

- ``depthmarks_refine_v2`` (RefineFeaturesV2, build_network_v2; the shipped one): the classical
  matcher runs on the pair padded on the left by half its range (OpenCV leaves the first
  ``disparity_range`` columns empty); the network then chooses, per pixel, among candidate
  disparities -- the matched value where there is one, and for holes the row's left / right
  neighbour, their linear interpolation, a 2-D smooth fill and the column's interpolation -- and
  adds a residual; trained with a mixture-of-Laplace NLL (one component per candidate). See the
  classes below.
- ``depthmarks_refine_v1`` (RefineFeaturesV1, build_network): a residual over the row-filled
  classical disparity (the first shipped network), described next.

v1 refines the classical matcher's disparity, guided by the left image:

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

from depthmarks_ros.core.stereo.fill import fill_holes_rows, row_fills

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


FEATURES = {FEATURES_V1: RefineFeaturesV1}   # v2 added below


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


# ---------------------------------------------------------------------------------------------- v2
FEATURES_V2 = 'depthmarks_refine_v2'
PAD_SHARE = 1.0      # v2: the classical matcher sees the images padded on the left by this x its range
PHOTO_WINDOW = 5     # v2: photometric errors are averaged over this window (a small SAD)
EDGE_STEP = 2        # v2: grey-level step (3x3-blurred, every second pixel) that counts as an image edge
CANDIDATES = ('row_edge', 'row_left', 'row_right', 'row_linear', 'column_linear')
# v3: KITTI's row rule (the smaller neighbour) is the starting candidate, the edge-aware fill one of the
# others (as the start it was worse than the row rule on simulated frames), edges at a step of 4
FEATURES_V3 = 'depthmarks_refine_v3'
CANDIDATES_V3 = ('row_min', 'row_edge', 'row_left', 'row_linear', 'column_linear')
EDGE_STEP_V3 = 4


def image_edges(grey: np.ndarray, step: int = EDGE_STEP) -> np.ndarray:
    """Bool map of horizontal intensity steps: |x-difference| of the 3x3-blurred image > ``step``."""
    import cv2
    g = cv2.GaussianBlur(grey, (3, 3), 0).astype(np.int16)
    e = np.zeros(g.shape, bool)
    e[:, 1:] = np.abs(np.diff(g, axis=1)) > step
    return e


def candidate_fills(disparity: np.ndarray, left: np.ndarray, candidates: Tuple[str, ...] = CANDIDATES,
                    edge_step: int = EDGE_STEP) -> Tuple[np.ndarray, np.ndarray]:
    """(K, H, W) candidate disparities (CANDIDATES order) and the validity mask of ``disparity``
    (``left``: the grey left image, for the edge-aware fill). Valid pixels keep their matched value
    in the row and column fills; the hole fills are computed on every second row and column (4x
    fewer pixels, numpy is the cost) and interpolated back."""
    import cv2
    valid = np.isfinite(disparity) & (disparity > 0)
    d = np.where(valid, disparity, np.float32(0)).astype(np.float32)
    h, w = d.shape
    d2, v2 = np.ascontiguousarray(d[::2, ::2]), np.ascontiguousarray(valid[::2, ::2])
    lin, lv, rv, edge = row_fills(d2, v2, image_edges(np.ascontiguousarray(left[::2, ::2]), edge_step))
    col_lin = row_fills(np.ascontiguousarray(d2.T), np.ascontiguousarray(v2.T))[0].T
    fills = {'row_edge': edge, 'row_left': lv, 'row_right': rv, 'row_linear': lin, 'column_linear': col_lin}
    out = np.empty((len(candidates), h, w), np.float32)
    for i, c in enumerate(fills.get(name) for name in candidates):
        if c is None:   # row_min: KITTI's rule at full resolution (fill.py), exactly the benchmark's fill
            out[i] = fill_holes_rows(d)      # 0 = hole there too
            continue
        cv2.resize(np.ascontiguousarray(c), (w, h), dst=out[i], interpolation=cv2.INTER_LINEAR)
        np.copyto(out[i], d, where=valid)
    return out, valid


class RefineFeaturesV2:
    """v2: the network chooses, per pixel, among candidate disparities (the matched value where there
    is one; in holes the row's edge-aware fill, its left / right neighbour, their linear interpolation
    and the column's interpolation) and adds a small residual; the classical matcher sees the images
    padded on the left so that the first columns (no disparity from OpenCV) are matched too.

        features (13, H, W) = [left / 255 - 0.5, validity, row_edge / DISP_NORM,
                               (candidate k - row_edge) / DISP_NORM for the 4 other candidates,
                               (2-D smooth fill - row_edge) / DISP_NORM (0 where it has no value),
                               mean |left - right warped by candidate k| / 255 over a 5x5 window (5)]
    """
    name = FEATURES_V2
    candidates = CANDIDATES
    edge_step = EDGE_STEP
    n_candidates = len(CANDIDATES)
    channels = 2 * len(CANDIDATES) + 3
    divisible_by = 8

    @staticmethod
    def left_pad(params) -> int:
        rng = int(getattr(params, 'disparity_range', 128)) + max(int(getattr(params, 'min_disparity', 0)), 0)
        return int(round(PAD_SHARE * rng))

    def classical_disparity(self, matcher, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The classical matcher's disparity of the pair padded on the left (replicated border) by
        ``left_pad`` columns, cropped back (matching.match_padded): OpenCV leaves the first
        ``disparity_range`` columns empty."""
        from depthmarks_ros.core.stereo.matching import match_padded
        return match_padded(lambda a, b: matcher.compute(a, b, confidence=False).disparity, left, right,
                            self.left_pad(matcher.params))

    def build(self, left: np.ndarray, right: np.ndarray, disparity: np.ndarray, params=None
              ) -> Tuple[np.ndarray, _State]:
        import cv2
        h, w = left.shape
        cands, valid = candidate_fills(disparity, left, self.candidates, self.edge_step)
        cols = np.arange(w, dtype=np.float32)[None, :]
        ys = np.ascontiguousarray(np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
        k = self.n_candidates
        f = np.empty((self.channels, h, w), np.float32)
        np.multiply(left, np.float32(1 / 255.0), out=f[0], casting='unsafe')
        f[0] -= np.float32(0.5)
        f[1] = valid
        np.multiply(cands[0], np.float32(1.0 / DISP_NORM), out=f[2])
        np.subtract(cands[1:], cands[0], out=f[3:2 + k])
        f[3:2 + k] *= np.float32(1.0 / DISP_NORM)
        smooth = smooth_fill(np.where(valid, disparity, np.float32(0)), valid)
        f[2 + k] = np.where(smooth > 0, smooth - cands[0], np.float32(0)) * np.float32(1.0 / DISP_NORM)
        for i in range(k):
            warped = cv2.remap(right, cols - cands[i], ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            sad = cv2.blur(cv2.absdiff(left, warped), (PHOTO_WINDOW, PHOTO_WINDOW))
            np.multiply(sad, np.float32(1 / 255.0), out=f[3 + k + i], casting='unsafe')
        return f, _State(cands[0])

    def finish(self, residual: np.ndarray, log_b: Optional[np.ndarray], state: _State
               ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        return RefineFeaturesV1.finish(self, residual, log_b, state)


class RefineFeaturesV3(RefineFeaturesV2):
    """v3: v2 with KITTI's row rule as the starting candidate (CANDIDATES_V3, EDGE_STEP_V3); same
    channels and network."""
    name = FEATURES_V3
    candidates = CANDIDATES_V3
    edge_step = EDGE_STEP_V3


FEATURES[FEATURES_V2] = RefineFeaturesV2
FEATURES[FEATURES_V3] = RefineFeaturesV3


def build_network_v2(width: int = 16):
    """v2 network: context at 1/4 and 1/8 resolution (dilated convolutions); its per-candidate logits,
    residual and log b are upsampled to full resolution, where each candidate's logit is lowered by
    a learned weight x its photometric error at that pixel (the only per-pixel evidence). Outputs, in eval/export form,
    (offset of the chosen candidate from row_edge + residual, log b); ``train_outputs`` gives the
    candidate logits for the mixture loss."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    spec = RefineFeaturesV2
    k = spec.n_candidates

    def conv(cin, cout, stride=1, dilation=1):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation),
                             nn.LeakyReLU(0.1, inplace=True))

    c1, c2 = width, 2 * width

    class RefineNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(spec.channels, c1, stride=2)     # on the 1/2 average -> 1/4
            self.s4 = conv(c1, c1)
            self.down = conv(c1, c2, stride=2)                # 1/8
            self.ctx = nn.Sequential(conv(c2, c2, dilation=2), conv(c2, c2, dilation=4), conv(c2, c2, dilation=8))
            self.up = nn.Conv2d(c2, c1, 1)
            self.dec = conv(c1, c1)
            # k candidate logits, residual, log b (mixture), log b (output) at 1/4, upsampled
            self.head = nn.Conv2d(c1, k + 3, 1)
            # full resolution, per pixel: candidate logit -= photo_weight_k x its photometric error
            self.photo_weight = nn.Parameter(torch.full((1, k, 1, 1), 2.0))
            with torch.no_grad():
                self.head.weight.mul_(0.1)
                self.head.bias.zero_()
                self.head.bias[0] = 1.0     # start from row_edge

        def raw(self, x):
            s4 = self.s4(self.stem(F.avg_pool2d(x, 2)))
            s8 = self.ctx(self.down(s4))
            u4 = self.dec(s4 + F.interpolate(self.up(s8), size=s4.shape[-2:], mode='bilinear', align_corners=False))
            o = F.interpolate(self.head(u4), size=x.shape[-2:], mode='bilinear', align_corners=False)
            logits = o[:, :k] - self.photo_weight * x[:, 3 + k:]
            return torch.cat([logits, o[:, k:]], dim=1)

        @staticmethod
        def offsets(x):
            """(N, K, H, W) candidate offsets from row_edge in px."""
            zero = torch.zeros_like(x[:, 2:3])
            return torch.cat([zero, x[:, 3:2 + k] * DISP_NORM], dim=1)

        def train_outputs(self, x):
            o = self.raw(x)
            return o[:, :k], self.offsets(x), o[:, k], o[:, k + 1], o[:, k + 2]

        def forward(self, x):
            o = self.raw(x)
            idx = torch.argmax(o[:, :k], dim=1, keepdim=True)
            chosen = torch.gather(self.offsets(x), 1, idx)
            return torch.cat([chosen + o[:, k:k + 1], o[:, k + 2:k + 3]], dim=1)

    return RefineNetV2()
