"""Backend ``coarse_to_fine_census``: semi-global matching at half resolution on a left-padded
pair, then per full-resolution pixel a census choice among the disparities around it (ROS-free).

1. Coarse: both images are padded to even size and halved (area average), then padded on the left
   by the half-size search range (replicated border: OpenCV leaves the first ``disparity_range``
   columns without a disparity; with the padding they are matched against the border and get one
   from the semi-global smoothness). The OpenCV matcher of ``stereo_algorithm`` (SGBM_3WAY by
   default, LR check / WLS as set: matching.py's :class:`StereoMatcher`) searches
   ``ceil(disparity_range / 2)`` disparities (rounded up to a multiple of 16) on it: about 1/8
   of the full-size work. Holes are filled along rows (fill.fill_holes_rows: the background side).
2. Candidates per full-resolution pixel: the doubled half-size disparity ``c`` of its half-size
   pixel, the smallest and the largest over that pixel's 3 x 3 half-size neighbourhood (the
   background and the foreground side of a depth edge; equal to ``c`` away from edges), and
   ``c - 0.5``, ``c + 0.5`` (sampled at the whole pixel, these test the whole-pixel neighbours of
   ``c`` and move it half-way there: the doubled half-size value is often off by about a pixel).
3. Choice: the candidate whose census cost, summed over a ``window`` box (11 px), is lowest
   (ties: the first in the order own, smallest, largest, -0.5, +0.5). Census: 8 comparisons of each pixel with the pixels
   2 px away (corners and edge midpoints of the 5 x 5 box), one byte; Hamming distance by a 256-entry
   table. The right image's census is sampled at ``x - round(candidate)``: whole-pixel sampling
   of a candidate kept at the half-size matcher's 1/16 px (1/8 px at full size). A 3 x 3
   median of the chosen map removes isolated choices. By default (``rows`` 2) the choice runs on
   rows 0, 2, 4, ... only (the census and the box on those rows: 11 px wide, 5 of them high) and
   each odd row takes the choice of the row above: half the work; both rows of a pair have the
   same candidates (one half-size row), so depth edges stay at full resolution across, on the
   2-row grid along the columns.

Pixels whose half-size pixel had no disparity (before the filling) are invalid (NaN), so are rows
without any coarse disparity and pixels whose match falls left of the right image's column
``EDGE`` (4: ``x - d < 4``; out of view, or matched against the padding); every other pixel, the
first columns included, has one. The choice runs on ``threads`` horizontal bands in parallel
(OpenCV releases the GIL; identical to one band). Confidence: the
half-size matcher's (texture x left-right x WLS terms), upsampled, 0 where invalid.
Accuracy and speed against the full-size matcher: docs/stereo_depth.md (benchmarks/bench_stereo.py).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from depthmarks_ros.core.stereo.backend import StereoBackend
from depthmarks_ros.core.stereo.coarse_to_fine import _halve, half_params
from depthmarks_ros.core.stereo.fill import fill_holes_rows
from depthmarks_ros.core.stereo.matching import StereoMatcher, match_padded, valid_window
from depthmarks_ros.core.stereo.params import StereoParams

OFFSETS = (-0.5, 0.5)   # also the pixel's own candidate moved by these (px): its whole-pixel neighbours, half-way
EDGE = 4            # invalid where the match falls left of the right image's column 4 (x - d < 4)
ROWS = 2            # the choice on every other row (half the work; see the module doc)
WINDOW = 11         # census cost box (px): the smallest within 0.05 points of the best bad-2 on KITTI's fit split (7: 9.66, 9: 9.61, 11: 9.56, 13: 9.54, 15: 9.53)
CENSUS_OFFSETS = ((-2, -2), (-2, 0), (-2, 2), (0, -2), (0, 2), (2, -2), (2, 0), (2, 2))  # (dy, dx), bit 0..7
POPCOUNT = np.array([bin(i).count('1') for i in range(256)], np.uint8)
_NO_VALUE = np.float32(1e6)   # an invalid candidate: samples far outside the image, then loses


def census(img: np.ndarray, row_step: int = 1) -> np.ndarray:
    """(H, W) uint8 census of an (H, W) uint8 image: bit i set where the pixel at offset
    CENSUS_OFFSETS[i] (border replicated) is darker than the pixel itself. ``row_step`` 2: ``img``
    holds every other row of the image (the offsets' 2 rows are 1 row of it)."""
    import cv2
    h, w = img.shape
    ry = 2 // row_step
    p = cv2.copyMakeBorder(img, ry, ry, 2, 2, cv2.BORDER_REPLICATE)
    out = np.zeros((h, w), np.uint8)
    for bit, (dy, dx) in enumerate(CENSUS_OFFSETS):
        dy //= row_step
        darker = cv2.compare(p[ry + dy:ry + dy + h, 2 + dx:2 + dx + w], img, cv2.CMP_LT)
        cv2.bitwise_or(out, cv2.bitwise_and(darker, 1 << bit), dst=out)
    return out


def coarse_candidates(disp_half: np.ndarray, min_disparity: float = 0.0
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Half-size (centre, min 3x3, max 3x3, holes) from the half-size disparity (NaN = hole): the
    maps doubled (full-size px) after the holes are filled along rows; rows without any disparity
    stay NaN in all three. ``holes``: bool, the holes before filling. Values at or below the
    half-size matcher's ``min_disparity`` (half-size px: the bound, where SGBM puts failed matches)
    are filled over too; values above it, 0 and negative ones included, are kept."""
    import cv2
    holes = np.isnan(disp_half)
    kernel = np.ones((3, 3), np.uint8)
    centre = fill_holes_rows(disp_half, empty_row=np.nan, holes=holes | (disp_half <= min_disparity))
    centre *= np.float32(2.0)
    empty = np.isnan(centre)
    if empty.any():   # NaN must neither win the minimum nor the maximum
        lo = cv2.erode(np.where(empty, np.float32(np.inf), centre), kernel)
        hi = cv2.dilate(np.where(empty, np.float32(-np.inf), centre), kernel)
        lo[empty] = np.nan
        hi[empty] = np.nan
    else:
        lo, hi = cv2.erode(centre, kernel), cv2.dilate(centre, kernel)
    return centre, lo, hi, holes


def choose(census_left: np.ndarray, census_right: np.ndarray, candidates: Sequence[np.ndarray],
           window: Union[int, Tuple[int, int]] = WINDOW) -> np.ndarray:
    """(H, W) float32: per pixel the candidate (H, W) float32 with the lowest census cost over a
    ``window`` box (width, height; an int: square) (the first on ties; NaN candidates never win
    unless all are NaN)."""
    import cv2
    box = (window, window) if isinstance(window, int) else tuple(window)
    h, w = census_left.shape
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.ascontiguousarray(np.broadcast_to(np.arange(h, dtype=np.float32)[:, None], (h, w)))
    best = best_cost = None
    for cand in candidates:
        invalid = np.isnan(cand)
        has_invalid = bool(invalid.any())
        shift = np.where(invalid, _NO_VALUE, cand) if has_invalid else cand
        sampled = cv2.remap(census_right, xs - shift, ys, cv2.INTER_NEAREST,   # rounds to the nearest pixel
                            borderMode=cv2.BORDER_REPLICATE)
        cost = cv2.boxFilter(cv2.LUT(cv2.bitwise_xor(census_left, sampled), POPCOUNT), cv2.CV_16U,
                             box, normalize=False)
        if has_invalid:
            cost[invalid] = np.iinfo(np.uint16).max
        if best is None:
            best, best_cost = cand.copy(), cost
            continue
        cv2.copyTo(cand, cv2.compare(cost, best_cost, cv2.CMP_LT), best)   # in place
        cv2.min(best_cost, cost, dst=best_cost)
    return best


def refine(left: np.ndarray, right: np.ndarray, disp_half: np.ndarray, window: int = WINDOW,
           median: bool = True, rows: int = ROWS, bounds: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """Steps 2 and 3 of the module doc: (H, W) float32 disparity (NaN invalid) of the rectified
    (H, W) uint8 pair from ``disp_half`` ((H + 1) // 2, (W + 1) // 2) float32 (NaN = hole), the
    half-size pair's disparity in half-size px. ``rows`` 2: the choice on rows 0, 2, 4, ... (box
    ``window`` wide, ``window // 2`` rows of them high, made odd), each taken by the row below too.
    ``bounds``: (min, max) disparity; the half-pixel steps are clipped into it."""
    import cv2
    h, w = left.shape
    hh, wh = disp_half.shape
    centre, lo, hi, holes = coarse_candidates(disp_half, bounds[0] / 2.0 if bounds is not None else 0.0)
    if rows == 2:
        left, right = np.ascontiguousarray(left[::2]), np.ascontiguousarray(right[::2])   # hh rows
        box = (window, (window // 2) | 1)
    else:
        box = (window, window)
    out_h = left.shape[0]

    def up(m: np.ndarray) -> np.ndarray:
        return cv2.resize(m, (2 * wh, hh * (3 - rows)), interpolation=cv2.INTER_NEAREST)[:out_h, :w]

    cands = [up(centre), up(lo), up(hi)]
    cands += [cands[0] + np.float32(o) for o in OFFSETS]
    best = choose(census(left, rows), census(right, rows), cands, box)
    if median and out_h >= 3 and w >= 3:
        nan = np.isnan(best)
        if nan.any():    # rows without a coarse disparity: keep them out of the median
            best = cv2.medianBlur(np.where(nan, np.float32(0), best), 3)
            best[nan] = np.nan
        else:
            best = cv2.medianBlur(best, 3)
    best[up(holes.view(np.uint8)).view(bool)] = np.nan
    reach = min(w, int(np.ceil(2 * np.nanmax(disp_half, initial=0.0))) + EDGE)   # columns x < d + EDGE
    if reach > 0:
        first = best[:, :reach]
        first[np.arange(reach, dtype=np.float32)[None, :] - first < EDGE] = np.nan
    if bounds is not None:
        np.clip(best, bounds[0], bounds[1], out=best)          # NaN stays NaN
    if rows == 2:
        best = cv2.resize(best, (w, 2 * out_h), interpolation=cv2.INTER_NEAREST)[:h]
    return best


def band_rows(height_half: int, bands: int, margin: int) -> List[Tuple[int, int, int, int]]:
    """``(src_top, src_bottom, keep_top, keep_bottom)`` half-size rows of ``bands`` bands that
    overlap by ``margin`` half-size rows (at least 8 rows kept per band)."""
    n = max(1, min(bands, height_half // 8))
    cuts = np.linspace(0, height_half, n + 1).astype(int)
    return [(max(int(cuts[i]) - margin, 0), min(int(cuts[i + 1]) + margin, height_half), int(cuts[i]),
             int(cuts[i + 1])) for i in range(n)]


class CoarseToFineCensusBackend(StereoBackend):
    """See the module docstring. ``window``: census cost box (odd); ``pad``: left-pad the half-size
    pair (False: OpenCV's empty first columns are left to the row filling); ``median``: 3 x 3 median
    of the chosen map; ``rows`` 1: the choice on every row, 2: on every other row."""

    name = 'coarse_to_fine_census'
    delta_d = 1.0 / 8.0

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2, window: int = WINDOW,
                 pad: bool = True, median: bool = True, rows: int = ROWS):
        if window % 2 == 0 or window < 3:
            raise ValueError(f'window must be odd and at least 3 (got {window})')
        if rows not in (1, 2):
            raise ValueError(f'rows must be 1 or 2 (got {rows})')
        self.window, self.pad, self.median, self.rows = window, pad, median, rows
        self.threads = max(1, threads)
        self.params = params or StereoParams()
        self.params.validate()
        self.coarse = StereoMatcher(half_params(self.params), threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix='stereo_fine')

    def set_params(self, params: StereoParams) -> None:
        params.validate()
        self.coarse.set_params(half_params(params))
        self.params = params

    def coarse_pad(self) -> int:
        """Columns the half-size pair is padded with on the left (its largest disparity searched)."""
        hp = self.coarse.params
        return max(0, hp.min_disparity + hp.disparity_range) if self.pad else 0

    def valid_window(self, width: int, height: int) -> Tuple[int, int, int, int]:
        return (0, 0, int(width), int(height)) if self.pad else valid_window(self.params, width, height)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True):
        import cv2
        if left.shape != right.shape or left.ndim != 2 or left.dtype != np.uint8:
            raise ValueError(f'{self.name} matches single-channel uint8 images of equal size')
        h, w = left.shape

        def coarse(a, b):
            r = self.coarse.compute(a, b, confidence=confidence)
            return r.disparity, r.confidence
        disp_half, conf_half = match_padded(coarse, _halve(left), _halve(right), self.coarse_pad())
        twice = disp_half * np.float32(2.0)
        disp_half[(twice < self.min_disparity) | (twice > self.max_disparity)] = np.nan   # outside the range
        # full-size rows 2 s0 .. 2 s1 of a band of half-size rows s0 .. s1; the margin (half-size
        # rows) covers the 3 x 3 neighbourhood (1), census (2 full-size rows), box and median
        margin = 1 + (self.window // 2 + 3 + 1) // 2 + 1
        bounds = band_rows(disp_half.shape[0], self.threads, margin)
        jobs = [(left[2 * s0:2 * s1], right[2 * s0:2 * s1], disp_half[s0:s1])
                for s0, s1, _k0, _k1 in bounds]
        args = (self.window, self.median, self.rows, (self.min_disparity, self.max_disparity))
        if len(jobs) == 1:
            disp = refine(*jobs[0], *args)
        else:
            futures = [self._pool.submit(refine, *job, *args) for job in jobs]
            disp = np.empty((h, w), np.float32)
            for f, (s0, _s1, k0, k1) in zip(futures, bounds):
                disp[2 * k0:2 * k1] = f.result()[2 * (k0 - s0):2 * (k1 - s0)]
        conf = None
        if confidence:
            conf = cv2.resize(conf_half, (2 * conf_half.shape[1], 2 * conf_half.shape[0]),
                              interpolation=cv2.INTER_NEAREST)[:h, :w]
            conf[np.isnan(disp)] = 0.0
        return disp, conf

    def close(self) -> None:
        self.coarse.close()
        self._pool.shutdown(wait=False)
