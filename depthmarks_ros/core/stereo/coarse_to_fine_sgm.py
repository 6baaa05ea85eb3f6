"""Backend ``coarse_to_fine_sgm``: match at half resolution, then a narrow full-resolution
semi-global search around that result (ROS-free). ``coarse_to_fine`` (coarse_to_fine.py) shares
step 1 and replaces step 2 by a cheaper choice among the half-resolution neighbours: faster, less
accurate.

1. Coarse: both images are padded to even size and halved (area average). The OpenCV matcher of
   ``stereo_algorithm`` (SGBM_3WAY by default, with LR check / WLS when set: matching.py's
   :class:`StereoMatcher`) searches ``ceil(disparity_range / 2)`` disparities, rounded up to a
   multiple of 16: 4x fewer pixels and 2x fewer disparities, about 1/8 of the full-size work.
   Its holes are filled along each row (fill.fill_holes_rows: the background side), and the map is
   doubled and upsampled (nearest) to the prior ``D0`` (whole pixels).
2. Fine: the right image is warped by the prior, ``R'(x, y) = R(x - D0(x, y), y)``, and the same
   OpenCV matcher, with the same window, P1/P2, uniqueness and LR tolerance, searches only the
   residual ``r`` in ``[-residual, residual)`` (32 disparities by default instead of 128) between
   the left image and ``R'``; the disparity is ``D0 + r`` at the matcher's 1/16 px. The
   semi-global smoothness then acts on the residual, i.e. on the deviation from the coarse
   surface, and depth edges come back at full resolution. Speckles are removed afterwards on the
   full disparity (as the full-size matcher does: ``speckle_size`` / ``speckle_range``).
3. By default (``rows`` 2) step 2 runs on every other row only (half the pixels: OpenCV's
   SGBM_3WAY has a large per-pixel cost besides the per-disparity one, so fewer disparities
   alone do not make it cheap); each odd row takes, per pixel, the disparity of the row above or
   below whose match is better (7 x 7 SAD, :func:`fill_rows`).

A pixel is invalid where the fine matcher finds no match, whose correspondence falls left of the
right image (``x - d < 0``), whose disparity leaves ``[min_disparity, min_disparity +
disparity_range)``, or whose whole row had no coarse disparity. Confidence: the half-resolution
matcher's (texture x left-right x WLS terms), upsampled, 0 where invalid. Where the coarse result
is wrong by more than ``residual`` px (thin structures lost at half size, filled holes) the fine
search cannot reach the truth. Accuracy and speed against the full-size matcher:
docs/stereo_depth.md (benchmarks/bench_stereo.py).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from depthmarks_ros.core.stereo.coarse_to_fine import CoarseToFineBackend
from depthmarks_ros.core.stereo.fill import fill_holes_rows
from depthmarks_ros.core.stereo.params import StereoParams, create_opencv_matcher

RESIDUAL = 16   # fine search: D0 - 16 .. D0 + 15 (chosen on KITTI 2012's fit split, docs/stereo_depth.md)
ROWS = 2        # fine search on every other row, the others picked from their neighbours (half the time)


def fine_params(p: StereoParams, residual: int = RESIDUAL) -> StereoParams:
    """The full-resolution matcher's parameters: the residual range, speckles removed afterwards."""
    return p.replace(min_disparity=-residual, disparity_range=2 * residual, speckle_size=0, lr_check=False,
                     wls_filter=False)


