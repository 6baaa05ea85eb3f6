"""Head pose from 2D landmarks and a 3D face model, with a 6x6 covariance (ROS-free).

The pose (rotation vector r, translation t of the head in the camera optical frame) minimises the
reprojection error of the 68-point model (``data/face_model_68.npy``, fitted by ``depthmarks fit-face`` on AFLW2000-3D)
by solvePnP (EPnP start, Levenberg-Marquardt refinement), then Gauss-Newton steps weighted by the
landmark covariances when they are given (test/test_face_core.py checks the covariance against a
Monte-Carlo spread). Its
covariance is the Gauss-Newton one, (J^T W J)^-1 with J the Jacobian of the projections w.r.t.
(r, t) and W the block-diagonal inverse landmark covariances.
Angles: yaw, pitch, roll in degrees in the AFLW2000-3D / Biwi convention (see
:func:`rotation_from_angles`); the rotation itself (rvec, :attr:`HeadPose.rotation`) is head ->
camera optical frame, the head frame's axes being x towards image-right, y down, z away from the
camera for a face looking straight at the camera (it looks along -z).
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

_MODELS: dict = {}            # realpath -> (file version, content digest, model, settled): one entry per file
# a file whose newest timestamp is this close to (or after) the read may still be rewritten within the
# same timestamp tick, its stat unchanged (git's "racily clean" index entries): it is hashed again
_SETTLE_NS = 2_000_000_000
_RESOLVED: dict = {}          # the path asked for -> its realpath (the key of _MODELS)
_WEIGHTED_STEPS = 5
# the shipped fitted artefacts (pipeline.DATA_DIR is this one)
DATA_DIR = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..', 'data'))


def model_digest(model: np.ndarray) -> str:
    """A short hash of a 3D mean face's values (fit-face's cached records name the model they were
    computed on with it)."""
    return hashlib.sha1(np.ascontiguousarray(model, np.float64).tobytes()).hexdigest()[:12]


def face_model_68(data_dir: Optional[str] = None) -> np.ndarray:
    """(68, 3) the 3D mean face (metres) of folder ``data_dir``'s face_model_68.npy (a folder
    ``depthmarks fit-face -o DIR`` wrote; None or '' = the shipped one), parsed once per content. Every
    user of a fitted folder (head pose, the sigma model's reprojection feature, the self-occlusion
    triangulation, the node's markers) takes the folder's own, so a refit model is never mixed with
    the shipped one. A file rewritten since (fit-face's model part) is read again: the cache holds one
    entry per file with a hash of its bytes (1.7 KB), hashed once per file version (device, inode, size,
    mtime, ctime: a call for an unchanged file is one stat). A file whose timestamps were within
    ``_SETTLE_NS`` of the last read is read and hashed on every call until they are not, as a rewrite of
    the same size within the file system's time resolution leaves its stat unchanged. A missing, empty, truncated, pickled,
    wrongly shaped, integer-typed or .npz file is a BackendError naming it and a runnable fix (what the
    node and ``depthmarks face`` catch)."""
    from depthmarks_ros.core.face.backends import BackendError
    name = os.path.join(data_dir or DATA_DIR, 'face_model_68.npy')
    hit = _MODELS.get(_RESOLVED.get(name))
    if hit is not None and hit[3]:              # stat follows links: the same file in the same version
        try:
            if _file_version(name)[0] == hit[0]:
                return hit[2]
        except OSError:
            pass
    path = _RESOLVED[name] = os.path.realpath(name)
    hit = _MODELS.get(path)
    try:
        version, newest_ns = _file_version(path)
        checked_ns = time.time_ns()             # before the read: a rewrite after it is in a later tick
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as exc:
        raise BackendError(f'{path}: unreadable 3D mean face ({exc})') from exc
    digest = hashlib.sha1(raw).hexdigest()
    settled = checked_ns - newest_ns > _SETTLE_NS
    if hit is not None and hit[1] == digest:
        _MODELS[path] = (version, digest, hit[2], settled)
        return hit[2]
    shipped = path == os.path.realpath(os.path.join(DATA_DIR, 'face_model_68.npy'))
    fix = ('reinstall the package' if shipped
           else 'refit with depthmarks fit-face --data DATA -o <folder> --parts model')
    try:
        model = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise BackendError(f'{path}: not a readable .npy 3D mean face ({type(exc).__name__}: {exc}); '
                           f'{fix}') from exc
    if not isinstance(model, np.ndarray):   # an .npz under the .npy name loads as an NpzFile
        model.close()
        raise BackendError(f'{path}: not a .npy 3D mean face (an .npz archive?); {fix}')
    if (model.shape != (68, 3) or not np.issubdtype(model.dtype, np.floating)
            or not np.all(np.isfinite(model))):
        raise BackendError(f'{path}: not a (68, 3) finite float 3D mean face (shape {model.shape}, '
                           f'dtype {model.dtype}); {fix}')
    model.setflags(write=False)
    _MODELS[path] = (version, digest, model, settled)
    return model


def _file_version(path: str):
    """((device, inode, size, mtime, ctime), the newest of the two timestamps in ns) of ``path``."""
    st = os.stat(path)
    return ((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns),
            max(st.st_mtime_ns, st.st_ctime_ns))


def folder_face_model(data_dir: Optional[str]) -> np.ndarray:
    """The 3D mean face of folder ``data_dir`` where it holds face_model_68.npy, else the shipped one (as
    FaceLandmarker falls back for every missing artefact; a folder fit-face wrote always holds one)."""
    has = data_dir and os.path.isfile(os.path.join(data_dir, 'face_model_68.npy'))
    return face_model_68(data_dir if has else None)


@dataclass
class HeadPose:
    rvec: np.ndarray          # (3,) rotation vector, head -> camera
    tvec: np.ndarray          # (3,) metres, head origin in the camera optical frame
    covariance: np.ndarray    # (6, 6) over (rvec, tvec)
    yaw: float
    pitch: float
    roll: float
    reprojection_rms: float   # px

    @property
    def rotation(self) -> np.ndarray:
        import cv2
        return cv2.Rodrigues(self.rvec)[0]


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head -> camera-optical rotation from (yaw, pitch, roll) degrees in the AFLW2000-3D / Biwi
    convention: yaw > 0 turns the face towards image-left, pitch > 0 looks up, roll > 0 turns the
    face clockwise in the image; zero = looking straight at the camera, upright.

    R = Rx(-pitch) Ry(yaw) Rz(roll) about the optical axes (x right, y down, z ahead): roll is
    applied first, then yaw, then pitch (extrinsic z-y-x, i.e. intrinsic x-y'-z''). Checked against
    AFLW2000-3D's Pose_Para on its 3D landmarks (test/test_face_core.py uses a synthetic head).
    """
    y, p, r = np.radians([yaw, pitch, roll])
    return _rx(-p) @ _ry(y) @ _rz(r)


def angles_from_rotation(R: np.ndarray):
    """(yaw, pitch, roll) degrees of a head -> camera-optical rotation (inverse of
    :func:`rotation_from_angles`; yaw in [-90, 90])."""
    R = np.asarray(R, np.float64)
    yaw = np.degrees(np.arcsin(np.clip(R[0, 2], -1.0, 1.0)))
    pitch = -np.degrees(np.arctan2(-R[1, 2], R[2, 2]))
    roll = np.degrees(np.arctan2(-R[0, 1], R[0, 0]))
    return float(yaw), float(pitch), float(roll)


def wrap_deg(d):
    """Angle differences (degrees, scalar or array) wrapped to [-180, 180): the one wrap of the face code
    (the angle Jacobian, angle errors of the fits, benchmarks and studies)."""
    return (d + 180.0) % 360.0 - 180.0


def angles_jacobian(rvec: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d(yaw, pitch, roll) [deg] / d(rvec) [rad] (3x3, central differences)."""
    import cv2
    J = np.zeros((3, 3))
    base = np.asarray(rvec, np.float64).ravel()
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        ap = np.array(angles_from_rotation(cv2.Rodrigues(base + d)[0]))
        am = np.array(angles_from_rotation(cv2.Rodrigues(base - d)[0]))
        diff = wrap_deg(ap - am)      # roll near +-180
        J[:, k] = diff / (2 * eps)
    return J


def scale_angle_covariance(hp: 'HeadPose', scales) -> np.ndarray:
    """The 6x6 covariance with the standard deviations of (yaw, pitch, roll) multiplied by
    ``scales`` (3,) and the translation part by their geometric mean: T cov T^T with T the block
    diagonal of J^-1 diag(scales) J (J = :func:`angles_jacobian`) and that mean times I; the angle
    correlations stay. Near gimbal lock (J ill-conditioned) every part takes the mean factor."""
    s = np.asarray(scales, np.float64)
    g = float(np.exp(np.mean(np.log(s))))
    J = angles_jacobian(hp.rvec)
    T = np.eye(6) * g
    if np.all(np.isfinite(J)) and np.linalg.cond(J) < 1e6:
        T[:3, :3] = np.linalg.solve(J, np.diag(s) @ J)
    return T @ hp.covariance @ T.T


def _inv2x2(c: np.ndarray) -> np.ndarray:
    """Inverse of (N, 2, 2) matrices in closed form (numpy's batched LAPACK inverse took ~20 ms per
    call on the loaded shared machine, its BLAS threads waiting for cores)."""
    det = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] * c[:, 1, 0]
    out = np.empty_like(c)
    out[:, 0, 0], out[:, 1, 1] = c[:, 1, 1], c[:, 0, 0]
    out[:, 0, 1], out[:, 1, 0] = -c[:, 0, 1], -c[:, 1, 0]
    return out / det[:, None, None]


def solve_head_pose(landmarks68: np.ndarray, K: np.ndarray, cov68: Optional[np.ndarray] = None,
                    model: Optional[np.ndarray] = None) -> Optional[HeadPose]:
    """Pose from (68, 2) pixels (rectified) and the camera matrix K (3x3); None if it fails. ``model``:
    the 3D mean face (:func:`face_model_68`; None = the shipped one)."""
    import cv2
    model = face_model_68() if model is None else model
    img = np.asarray(landmarks68, np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(img), axis=1)
    if ok.sum() < 6:
        return None
    obj, img = model[ok], img[ok]
    dist = np.zeros(4)
    success, rvec, tvec = cv2.solvePnP(obj, img, K, dist, flags=cv2.SOLVEPNP_EPNP)
    if not success or tvec[2, 0] <= 0:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    W = None
    if cov68 is not None:
        W = _inv2x2(np.asarray(cov68, np.float64)[ok] + 1e-9 * np.eye(2))   # (N, 2, 2) blocks
        # weighted Gauss-Newton from the unweighted LM solution: the estimate the covariance below
        # describes (unweighted, the jaw's larger errors widen the spread beyond (J^T W J)^-1)
        for _ in range(_WEIGHTED_STEPS):
            proj, jac = cv2.projectPoints(obj, rvec, tvec, K, dist)
            Jp = jac[:, :6].reshape(-1, 2, 6)
            r = img - proj.reshape(-1, 2)
            try:
                step = np.linalg.solve(np.einsum('nki,nkl,nlj->ij', Jp, W, Jp), np.einsum('nki,nkl,nl->i', Jp, W, r))
            except np.linalg.LinAlgError:
                break
            rvec, tvec = rvec + step[:3, None], tvec + step[3:, None]
            if np.abs(step).max() < 1e-10:
                break
    proj, jac = cv2.projectPoints(obj, rvec, tvec, K, dist)
    resid = proj.reshape(-1, 2) - img
    Jp = jac[:, :6].reshape(-1, 2, 6)   # d(u, v) / d(rvec, tvec) per landmark
    if W is None:
        s2 = max(float(np.mean(resid ** 2)), 1e-6)
        W = np.broadcast_to(np.eye(2) / s2, (len(Jp), 2, 2))
    try:
        cov6 = np.linalg.inv(np.einsum('nki,nkl,nlj->ij', Jp, W, Jp))   # (J^T W J)^-1, W block-diagonal
    except np.linalg.LinAlgError:
        cov6 = np.full((6, 6), np.nan)
    R = cv2.Rodrigues(rvec)[0]
    yaw, pitch, roll = angles_from_rotation(R)
    return HeadPose(rvec.ravel(), tvec.ravel(), cov6, yaw, pitch, roll,
                    float(np.sqrt(np.mean(np.sum(resid ** 2, axis=1)))))


# face_fit.json's format (core/face/pipeline.py load_fit refuses any other): 2 = per-path angle factors
# (head_pose.angle_scales / angle_scale_yaw_slopes / angle_scale_yaw_range, the pooled factors under POOLED_KEY)
FIT_VERSION = 2
POOLED_KEY = 'pooled'         # the factors for a path without its own: fitted on every backend's fit faces
MIN_FACES_FOR_SLOPE = 100     # fewer fit faces: one factor per angle, no |yaw| slope


def angle_factors(scales, slopes, yaw_deg: float, yaw_range=(0.0, 0.0)) -> np.ndarray:
    """(3,) factors on the (yaw, pitch, roll) sigmas of a pose with this yaw: scales x
    exp(slopes |yaw| / 90), |yaw| clamped to ``yaw_range`` (degrees: the |yaw| range of the fit faces,
    face_fit.json head_pose.angle_scale_yaw_range), so a slope is never extrapolated beyond the faces
    it was fitted on (the default (0, 0): the factor at |yaw| 0). A non-finite yaw (no yaw known) takes
    the larger factor of the range's two ends per angle (its upper end where the slope is >= 0)."""
    lo, hi = float(yaw_range[0]), float(yaw_range[1])
    scales, slopes = np.asarray(scales, float), np.asarray(slopes, float)
    if not np.isfinite(yaw_deg):
        return scales * np.exp(np.maximum(slopes * lo, slopes * max(hi, lo)) / 90.0)
    y = min(max(abs(float(yaw_deg)), lo), max(hi, lo))
    return scales * np.exp(slopes * y / 90.0)


def fit_angle_factors(z: np.ndarray, yaw_deg: np.ndarray, share: float = 0.6827, weights=None, slope: bool = True):
    """(scales (3,), slopes (3,), yaw range (2,)) of :func:`angle_factors` from the |angle error| / sigma
    ``z`` (N, 3) of fit faces and their estimated yaw (N,): per angle, the linear quantile regression of
    log z on |yaw| / 90 at ``share`` (pinball loss, faces weighted by ``weights``; slope on a 0.01 grid in
    [-4, 4], intercept exact for each), so that ``share`` of the errors lie within 1 sigma at every yaw,
    not only on average (the Gauss-Newton covariance under-states a turned head's angle errors and
    over-states a frontal one's). ``slope=False`` (or fewer than MIN_FACES_FOR_SLOPE faces): one factor
    per angle. The range is the fit faces' |yaw| range (min, max, degrees): angle_factors clamps to it."""
    u = np.abs(np.asarray(yaw_deg, float)) / 90.0
    w = np.ones(len(u)) if weights is None else np.asarray(weights, float)
    grid = np.arange(-4.0, 4.0001, 0.01) if slope and len(u) >= MIN_FACES_FOR_SLOPE else np.zeros(1)
    scales, slopes = [], []
    for j in range(3):
        lz = np.log(np.maximum(z[:, j], 1e-12))
        best = None
        for b1 in grid:
            r = lz - b1 * u
            b0 = _weighted_quantile(r, w, share)
            d = r - b0
            loss = float(np.sum(w * np.where(d >= 0, share * d, (share - 1.0) * d)))
            if best is None or loss < best[0] - 1e-12:
                best = (loss, b0, b1)
        scales.append(round(float(np.exp(best[1])), 4))
        slopes.append(round(float(best[2]), 3))
    rng = [round(float(u.min() * 90.0), 1), round(float(u.max() * 90.0), 1)] if len(u) else [0.0, 0.0]
    return scales, slopes, rng


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The smallest x with at least share q of the weight at or below it (np.quantile's 'inverted_cdf'
    for equal weights): a minimiser of the weighted pinball loss."""
    o = np.argsort(x)
    c = np.cumsum(w[o])
    return float(x[o][min(np.searchsorted(c, q * c[-1] - 1e-12), len(x) - 1)])


def pose_factors(pose_fit: dict, key: str, yaw_deg: float) -> Optional[np.ndarray]:
    """(3,) the angle factors of path ``key`` (its own, else the pooled ones) at this yaw, or None
    where face_fit.json has neither (the covariance stays unscaled)."""
    scales = pose_fit.get('angle_scales', {})
    k = key if key in scales else POOLED_KEY if POOLED_KEY in scales else None
    if k is None:
        return None
    return angle_factors(scales[k], pose_fit.get('angle_scale_yaw_slopes', {}).get(k, [0.0, 0.0, 0.0]), yaw_deg,
                         pose_fit.get('angle_scale_yaw_range', {}).get(k, (0.0, 0.0)))


def weighted_head_pose(landmarks68: np.ndarray, K: np.ndarray, cov68: Optional[np.ndarray], pose_fit: dict,
                       key: str = '', first: Optional[HeadPose] = None,
                       model: Optional[np.ndarray] = None) -> Optional[HeadPose]:
    """The face node's head pose: weighted by the landmark covariances ``cov68`` plus the 3D mean
    face's own spread (``pose_fit['model_residual_m']``, face_fit.json, projected at the face's
    distance), the angle part scaled by path ``key``'s factor per angle at the pose's |yaw|
    (:func:`pose_factors`: ``pose_fit['angle_scales'][key]``, else the pooled factors; neither:
    unscaled). ``first``: the plain solve where already made. Without ``cov68`` the plain solve.
    ``model``: the 3D mean face (:func:`face_model_68`; None = the shipped one)."""
    resid = pose_fit.get('model_residual_m')
    first = first or solve_head_pose(landmarks68, K, model=model)
    if first is None or cov68 is None:
        return first
    c = np.asarray(cov68, np.float64)
    if resid is not None:
        px = K[0, 0] / max(first.tvec[2], 1e-3) * np.asarray(resid, np.float64)   # metres -> px
        c = c + (px ** 2)[:, None, None] * np.eye(2)
    hp = solve_head_pose(landmarks68, K, c, model)
    if hp is not None:
        f = pose_factors(pose_fit, key, hp.yaw)
        if f is not None:
            hp.covariance = scale_angle_covariance(hp, f)
    return hp


def angle_z(hp: HeadPose, truth_deg) -> np.ndarray:
    """(3,) |angle error| / sigma of (yaw, pitch, roll) against ``truth_deg`` (degrees), sigma from the
    pose's 6x6 covariance."""
    J = angles_jacobian(hp.rvec)
    sd = np.sqrt(np.diag(J @ hp.covariance[:3, :3] @ J.T))
    err = wrap_deg(np.array([hp.yaw, hp.pitch, hp.roll]) - np.asarray(truth_deg, float))
    return np.abs(err) / sd
