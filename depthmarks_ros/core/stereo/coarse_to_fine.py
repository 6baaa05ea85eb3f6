"""Backend ``coarse_to_fine``: match at half resolution, then choose each full-resolution pixel's
disparity among its half-resolution neighbours' (ROS-free).

1. Both images are padded to even size and halved (area average). The OpenCV matcher of
   ``stereo_algorithm`` (SGBM_3WAY by default, with LR check / WLS when set: matching.py's
   :class:`StereoMatcher`) searches ``ceil(disparity_range / 2)`` disparities, rounded up to a
   multiple of 16: 4x fewer pixels and 2x fewer disparities, about 1/8 of the full-size work.
2. Refinement at full resolution: each pixel's candidates are twice the half-resolution
   disparities of the 2 x 2 half-resolution pixels around it (``neighbourhood`` 2; n x n for odd
   n); the winner is the candidate with the smallest sum of absolute differences of (grey,
   2 x clipped horizontal Sobel) over a ``refine_window`` box (7 px), sampled at the candidate
   rounded to a whole pixel (nearest-neighbour remaps: bilinear ones cost 6x more here for the
   same accuracy on KITTI's fit split). This puts
   depth edges back where the full-resolution images have them (plain upsampling leaves them on
   the 2 px grid, blurred by the half-size window), without a new search: a pixel only takes a
   disparity that SGM found nearby, so the result keeps SGM's smoothness.

Invalid (NaN) candidates never win; a pixel whose candidates are all invalid stays invalid.
Confidence: the half-resolution matcher's (texture x left-right x WLS terms), upsampled.
Sub-pixel precision is the half-resolution matcher's 1/16 px, i.e. 1/8 px at full size.
Accuracy and speed against the full-size matcher: docs/stereo_depth.md (benchmarks/bench_stereo.py).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.backend import StereoBackend
from depthmarks_ros.core.stereo.matching import StereoMatcher, valid_window
from depthmarks_ros.core.stereo.params import StereoParams

GRADIENT_CLIP = 64  # |Sobel x| is clipped here (like OpenCV's pre-filter cap)
INVALID_COST = np.int32(1 << 30)


def half_params(p: StereoParams) -> StereoParams:
    """The parameters of the half-resolution matcher: the same matcher, half the disparities
    (rounded up to a multiple of 16, at least 32) from half the minimum disparity."""
    rng = max(32, int(np.ceil(p.disparity_range / 32.0)) * 16)   # 32: the smallest range the spec allows
    return p.replace(disparity_range=rng, min_disparity=int(np.floor(p.min_disparity / 2.0)))


def _halve(img: np.ndarray) -> np.ndarray:
    import cv2
    h, w = img.shape[:2]
    if h % 2 or w % 2:
        img = cv2.copyMakeBorder(img, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
    return cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _features(img: np.ndarray) -> np.ndarray:
    """(H, W, 2) uint8: grey, and 2 x clipped horizontal gradient + 128 (equal weights in the cost)."""
    import cv2
    gx = cv2.Sobel(img, cv2.CV_16S, 1, 0, ksize=3)
    g = np.clip(gx, -GRADIENT_CLIP, GRADIENT_CLIP - 1) * 2 + 128
    return cv2.merge([img, g.astype(np.uint8)])


class _Grid:
    """Per image size: the full-resolution pixel grid and, per candidate, the half-resolution pixel
    it reads (as nearest-neighbour remap tables)."""

    def __init__(self, h: int, w: int, hh: int, wh: int, neighbourhood: int):
        self.xs = np.arange(w, dtype=np.float32)[None, :]
        self.ys = np.ascontiguousarray(np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
        # half-resolution coordinates of each full-resolution pixel centre
        xc, yc = (np.arange(w) + 0.5) / 2 - 0.5, (np.arange(h) + 0.5) / 2 - 0.5
        if neighbourhood == 2:   # the 2 x 2 half-resolution pixels around the centre (bilinear support)
            offsets, x0, y0 = (0, 1), np.floor(xc), np.floor(yc)
        else:                    # the n x n around the nearest one
            r = neighbourhood // 2
            offsets, x0, y0 = range(-r, r + 1), np.round(xc), np.round(yc)
        self.maps = []
        for dy in offsets:
            my = np.clip(y0 + dy, 0, hh - 1).astype(np.float32)
            for dx in offsets:
                mx = np.clip(x0 + dx, 0, wh - 1).astype(np.float32)
                self.maps.append((np.ascontiguousarray(np.broadcast_to(mx[None, :], (h, w))),
                                  np.ascontiguousarray(np.broadcast_to(my[:, None], (h, w)))))


def refine(left: np.ndarray, right: np.ndarray, disp_half: np.ndarray, neighbourhood: int = 2,
           window: int = 7, grid: Optional[_Grid] = None) -> np.ndarray:
    """Full-resolution disparity (H, W) float32 (NaN invalid) from ``disp_half`` ((H+1)//2, (W+1)//2)
    of the halved pair: per pixel, the best of its neighbours' doubled disparities (module doc).

    left, right: (H, W) uint8 grey, rectified. The cost of a candidate d at pixel x is the sum over a
    ``window`` box of |f_L(x) - f_R(x - round(d))| with f = (grey, 2 x clipped Sobel x).
    """
    import cv2
    h, w = left.shape
    grid = grid or _Grid(h, w, disp_half.shape[0], disp_half.shape[1], neighbourhood)
    fl, fr = _features(left), _features(right)
    doubled = disp_half * np.float32(2.0)
    best = best_cost = None
    for mx, my in grid.maps:
        cand = cv2.remap(doubled, mx, my, cv2.INTER_NEAREST)   # (H, W): this neighbour's disparity
        invalid = np.isnan(cand)
        map_x = grid.xs - np.where(invalid, np.float32(1e4), cand)
        shifted = cv2.remap(fr, map_x, grid.ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        box = cv2.boxFilter(cv2.absdiff(fl, shifted), cv2.CV_16U, (window, window), normalize=False)
        cost = box[..., 0].astype(np.int32) + box[..., 1]
        cost[invalid] = INVALID_COST
        if best is None:
            best, best_cost = cand, cost
        else:
            better = cost < best_cost
            np.copyto(best, cand, where=better)
            np.copyto(best_cost, cost, where=better)
    return best


class CoarseToFineBackend(StereoBackend):
    """See the module docstring. ``neighbourhood`` (odd) and ``refine_window`` (odd) tune step 2."""

    name = 'coarse_to_fine'
    delta_d = 1.0 / 8.0

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2, neighbourhood: int = 2,
                 refine_window: int = 7):
        if not (neighbourhood == 2 or neighbourhood % 2 == 1) or refine_window % 2 == 0:
            raise ValueError('neighbourhood must be 2 or odd, refine_window odd')
        self._grid, self._grid_key = None, None
        self.neighbourhood, self.refine_window = neighbourhood, refine_window
        self.params = params or StereoParams()
        self.params.validate()
        self.coarse = StereoMatcher(half_params(self.params), threads)

    def set_params(self, params: StereoParams) -> None:
        params.validate()
        self.coarse.set_params(half_params(params))
        self.params = params

    def valid_window(self, width: int, height: int) -> Tuple[int, int, int, int]:
        return valid_window(self.params, width, height)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True):
        import cv2
        if left.shape != right.shape or left.ndim != 2 or left.dtype != np.uint8:
            raise ValueError(f'{self.name} matches single-channel uint8 images of equal size')
        h, w = left.shape
        try:
            half = self.coarse.compute(_halve(left), _halve(right), confidence=confidence)
        except cv2.error as exc:   # e.g. half-size images narrower than the half-size search range
            raise ValueError(f'{self.name}: {w}x{h} images are too small for the half-size matcher '
                             f'({exc.msg if hasattr(exc, "msg") else exc})') from exc
        disp = self._refine(left, right, half.disparity)
        conf = None
        if confidence:
            conf = cv2.resize(half.confidence, (half.confidence.shape[1] * 2, half.confidence.shape[0] * 2),
                              interpolation=cv2.INTER_NEAREST)[:h, :w]
            conf[np.isnan(disp)] = 0.0
        return disp, conf

    def _refine(self, left: np.ndarray, right: np.ndarray, disp_half: np.ndarray) -> np.ndarray:
        """Step 2: the full-resolution disparity from the half-resolution one."""
        h, w = left.shape
        key = (h, w) + disp_half.shape
        if key != self._grid_key:
            self._grid, self._grid_key = _Grid(h, w, *disp_half.shape, self.neighbourhood), key
        return refine(left, right, disp_half, self.neighbourhood, self.refine_window, self._grid)

    def close(self) -> None:
        self.coarse.close()