def prior(disp_half: np.ndarray, shape: Tuple[int, int], min_disparity: float = 0.0) -> np.ndarray:
    """Whole-pixel full-resolution prior (H, W) float32 from ``disp_half``: holes (NaN, and values at
    or below ``min_disparity``, half-size px) filled along rows, doubled, nearest-upsampled; NaN only
    in rows without any coarse disparity."""
    import cv2
    h, w = shape
    holes = np.isnan(disp_half) | (disp_half <= min_disparity)
    filled = fill_holes_rows(disp_half, empty_row=np.nan, holes=holes) * np.float32(2.0)
    up = cv2.resize(filled, (filled.shape[1] * 2, filled.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    return np.rint(up[:h, :w])


def refine(left: np.ndarray, right: np.ndarray, d0: np.ndarray, fine, params: StereoParams,
           residual: int = RESIDUAL) -> np.ndarray:
    """Full-resolution disparity (H, W) float32 (NaN invalid): ``fine`` (an OpenCV matcher with
    :func:`fine_params`) searches ``d0 +- residual`` between ``left`` and ``right`` warped by ``d0``.

    left, right: (H, W) uint8 grey, rectified; d0: (H, W) whole-pixel prior, NaN = no prior.
    """
    import cv2
    h, w = left.shape
    no_prior = np.isnan(d0)
    d0 = np.where(no_prior, np.float32(0.0), d0).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w))
    warped = cv2.remap(right, xs - d0, np.ascontiguousarray(ys), cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_REPLICATE)
    r = fine.compute(left, warped)                       # int16, 1/16 px; below -16 * residual: no match
    d16 = d0.astype(np.int16) * np.int16(16) + r
    bad = (r < -16 * residual) | no_prior
    lo, hi = params.min_disparity * 16, (params.min_disparity + params.disparity_range - 1) * 16
    bad |= (d16 < lo) | (d16 > hi)
    inv = np.int16(lo - 16)
    d16[bad] = inv
    if params.speckle_size > 0:
        cv2.filterSpeckles(d16, inv, params.speckle_size, params.speckle_range * 16)
    disp = d16.astype(np.float32) * np.float32(1.0 / 16.0)
    disp[(d16 == inv) | (xs - disp < 0)] = np.nan
    return disp


def fill_rows(left: np.ndarray, right: np.ndarray, even: np.ndarray, window: int = 7) -> np.ndarray:
    """(H, W) disparity from ``even`` (the disparity of rows 0, 2, 4, ...): each odd row takes, per
    pixel, the value of the row above or below whose right-image match (``window`` box SAD, whole
    pixels) is better; NaN where both are invalid."""
    import cv2
    h, w = left.shape
    out = np.empty((h, w), np.float32)
    out[::2] = even
    n = h // 2                                    # odd rows
    if n == 0:
        return out
    above, below = even[:n], np.vstack([even[1:], even[-1:]])[:n]
    lo, ro = np.ascontiguousarray(left[1::2]), np.ascontiguousarray(right[1::2])
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.ascontiguousarray(np.broadcast_to(np.arange(n, dtype=np.float32)[:, None], (n, w)))
    costs = []
    for cand in (above, below):
        shift = np.where(np.isnan(cand), np.float32(1e4), np.rint(cand)).astype(np.float32)
        shifted = cv2.remap(ro, xs - shift, ys, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        costs.append(cv2.boxFilter(cv2.absdiff(lo, shifted), cv2.CV_16U, (window, window), normalize=False))
    take_below = (costs[1] < costs[0]) & ~np.isnan(below) | np.isnan(above)
    out[1::2] = np.where(take_below, below, above)
    return out


class CoarseToFineSGMBackend(CoarseToFineBackend):
    """See the module docstring. ``residual``: half-width of the full-resolution search (px);
    ``rows``: 1 = the fine search on every row, 2 = on every other row (:func:`fill_rows`)."""

    name = 'coarse_to_fine_sgm'
    delta_d = 1.0 / 16.0

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2, residual: int = RESIDUAL,
                 rows: int = ROWS):
        if residual < 16 or residual % 8:
            raise ValueError(f'residual must be a multiple of 8, at least 16 (got {residual})')
        if rows not in (1, 2):
            raise ValueError(f'rows must be 1 or 2 (got {rows})')
        self.residual, self.rows = residual, rows
        super().__init__(params, threads)
        self.fine = create_opencv_matcher(fine_params(self.params, residual))

    def set_params(self, params: StereoParams) -> None:
        super().set_params(params)
        self.fine = create_opencv_matcher(fine_params(params, self.residual))

    def _refine(self, left: np.ndarray, right: np.ndarray, disp_half: np.ndarray) -> np.ndarray:
        d0 = prior(disp_half, left.shape, self.params.min_disparity / 2.0)
        if self.rows == 1:
            return refine(left, right, d0, self.fine, self.params, self.residual)
        even = refine(np.ascontiguousarray(left[::2]), np.ascontiguousarray(right[::2]), np.ascontiguousarray(d0[::2]),
                      self.fine, self.params, self.residual)
        return fill_rows(left, right, even)
