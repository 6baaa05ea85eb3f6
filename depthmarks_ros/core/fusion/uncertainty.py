"""Per-source depth standard deviation models (ROS-free).

* LiDAR (completed): sigma = sqrt(s0^2 + (a * dist_px * z)^2 + (b * z)^2 + (c * range)^2): range
  noise ``s0`` where measured, growing with the pixel distance to the nearest measured point
  (interpolated depth is a guess), a relative term ``b``, and ``range`` = max - min of the
  completed depth in a 9x9 window (near depth edges interpolation may pick either side), plus
  (k * (res + RESID_FLOOR) * (1 + dist_px))^2 with ``res`` the local interpolation residual
  (:func:`interpolation_residual`: how well each return is predicted from its scan-line
  neighbours, around the pixel), the feature that carries from one real frame to another
  (docs/depth_fusion.md). That sigma S (raised to a power, times (1 + row gap)^q) is widened by a
  **layer term**: sigma^2 = S^2 + P (g G)^2, with G = :func:`layer_gap` (the largest |kept return -
  completed depth| in a 5x9 window: the other depth layer the pixel may belong to) and P = 1 / (1 +
  e^-w0 (1 + 10 G / z)^-w1) the probability of being on it (lidar_layer g, lidar_layer_bias w0,
  lidar_layer_slope w1, fitted in [0, 8]: P never falls as G grows; g = 0: off). Parameters are fitted (``depthmarks fit-fusion``); the defaults
  come from the fit on the simulated rig (k = 0 and no layer term there: its LiDAR noise is the same
  everywhere).
* Stereo: sigma_Z = Z^2 / (f B) * sigma_d, with sigma_d = sigma_d0 / max(confidence, c_min)^p
  * exp(w_h hole + w_r range + w_s holeshare) * disparity^q (:func:`stereo_features`: cheap
  features of the stereo depth map itself that flag gross mismatches, the heavy tail of real stereo
  errors). With p = 1 and the other weights 0 (the defaults, the simulated rig's fit) it is
  sigma_d0 / confidence; the real-data model (fit-fusion --kitti-stereo) fits them all
  (learned.fit_stereo_features, docs/depth_fusion.md).
* Mono (after a scale/shift fit to metric depth): sigma = rel * z.
* Fused (two sources or more, after core.fusion.combine): the stereo sigma enters the fusion times
  ``stereo_fuse_factor`` (its fusion weight), and the fused sigma is fused_scale * sqrt(sigma^2 +
  (fused_edge * R9)^2) with R9 the fused depth's own 9x9 range (:func:`fused_sigma_expr`): at depth
  edges stereo and the completed LiDAR fail together and the sources' spread does not see it. All three
  are set from the fused output of the chain the full pipeline runs (cli/fit_fusion.py,
  learned.fit_stereo_fuse_factor, fit_fused_scale; fused_edge 0 there: with the stereo factor it moves
  neither share); 1, 0, 1 in a model file without them (the KITTI model).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from depthmarks_ros.core.camera import depth_sigma_from_disparity
from depthmarks_ros.core.fusion.completion import measured


# the built-in model's fused terms (SigmaModel.stereo_fuse_factor, fused_edge, fused_scale)
STEREO_FUSE_FACTOR_SIM = 11.3137    # 2 ** (14 / 4), a point of learned.STEREO_FUSE_GRID
FUSED_EDGE_SIM = 0.0
FUSED_SCALE_SIM = 1.1398
FUSED_WINDOW = 9          # px: window of the fused depth's range in the fused-edge term


@dataclass
class SigmaModel:
    # defaults: `depthmarks fit-fusion --frames 4 --completion classical` on the simulated rig
    lidar_s0: float = 0.0435
    lidar_a: float = 0.0127
    lidar_b: float = 0.00277
    lidar_c: float = 5.02
    lidar_k: float = 0.0
    # sigma_lidar = (the sqrt above) ^ lidar_base_pow * (1 + row gap) ^ lidar_gap_pow (row_gap; defaults: off)
    lidar_base_pow: float = 1.0
    lidar_gap_pow: float = 0.0
    # layer term (module docstring; lidar_layer 0: off, the sim defaults): sigma^2 = S^2 + P (g G)^2
    lidar_layer: float = 0.0
    lidar_layer_bias: float = 0.0
    lidar_layer_slope: float = 0.0
    stereo_sigma_d: float = 1.078
    stereo_conf_min: float = 0.05
    # log-linear stereo terms (module docstring; defaults: off, sigma_d0 / confidence)
    stereo_conf_pow: float = 1.0
    stereo_hole: float = 0.0
    stereo_range: float = 0.0
    stereo_holeshare: float = 0.0
    stereo_disp_pow: float = 0.0
    mono_rel: float = 0.10
    # In a fusion of two inputs or more (core.fusion.pipeline.fuse_sparse), set by `depthmarks fit-fusion
    # --frames 4` from the fused output of seeds 100-103 through the chain the full pipeline runs
    # (cli/fit_fusion.fit_fused_terms): the stereo sigma is multiplied by stereo_fuse_factor before
    # fusing (its fusion weight, learned.fit_stereo_fuse_factor: least fused RMSE), and the fused sigma
    # is fused_scale * sqrt(sigma^2 + (fused_edge * 9x9 range of the fused depth)^2)
    # (learned.fit_fused_scale: shares farthest inside the target bands; fused_edge 0 in the sim fit)
    stereo_fuse_factor: float = STEREO_FUSE_FACTOR_SIM
    fused_edge: float = FUSED_EDGE_SIM
    fused_scale: float = FUSED_SCALE_SIM
    # calibration: every sigma is multiplied by this so that 68.3% of the fitting errors fall within
    # 1 sigma (the NLL fit alone is inflated by heavy-tailed errors at depth edges)
    sigma_scale: float = 0.0778

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'SigmaModel':
        """A model from saved parameters; a file written before the fused terms (no ``fused_edge``,
        ``stereo_fuse_factor``, ``fused_scale``) has none: 0, 1, 1, not the built-in model's values; one
        written before the layer term (no ``lidar_layer``...) has it off (0). A parameter name this code
        does not know raises ValueError (a newer model's term would otherwise be dropped silently)."""
        unknown = sorted(k for k in d if k not in cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)} (a model from a newer version of "
                             'depthmarks_ros? this code would leave those terms out)')
        return cls(**{'fused_edge': 0.0, 'stereo_fuse_factor': 1.0, 'fused_scale': 1.0,
                      **{k: float(v) for k, v in d.items()}})


