"""Pinhole and stereo camera models (ROS-free).

Conventions follow sensor_msgs/CameraInfo and REP-103 optical frames: x right, y down,
z forward, metres. A :class:`PinholeCamera` holds the intrinsic matrix ``K`` (3x3), the
distortion coefficients ``D`` (plumb_bob / rational_polynomial / equidistant), the
rectification rotation ``R`` (3x3) and the projection matrix ``P`` (3x4) of the rectified
image. Points given to :meth:`PinholeCamera.project` are in the camera's (rectified) optical
frame; ``P`` maps them to rectified pixels. For a stereo pair the right camera's
``P[0, 3] = Tx = -fx * baseline``.

Shapes are written ``(N, 3)`` etc. in the docstrings; all functions are vectorised.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant', '')


class CalibrationError(ValueError):
    """A calibration is missing, malformed or contradictory."""


def _as_matrix(value, shape, name) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != shape[0] * shape[1]:
        raise CalibrationError(f'{name} must have {shape[0] * shape[1]} values, got {arr.size}')
    return arr.reshape(shape).copy()


def assumed_K(width: int, height: int, focal: Optional[float] = None) -> np.ndarray:
    """(3, 3) the pinhole camera assumed for an image without calibration: focal length ``focal`` px
    (None or 0: the larger image side, ~53 deg across that side), principal point at the image centre
    ((w - 1) / 2, (h - 1) / 2, pixel centres at integers). The one default where the face pipeline has
    no camera (its sigma features' plain pose solve, the hybrid's quick yaw) and of the `face`
    command's head pose (``--focal``); a node always has its camera_info. The one builder of a centred
    pinhole K: video's uncalibrated_camera (focal from a field of view) and stereo's
    cameras_from_focal_baseline (a given focal) pass their own focal."""
    f = float(focal) if focal else float(max(width, height))
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


@dataclass
class PinholeCamera:
    """A calibrated pinhole camera (the data of a CameraInfo message)."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    P: Optional[np.ndarray] = None
    distortion_model: str = 'plumb_bob'
    frame_id: str = ''
    name: str = 'camera'

    def __post_init__(self):
        self.K = _as_matrix(self.K, (3, 3), 'camera_matrix (K)')
        self.R = _as_matrix(self.R, (3, 3), 'rectification_matrix (R)')
        self.D = np.asarray(self.D, dtype=np.float64).ravel().copy()
        if self.P is None:
            self.P = np.hstack([self.K, np.zeros((3, 1))])
        self.P = _as_matrix(self.P, (3, 4), 'projection_matrix (P)')
        self.width, self.height = int(self.width), int(self.height)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`CalibrationError` if the model cannot be used."""
        if self.width <= 0 or self.height <= 0:
            raise CalibrationError(f'image size must be positive, got {self.width}x{self.height}')
        for name, m in (('K', self.K), ('R', self.R), ('P', self.P), ('D', self.D)):
            if not np.all(np.isfinite(m)):
                raise CalibrationError(f'{name} holds NaN or Inf')
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0:
            raise CalibrationError(f'focal lengths must be positive (K fx={self.K[0, 0]}, fy={self.K[1, 1]})')
        if self.P[0, 0] <= 0 or self.P[1, 1] <= 0:
            raise CalibrationError(f'focal lengths must be positive (P fx={self.P[0, 0]}, fy={self.P[1, 1]})')
        if self.distortion_model not in DISTORTION_MODELS:
            raise CalibrationError(f'unknown distortion_model {self.distortion_model!r}; '
                                   f'expected one of {DISTORTION_MODELS[:-1]}')
        if self.distortion_model == 'equidistant' and self.D.size not in (0, 4):
            raise CalibrationError(f'equidistant distortion needs 4 coefficients, got {self.D.size}')

    # --------------------------------------------------------------- accessors
    @property
    def fx(self) -> float:
        return float(self.P[0, 0])

    @property
    def fy(self) -> float:
        return float(self.P[1, 1])

    @property
    def cx(self) -> float:
        return float(self.P[0, 2])

    @property
    def cy(self) -> float:
        return float(self.P[1, 2])

    @property
    def Tx(self) -> float:
        """``P[0, 3]``: ``-fx * baseline`` for the right camera of a stereo pair, else 0."""
        return float(self.P[0, 3])

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    @property
    def is_distorted(self) -> bool:
        return bool(np.any(self.D != 0))

    @property
    def is_rectified(self) -> bool:
        """True when raw images need no undistortion/rectification (D == 0, R == I, K == P[:, :3])."""
        return (not self.is_distorted and np.allclose(self.R, np.eye(3))
                and np.allclose(self.K, self.P[:, :3]))

    def intrinsics(self) -> np.ndarray:
        """The 3x3 matrix of the rectified image, ``P[:, :3]``."""
        return self.P[:, :3].copy()

    # ---------------------------------------------------------------- geometry
    def project(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Project 3D points of the rectified optical frame to rectified pixels.

        points: (N, 3) metres. Returns (uv (N, 2) float64, z (N,)). Points with z <= 0 get NaN uv.
        """
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        hom = pts @ self.P[:, :3].T + self.P[:, 3]
        z = pts[:, 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            uv = hom[:, :2] / hom[:, 2:3]
        uv[z <= 0] = np.nan
        return uv, z

    def back_project(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Rectified pixels + depth (z, metres) to 3D points of the optical frame.

        uv: (N, 2); depth: (N,). Returns (N, 3). Ignores ``Tx`` (valid for the left/mono camera).
        """
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        x = (uv[:, 0] - self.cx) * z / self.fx
        y = (uv[:, 1] - self.cy) * z / self.fy
        return np.stack([x, y, z], axis=1)

    def depth_to_points(self, depth: np.ndarray) -> np.ndarray:
        """A depth image (H, W) in metres to an organised (H, W, 3) float32 point image.

        NaN depth stays NaN.
        """
        depth = np.asarray(depth, dtype=np.float32)
        h, w = depth.shape
        u = (np.arange(w, dtype=np.float32) - self.cx) / self.fx
        v = (np.arange(h, dtype=np.float32) - self.cy) / self.fy
        out = np.empty((h, w, 3), dtype=np.float32)
        out[..., 0] = depth * u[None, :]
        out[..., 1] = depth * v[:, None]
        out[..., 2] = depth
        return out

    def rectify_maps(self, cv2_map_type=None):
        """OpenCV remap tables from rectified pixels to raw pixels: (map1, map2)."""
        import cv2
        map_type = cv2.CV_16SC2 if cv2_map_type is None else cv2_map_type
        if self.distortion_model == 'equidistant':
            return cv2.fisheye.initUndistortRectifyMap(self.K, self.D[:4], self.R, self.P[:, :3],
                                                       self.size, map_type)
        return cv2.initUndistortRectifyMap(self.K, self.D, self.R, self.P[:, :3], self.size, map_type)

    def rectified(self) -> 'PinholeCamera':
        """The camera of the rectified image (what ``rectify_maps`` produces): K = P[:, :3], no
        distortion, R = I, the same P (so a right camera keeps its Tx), frame and name.

        This is the model of images published after rectification (stereo_image_proc's
        image_rect); ``rectified().is_rectified`` is always True.
        """
        return PinholeCamera(self.width, self.height, self.P[:, :3], np.zeros(5), np.eye(3), self.P,
                             'plumb_bob', self.frame_id, self.name)

    def calibration_key(self) -> bytes:
        """Bytes that differ whenever the raw -> rectified mapping differs (for caching maps)."""
        return b''.join([np.asarray(self.size, np.int64).tobytes(), self.distortion_model.encode(),
                         self.K.tobytes(), self.D.tobytes(), self.R.tobytes(), self.P.tobytes()])

    def rectifier(self) -> 'Rectifier':
        """A :class:`Rectifier` for raw images of this camera (maps built once, on first use)."""
        return Rectifier(self)

    def rectify_points(self, uv_raw: np.ndarray) -> np.ndarray:
        """Raw (distorted) pixels (N, 2) to rectified pixels (N, 2)."""
        import cv2
        pts = np.asarray(uv_raw, dtype=np.float64).reshape(-1, 1, 2)
        if self.distortion_model == 'equidistant':
            out = cv2.fisheye.undistortPoints(pts, self.K, self.D[:4], R=self.R, P=self.P[:, :3])
        else:
            out = cv2.undistortPoints(pts, self.K, self.D, R=self.R, P=self.P[:, :3])
        return out.reshape(-1, 2)

    def scaled(self, width: int, height: int) -> 'PinholeCamera':
        """The same camera for an image resized to (width, height)."""
        sx, sy = width / self.width, height / self.height
        S = np.diag([sx, sy, 1.0])
        return PinholeCamera(width, height, S @ self.K, self.D, self.R, S @ self.P,
                             self.distortion_model, self.frame_id, self.name)


class Rectifier:
    """Raw images of one camera -> rectified images (of ``camera.rectified()``), maps cached.

    Images of a camera that needs no rectification (``is_rectified``) are returned unchanged
    (no copy). The remap tables (CV_16SC2, fixed point) are built on the first call.
    """

    def __init__(self, camera: PinholeCamera):
        self.camera = camera
        self.key = camera.calibration_key()
        self.identity = camera.is_rectified
        self._maps = None

    def __call__(self, image: np.ndarray, interpolation: Optional[int] = None) -> np.ndarray:
        """(H, W[, C]) raw image -> the same shape rectified (bilinear unless ``interpolation``)."""
        if self.identity:
            return image
        import cv2
        if image.shape[:2] != (self.camera.height, self.camera.width):
            raise CalibrationError(f'image is {image.shape[1]}x{image.shape[0]}, the calibration is for '
                                   f'{self.camera.width}x{self.camera.height}')
        if self._maps is None:
            self._maps = self.camera.rectify_maps()
        return cv2.remap(image, self._maps[0], self._maps[1],
                         cv2.INTER_LINEAR if interpolation is None else interpolation)


@dataclass
class StereoCamera:
    """A rectified stereo pair: left and right :class:`PinholeCamera` sharing fx, fy, cy."""

    left: PinholeCamera
    right: PinholeCamera

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if self.left.size != self.right.size:
            raise CalibrationError(f'left and right image sizes differ: {self.left.size} vs {self.right.size}')
        if self.right.Tx == 0:
            raise CalibrationError('zero baseline: the right projection matrix has P[0,3] = Tx = 0 '
                                   '(expected Tx = -fx * baseline)')
        if not np.isfinite(self.right.Tx):
            raise CalibrationError(f'the right projection matrix has P[0,3] = Tx = {self.right.Tx}')
        if self.right.Tx > 0:
            raise CalibrationError(f'the right projection matrix has P[0,3] = Tx = +{self.right.Tx:g} > 0, a negative '
                                   f'baseline ({-self.right.Tx / self.right.fx:g} m): the right camera_info must have '
                                   'Tx = -fx * baseline (sign error, or left and right swapped?)')
        if not np.isclose(self.left.fx, self.right.fx, rtol=1e-6):
            raise CalibrationError(f'left/right rectified focal lengths differ: {self.left.fx} vs {self.right.fx}')

    def rectified(self) -> 'StereoCamera':
        """The pair of rectified-image cameras (``PinholeCamera.rectified`` of each side)."""
        return StereoCamera(self.left.rectified(), self.right.rectified())

    @property
    def baseline(self) -> float:
        """Metres, from the right projection matrix (Tx = -fx * B)."""
        return -self.right.Tx / self.right.fx

    @property
    def focal(self) -> float:
        return self.left.fx

    @property
    def cx_offset(self) -> float:
        """``cx_left - cx_right``: the disparity of a point at infinity."""
        return self.left.cx - self.right.cx

    @property
    def Q(self) -> np.ndarray:
        """4x4 reprojection matrix: ``[X Y Z W]^T = Q [u v d 1]^T`` (as cv2.stereoRectify; assumes fx == fy)."""
        f, B = self.focal, self.baseline
        Q = np.zeros((4, 4))
        Q[0, 0] = Q[1, 1] = 1.0
        Q[0, 3] = -self.left.cx
        Q[1, 3] = -self.left.cy
        Q[2, 3] = f
        Q[3, 2] = 1.0 / B
        Q[3, 3] = -self.cx_offset / B
        return Q

    def disparity_to_depth(self, disparity: np.ndarray) -> np.ndarray:
        """Disparity (px, float) to depth (m, float32, a new array); invalid (<= cx_offset, NaN) -> NaN.

        Three passes, one new buffer (part of the stereo node's work outside the matcher, issue
        21): without an offset, f * B / d then NaN where d was not > 0; with one, d - offset, NaN
        where not > 0, then the division in place (the NaN go in first, so it never divides by
        zero or a negative, which was several times slower)."""
        fb = np.float32(self.focal * self.baseline)
        if self.cx_offset == 0:   # most rigs: no offset to take off, so no copy to make first
            d = np.asarray(disparity)
            bad = d <= 0
            with np.errstate(divide='ignore', over='ignore', invalid='ignore'):
                z = np.divide(fb, d, dtype=np.float32)
            np.copyto(z, np.float32(np.nan), where=bad)
            return z
        d = np.subtract(disparity, np.float32(self.cx_offset), dtype=np.float32)
        np.copyto(d, np.float32(np.nan), where=d <= 0)     # NaN compares False: already invalid
        with np.errstate(over='ignore'):                     # a subnormal disparity: inf, as before
            np.divide(fb, d, out=d)
        return d

    def depth_to_disparity(self, depth: np.ndarray) -> np.ndarray:
        """Depth (m) to disparity (px, float32); invalid depth -> NaN."""
        z = np.asarray(depth, dtype=np.float32)
        with np.errstate(divide='ignore', invalid='ignore'):
            d = np.float32(self.focal * self.baseline) / z + np.float32(self.cx_offset)
        d[~(z > 0)] = np.nan
        return d

    def depth_sigma(self, depth: np.ndarray, disparity_sigma: float | np.ndarray) -> np.ndarray:
        """First-order depth standard deviation: sigma_Z = Z^2 / (f * B) * sigma_d."""
        return depth_sigma_from_disparity(np.asarray(depth, dtype=np.float32), np.float32(self.focal * self.baseline),
                                          np.asarray(disparity_sigma, np.float32))


def depth_sigma_from_disparity(depth, focal_baseline, disparity_sigma):
    """First-order depth standard deviation of Z = f B / d: sigma_Z = Z^2 / (f B) * sigma_d.

    The one place this formula is written: StereoCamera.depth_sigma, the fusion sigma model
    (core/fusion/uncertainty.py) and its torch fit all call it. Plain arithmetic, so it takes numpy
    arrays or torch tensors alike (``focal_baseline`` in px * m, ``disparity_sigma`` in px).
    """
    return depth * depth / focal_baseline * disparity_sigma