def local_range(depth: np.ndarray, window: int = 9) -> np.ndarray:
    """max - min of valid depth in a window around each pixel (0 where the window is empty)."""
    import cv2
    k = np.ones((window, window), np.uint8)
    hi = cv2.dilate(np.nan_to_num(depth, nan=0.0).astype(np.float32), k)
    lo = cv2.erode(np.nan_to_num(depth, nan=np.float32(1e6)).astype(np.float32), k)
    return np.where(hi > 0, np.maximum(hi - np.minimum(lo, hi), 0), 0).astype(np.float32)


# The sigma model, written once with named parameters (the SigmaModel field names). Plain arithmetic
# (``** 0.5``, no np./torch. calls), so the same expressions run on numpy arrays in the node and the
# batch commands and on torch tensors in the NLL fit (core/fusion/learned.py).

RESID_FLOOR = 0.005      # m: the interpolation residual's floor in the k term
RESID_WINDOW = 15        # px: window of interpolation_residual's local mean
RESID_MAX_GAP = 12       # px: neighbours farther apart along the row do not predict a return
LAYER_ROWS, LAYER_COLS = 5, 9   # px: layer_gap's window (the HDL-64E's scan lines are ~5 px apart on KITTI)
LAYER_REL = 10.0         # the layer probability's feature: (1 + LAYER_REL * G / z)


def _off(v) -> bool:
    """A term's parameter that is a plain 0 (not a tensor being fitted): the term is skipped."""
    return isinstance(v, (int, float)) and v == 0


def lidar_sigma_expr(z, dist_px, edge_range, resid=0.0, gap=0.0, layer=0.0, *, lidar_s0, lidar_a, lidar_b, lidar_c,
                     lidar_k=0.0, lidar_base_pow=1.0, lidar_gap_pow=0.0, lidar_layer=0.0, lidar_layer_bias=0.0,
                     lidar_layer_slope=0.0, sigma_scale=1.0, **_):
    """sigma_scale * sqrt(S^2 + P (g G)^2), S = sqrt(s0^2 + (a d z)^2 + (b z)^2 + (c r)^2 + (k (res + floor)
    (1 + d))^2)^p * (1 + gap)^q, P = 1 / (1 + e^-w0 (1 + 10 G / z)^-w1) (module docstring; ``gap``:
    :func:`row_gap`, ``layer`` G: :func:`layer_gap`)."""
    # terms whose coefficient is a plain 0 are left out (the KITTI model: a, b, c; the sim one: k, q, g)
    base2 = lidar_s0 ** 2
    for coef, term in ((lidar_a, lambda: dist_px * z), (lidar_b, lambda: z), (lidar_c, lambda: edge_range),
                       (lidar_k, lambda: (resid + RESID_FLOOR) * (1 + dist_px))):
        if not _off(coef):
            base2 = base2 + (coef * term()) ** 2
    s = base2 ** (0.5 * lidar_base_pow)                       # sqrt(...) ^ p
    if not _off(lidar_gap_pow):
        s = s * (1 + gap) ** lidar_gap_pow
    if not _off(lidar_layer):
        s = (s * s + layer_probability(z, layer, lidar_layer_bias, lidar_layer_slope) * (lidar_layer * layer) ** 2) ** 0.5
    return sigma_scale * s


def layer_probability(z, layer, bias, slope):
    """P = 1 / (1 + e^-w0 (1 + 10 G / z)^-w1), the layer term's probability (w0 ``bias``, w1 ``slope``;
    the fit keeps w1 in [0, learned.LAYER_SLOPE_MAX]: P does not fall as the gap grows). Plain
    arithmetic (numpy or torch); z <= 0 is no depth (lidar_sigma gives NaN there)."""
    return 1 / (1 + _E ** -bias * (1 + LAYER_REL * layer / z) ** -slope)


def layer_gap(sparse: np.ndarray, dense: np.ndarray, rows: int = LAYER_ROWS, cols: int = LAYER_COLS) -> np.ndarray:
    """(H, W) float32: the largest |measured return - completed depth| over the returns of ``sparse`` in a
    ``rows`` x ``cols`` window around each pixel (max(farthest - z, z - nearest), 0 where none): how far
    the other depth layer lies when a completed pixel sits among returns of two surfaces (a depth edge,
    a return seen past a nearer edge). Two grey-level morphology passes."""
    import cv2
    z = np.asarray(dense, np.float32)
    out = np.zeros(z.shape, np.float32)
    band = np.flatnonzero(np.isfinite(z).any(axis=1))       # the rows the completion reached
    if band.size == 0:
        return out
    r0, r1 = int(band[0]), int(band[-1]) + 1
    m0, m1 = max(r0 - rows // 2, 0), min(r1 + rows // 2, z.shape[0])    # the window's reach beyond them
    k = np.ones((rows, cols), np.uint8)
    sp = np.asarray(sparse[m0:m1], np.float32)
    ok = measured(sp)                     # no return (NaN, <= 0.1 m): 0 for the farthest, 1e6 for the nearest
    hi = cv2.dilate(np.where(ok, sp, np.float32(0)), k)[r0 - m0:r1 - m0]
    lo = cv2.erode(np.where(ok, sp, np.float32(1e6)), k)[r0 - m0:r1 - m0]
    zb = z[r0:r1]
    g = out[r0:r1]
    # no return in the window: hi 0, lo 1e6, both differences negative; NaN (no completed depth): fmax -> 0
    np.subtract(hi, zb, out=g)
    np.maximum(g, np.subtract(zb, lo, out=hi), out=g)
    np.fmax(g, np.float32(0), out=g)
    return out


def row_gap(sparse: np.ndarray) -> np.ndarray:
    """(H, W) float32: |z_left - z_right| of the nearest measured returns left and right of each pixel
    on its image row (at a measured pixel both are the pixel itself: 0; 0 where a side has none).
    Where the two disagree, a completed pixel between them may belong to either surface (a depth edge
    or a return seen past a nearer surface): on real KITTI it is the feature that predicts the hold-out
    errors of metres (docs/depth_fusion.md)."""
    h, w = sparse.shape
    flat = np.flatnonzero(measured(sparse))
    if flat.size == 0:
        return np.zeros((h, w), np.float32)
    # the gap is constant between two consecutive returns of a row, 0 at a return and where a side has
    # none: one value per run of pixels, laid out with np.repeat (no per-pixel neighbour search; the same
    # values as |left - right| of stereo.fill.row_neighbours, ~5x faster at KITTI size; a test compares them)
    z = np.asarray(sparse, np.float32).ravel()[flat]
    between = np.where(flat[1:] // w == flat[:-1] // w, np.abs(z[1:] - z[:-1]), np.float32(0))
    values = np.zeros(2 * flat.size + 1, np.float32)      # [before the first, return, run, return, run, ...]
    values[2:-1:2] = between
    lengths = np.empty(2 * flat.size + 1, np.int64)
    lengths[0] = flat[0]
    lengths[1::2] = 1
    lengths[2:-1:2] = np.diff(flat) - 1
    lengths[-1] = h * w - 1 - flat[-1]
    return np.repeat(values, lengths).reshape(h, w)


def return_residuals(sparse: np.ndarray, max_gap: int = RESID_MAX_GAP):
    """(flat indices into ``sparse``, float32 residuals) of the measured returns that have a measured neighbour
    on each side along their row within ``max_gap`` px in all: |z_i - the linear interpolation of those two
    neighbours|, capped at 5 m (a leave-one-out check of scan-line interpolation; :func:`interpolation_residual`
    averages it). Indices in row-major order."""
    w = sparse.shape[1]
    flat = np.flatnonzero(measured(sparse))
    if flat.size < 3:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    z = sparse.ravel()[flat]
    row = flat // w
    i = np.nonzero((row[2:] == row[:-2]) & (flat[2:] - flat[:-2] <= max_gap))[0] + 1
    t = ((flat[i] - flat[i - 1]) / (flat[i + 1] - flat[i - 1])).astype(np.float32)
    res = np.minimum(np.abs(z[i] - (z[i - 1] + (z[i + 1] - z[i - 1]) * t)), np.float32(5.0)).astype(np.float32)
    return flat[i], res


def interpolation_residual(sparse: np.ndarray, window: int = RESID_WINDOW) -> np.ndarray:
    """(H, W) float32: around each pixel (``window`` x ``window``), the mean |z_i - linear
    interpolation of its two neighbours along the row| over the measured returns that have both
    neighbours within RESID_MAX_GAP px (a leave-one-out check of scan-line interpolation, cheap:
    one pass over the returns and two box filters). Where the window holds none, the frame's
    median; 0 when the frame has none at all."""
    import cv2
    h, w = sparse.shape
    at, res = return_residuals(sparse)
    if at.size == 0:
        return np.zeros((h, w), np.float32)
    # the box filters only on the rows the window reaches from a return (elsewhere no return: the median)
    r0, r1 = max(int(at[0] // w) - window // 2, 0), min(int(at[-1] // w) + window // 2 + 1, h)
    at = at - r0 * w
    total = np.zeros((r1 - r0) * w, np.float32)
    count = np.zeros((r1 - r0) * w, np.float32)
    total[at] = res
    count[at] = 1.0
    k = (window, window)
    total = cv2.boxFilter(total.reshape(r1 - r0, w), -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    count = cv2.boxFilter(count.reshape(r1 - r0, w), -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    out = np.full((h, w), np.float32(np.median(res)), np.float32)
    np.divide(total, count, out=out[r0:r1], where=count > 0.5)
    return out


STEREO_RANGE_WINDOW = 5      # px: window of the disparity range feature
STEREO_HOLESHARE_WINDOW = 15  # px: window of the invalid-pixel share feature
STEREO_FEATURES = ('hole', 'range', 'holeshare', 'disparity')
_E = 2.718281828459045


def stereo_uses_features(m: 'SigmaModel') -> bool:
    return any((m.stereo_hole, m.stereo_range, m.stereo_holeshare, m.stereo_disp_pow))


def stereo_features(depth: np.ndarray, focal_baseline: float) -> dict:
    """Features of a stereo depth map (H, W, NaN = no match) that flag gross mismatches, each (H, W)
    float32, computed from the map alone (the fusion node has nothing else):

    * ``hole``: log(1 + 1 / max(distance to the nearest invalid pixel, 1)) (L2 distance transform):
      matches at the border of a hole (speckles removed, occlusions) are the unreliable ones;
    * ``range``: log(1 + min(max - min of the disparity in 5x5, 50)): depth edges;
    * ``holeshare``: share of invalid pixels in a 15x15 window: islands among holes;
    * ``disparity``: max(f B / Z, 1) px (its power enters sigma_d).
    """
    import cv2
    z = np.asarray(depth, np.float32)
    valid = np.isfinite(z) & (z > 0)
    disp = np.zeros(z.shape, np.float32)
    np.divide(np.float32(focal_baseline), z, out=disp, where=valid)
    dist = cv2.distanceTransform(valid.astype(np.uint8), cv2.DIST_L2, 3)
    hole = np.log1p(1.0 / np.maximum(dist, 1.0)).astype(np.float32)
    rng = np.log1p(np.minimum(local_range(np.where(valid, disp, np.float32(np.nan)), STEREO_RANGE_WINDOW),
                              50)).astype(np.float32)
    share = 1.0 - cv2.boxFilter(valid.astype(np.float32), -1, (STEREO_HOLESHARE_WINDOW,) * 2)
    return {'hole': hole, 'range': rng, 'holeshare': share.astype(np.float32), 'disparity': np.maximum(disp, 1.0)}


def stereo_sigma_expr(z, clamped_confidence, focal_baseline, hole=0.0, rng=0.0, holeshare=0.0, disparity=1.0, *,
                      stereo_sigma_d, stereo_conf_pow=1.0, stereo_hole=0.0, stereo_range=0.0,
                      stereo_holeshare=0.0, stereo_disp_pow=0.0, sigma_scale=1.0, **_):
    """sigma_scale * Z^2 / (f B) * sigma_d0 / confidence^p * e^(w_h hole + w_r range + w_s holeshare)
    * disparity^q; ``clamped_confidence`` >= stereo_conf_min (module docstring)."""
    sigma_d = (stereo_sigma_d * clamped_confidence ** -stereo_conf_pow
               * _E ** (stereo_hole * hole + stereo_range * rng + stereo_holeshare * holeshare)
               * disparity ** stereo_disp_pow)
    return sigma_scale * depth_sigma_from_disparity(z, focal_baseline, sigma_d)


def mono_sigma_expr(z, *, mono_rel, sigma_scale=1.0, **_):
    return sigma_scale * mono_rel * z


def fused_sigma_expr(sigma, fused_range, *, fused_edge=0.0, fused_scale=1.0, **_):
    """fused_scale * sqrt(sigma^2 + (fused_edge * R9)^2): the fused sigma widened by the fused depth's
    9x9 range, then scaled."""
    return fused_scale * (sigma ** 2 + (fused_edge * fused_range) ** 2) ** 0.5


def fused_edge_sigma(depth: np.ndarray, sigma: np.ndarray, m: 'SigmaModel') -> np.ndarray:
    """The fused sigma with the fused-edge term and scale (module docstring); ``sigma`` itself when
    m.fused_edge is 0 and m.fused_scale 1. NaN stays NaN."""
    if m.fused_edge == 0:
        return sigma if m.fused_scale == 1 else (sigma * np.float32(m.fused_scale)).astype(np.float32)
    return fused_sigma_expr(sigma, local_range(depth, FUSED_WINDOW), **m.to_dict()).astype(np.float32)


def lidar_sigma(depth: np.ndarray, dist_px: np.ndarray, m: SigmaModel,
                edge_range: np.ndarray = None, resid: np.ndarray = None, gap: np.ndarray = None,
                layer: np.ndarray = None) -> np.ndarray:
    """``resid``: interpolation_residual of the sparse input (needed when m.lidar_k > 0); ``gap``:
    row_gap of the sparse input (needed when m.lidar_gap_pow != 0); ``layer``: layer_gap of the sparse
    input and ``depth`` (needed when m.lidar_layer > 0). :func:`lidar_sigma_of_input` computes them."""
    if resid is None and m.lidar_k > 0:
        raise ValueError('this sigma model (lidar_k > 0) needs the interpolation residual of the LiDAR input')
    if gap is None and m.lidar_gap_pow != 0:
        raise ValueError('this sigma model (lidar_gap_pow != 0) needs the row gap of the LiDAR input')
    if layer is None and m.lidar_layer != 0:
        raise ValueError('this sigma model (lidar_layer != 0) needs the layer gap of the LiDAR input')
    z = np.asarray(depth, np.float32)
    out = np.full(z.shape, np.nan, np.float32)
    band = np.flatnonzero(np.isfinite(z).any(axis=1))        # only the rows with depth (KITTI: ~2/3)
    if band.size == 0:
        return out
    r = slice(int(band[0]), int(band[-1]) + 1)

    def rows(a):
        return a[r] if isinstance(a, np.ndarray) and a.ndim == 2 else a

    # the 9x9 range only where its term counts (the KITTI model leaves it out)
    rng = 0.0 if m.lidar_c == 0 else local_range(depth) if edge_range is None else edge_range
    zb = z[r]
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        s = lidar_sigma_expr(zb, rows(dist_px), rows(rng), 0.0 if resid is None else rows(resid),
                             0.0 if gap is None else rows(gap), 0.0 if layer is None else rows(layer), **m.to_dict())
    # depth <= 0 is no depth: NaN (as NaN depth), not the layer term's 0 / 0
    out[r] = np.where(zb > 0, s, np.float32(np.nan))
    return out


def lidar_features(sparse: np.ndarray, dense: np.ndarray, m: Optional[SigmaModel] = None,
                   dist_px: Optional[np.ndarray] = None) -> dict:
    """The per-pixel features of the completed LiDAR depth's sigma, from the sparse input (returns:
    completion.measured) and its completion ``dense``: 'dist' (px to the nearest return), 'resid'
    (:func:`interpolation_residual`), 'gap' (:func:`row_gap`), 'layer' (:func:`layer_gap`), as
    :func:`lidar_sigma` takes them. With a model ``m`` only those its terms need (the others None);
    without, all (fitting samples). The node's chain, fit-fusion's samples and the benchmarks all take
    them from here."""
    from depthmarks_ros.core.fusion.completion import distance_to_measurement
    need = {'resid': m is None or m.lidar_k > 0, 'gap': m is None or m.lidar_gap_pow != 0,
            'layer': m is None or m.lidar_layer != 0}
    return {'dist': distance_to_measurement(sparse) if dist_px is None else dist_px,
            'resid': interpolation_residual(sparse) if need['resid'] else None,
            'gap': row_gap(sparse) if need['gap'] else None,
            'layer': layer_gap(sparse, dense) if need['layer'] else None}


def lidar_sigma_of_input(sparse: np.ndarray, dense: np.ndarray, m: SigmaModel,
                         dist_px: Optional[np.ndarray] = None) -> np.ndarray:
    """The completed LiDAR depth's sigma from the sparse input it was completed from: the features the
    model's terms need (:func:`lidar_features`; each only when its term is on), then :func:`lidar_sigma`.
    The node's chain (core.fusion.pipeline) and the benchmarks compute it here."""
    f = lidar_features(sparse, dense, m, dist_px)
    return lidar_sigma(dense, f['dist'], m, resid=f['resid'], gap=f['gap'], layer=f['layer'])


def stereo_sigma(depth: np.ndarray, confidence: np.ndarray, focal: float, baseline: float,
                 m: SigmaModel) -> np.ndarray:
    z = depth.astype(np.float32)
    conf = np.maximum(np.nan_to_num(confidence, nan=0.0), np.float32(m.stereo_conf_min))
    fb = np.float32(focal * baseline)
    f = {}
    if stereo_uses_features(m):
        g = stereo_features(z, fb)
        f = {'hole': g['hole'], 'rng': g['range'], 'holeshare': g['holeshare'], 'disparity': g['disparity']}
    s = stereo_sigma_expr(z, conf, fb, **f, **m.to_dict())
    return np.where(np.isfinite(z), s, np.nan).astype(np.float32)


def mono_sigma(depth: np.ndarray, m: SigmaModel) -> np.ndarray:
    z = depth.astype(np.float32)
    return np.where(np.isfinite(z), mono_sigma_expr(z, **m.to_dict()), np.nan).astype(np.float32)
