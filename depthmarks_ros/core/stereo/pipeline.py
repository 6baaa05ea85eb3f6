"""Stereo's per-frame chain (ROS-free), shared by the stereo_depth node and `depthmarks stereo`.

raw pair + calibration -> rectified pair (cached remap tables) -> backend disparity
[+ confidence] -> REP-118 depth -> organised points (+ rectified left colour).

Convention: disparity, confidence, depth and points are images of the *rectified left camera*
(``StereoFrame.camera``, REP-103 optical frame: x right, y down, z forward, metres). Disparity is
in px, NaN where invalid; depth = f * B / (d - (cx_l - cx_r)), NaN where invalid; points are
(H, W, 3) float32 x, y, z, NaN where the depth is invalid (organised, as stereo_image_proc's
points2).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from depthmarks_ros.core.camera import CalibrationError, PinholeCamera, Rectifier, StereoCamera, assumed_K
from depthmarks_ros.core.stereo.backend import StereoBackend, create_backend
from depthmarks_ros.core.stereo.confidence import confidence_map
from depthmarks_ros.core.stereo.params import StereoParams

_MAX_RECTIFIERS = 8  # calibrations rarely change; bounded so a stream of new ones cannot grow memory


@dataclass
class StereoFrame:
    disparity: np.ndarray                      # (H, W) float32 px, NaN invalid
    confidence: Optional[np.ndarray]           # (H, W) float32 in [0, 1]; None when not asked for
    depth: Optional[np.ndarray]                # (H, W) float32 m, NaN invalid; None without calibration
    points: Optional[np.ndarray]               # (H, W, 3) float32 m, NaN invalid; when asked for
    colour: Optional[np.ndarray]               # (H, W, 3) uint8 rectified left RGB, with the points
    stereo: Optional[StereoCamera]             # the rectified pair (camera of every output: .left)
    valid_window: Tuple[int, int, int, int]    # x, y, width, height (stereo_image_proc's definition)
    min_disparity: float
    max_disparity: float
    delta_d: float
    timing: Dict[str, float] = field(default_factory=dict)  # s: prepare (grey/rectify), match, outputs;
    # match_cpu: the calling thread's CPU in the matcher (its pools' not counted)

    @property
    def camera(self) -> Optional[PinholeCamera]:
        """The rectified left camera: the camera_info of every output image."""
        return None if self.stereo is None else self.stereo.left


def _grey(image: np.ndarray) -> np.ndarray:
    import cv2
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _rgb(image: np.ndarray) -> np.ndarray:
    import cv2
    return image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)


def _check_image(name: str, image: np.ndarray) -> None:
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f'{name} image must be uint8 (H, W) grey or (H, W, 3) RGB, got {image.dtype} '
                         f'{image.shape}')


def cameras_from_focal_baseline(width: int, height: int, focal: float, baseline: float
                                 ) -> Tuple[PinholeCamera, PinholeCamera]:
    """A rectified pair of ``width`` x ``height`` with focal ``focal`` px and ``baseline`` m (principal
    point at the image centre as core/camera.assumed_K puts it, cx_l = cx_r): for files that ship only
    these two numbers."""
    if not (focal > 0 and baseline > 0):
        raise CalibrationError(f'focal ({focal}) and baseline ({baseline}) must be positive')
    K = assumed_K(width, height, focal)
    P_right = np.hstack([K, [[-focal * baseline], [0.0], [0.0]]])
    return (PinholeCamera(width, height, K, name='left'),
            PinholeCamera(width, height, K, P=P_right, name='right'))


class StereoPipeline:
    """One stereo frame at a time: ``process(left, right, cameras)``; thread-safe.

    ``backend``: a name for :func:`create_backend` ('opencv', 'coarse_to_fine', ...) or a
    :class:`StereoBackend` instance; ``options`` go to the backend's factory.
    """

    def __init__(self, backend='opencv', params: Optional[StereoParams] = None, threads: int = 2, **options):
        self.threads = threads
        self._lock = threading.Lock()
        self._rectifiers: Dict[bytes, Rectifier] = {}
        self._pairs: Dict[tuple, StereoCamera] = {}   # raw calibrations -> rectified pair
        self.backend: StereoBackend = (backend if isinstance(backend, StereoBackend)
                                       else create_backend(backend, params, threads, **options))
        self.backend_name = self.backend.name or str(backend)
        if params is not None and isinstance(backend, StereoBackend):
            self.backend.set_params(params)

    @property
    def params(self) -> StereoParams:
        return self.backend.params

    def set_params(self, params: StereoParams) -> None:
        """Apply changed parameters (validated first: ValueError leaves the old ones in place)."""
        params.validate()
        with self._lock:
            self.backend.set_params(params)

    def set_backend(self, backend, **options) -> None:
        """Switch backend (name or instance), keeping the parameters."""
        new = backend if isinstance(backend, StereoBackend) else create_backend(backend, self.params,
                                                                                self.threads, **options)
        with self._lock:
            old, self.backend = self.backend, new
            self.backend_name = new.name or str(backend)
        old.close()

    def rectify(self, image: np.ndarray, camera: PinholeCamera) -> np.ndarray:
        """Raw image of ``camera`` -> rectified (unchanged when it needs none); maps cached per camera."""
        key = camera.calibration_key()
        rect = self._rectifiers.get(key)
        if rect is None:
            if len(self._rectifiers) >= _MAX_RECTIFIERS:
                self._rectifiers.clear()
            rect = self._rectifiers[key] = camera.rectifier()
        return rect(image)

    def _rectified_pair(self, left: PinholeCamera, right: PinholeCamera) -> StereoCamera:
        """``StereoCamera(left, right).rectified()``, kept per calibration (checked once): a frame's
        cameras are usually the previous frame's. Raises CalibrationError for an unusable pair."""
        key = (left.calibration_key(), right.calibration_key(), left.frame_id, right.frame_id,
               left.name, right.name)
        pair = self._pairs.get(key)
        if pair is None:
            pair = StereoCamera(left, right).rectified()
            if len(self._pairs) >= _MAX_RECTIFIERS:
                self._pairs.clear()
            self._pairs[key] = pair
        return pair

    def process(self, left: np.ndarray, right: np.ndarray,
                cameras: Optional[Tuple[PinholeCamera, PinholeCamera]] = None, *,
                confidence: bool = True, depth: bool = True, points: bool = False,
                left_colour: Optional[np.ndarray] = None) -> StereoFrame:
        """One frame.

        left, right: raw images, (H, W) uint8 grey or (H, W, 3) uint8 RGB, same size.
        cameras: (left, right) raw calibration of this size (rectified here when needed); None
        for an already rectified pair without geometry (disparity and confidence only).
        confidence / depth / points: which outputs to compute (points imply depth). left_colour:
        (H, W, 3) uint8 raw left RGB for the points' colour (default: ``left`` when it is RGB).
        Raises ValueError (CalibrationError included) for inputs that do not fit together.
        """
        _check_image('left', left)
        _check_image('right', right)
        if left.shape[:2] != right.shape[:2]:
            raise ValueError(f'left and right images differ in size: {left.shape[1]}x{left.shape[0]} vs '
                             f'{right.shape[1]}x{right.shape[0]}')
        h, w = left.shape[:2]
        stereo = None
        if cameras is not None:
            lcam, rcam = cameras
            if lcam.size != (w, h) or rcam.size != (w, h):
                raise CalibrationError(f'calibration is for {lcam.width}x{lcam.height} but images are {w}x{h}')
            stereo = self._rectified_pair(lcam, rcam)
        t0 = time.perf_counter()
        with self._lock:
            backend = self.backend
            prep = _rgb if backend.colour else _grey
            lr, rr = prep(left), prep(right)
            if cameras is not None:
                lr, rr = self.rectify(lr, cameras[0]), self.rectify(rr, cameras[1])
            t1, c1 = time.perf_counter(), time.thread_time()
            out = backend.compute(np.ascontiguousarray(lr), np.ascontiguousarray(rr), confidence=confidence)
            match_cpu = time.thread_time() - c1
            disp, conf = out if isinstance(out, tuple) else (out, None)
            window = backend.valid_window(w, h)
            bounds = (backend.min_disparity, backend.max_disparity, backend.delta_d)
            params = backend.params
            t2 = time.perf_counter()
        disp = np.asarray(disp, np.float32)
        if disp.shape != (h, w):
            raise ValueError(f'backend {self.backend_name!r} returned a {disp.shape} disparity for {w}x{h} images')
        if confidence and conf is None:
            conf = confidence_map(_grey(lr), disp, params.correlation_window_size)
        if not confidence:
            conf = None
        z = pts = colour = None
        if stereo is not None and (depth or points):
            z = stereo.disparity_to_depth(disp)
        if points and z is not None:
            pts = stereo.left.depth_to_points(z)
            src = left_colour if left_colour is not None else (left if left.ndim == 3 else None)
            if src is not None:
                colour = self.rectify(_rgb(src), cameras[0]) if cameras is not None else _rgb(src)
        timing = {'prepare': t1 - t0, 'match': t2 - t1, 'outputs': time.perf_counter() - t2,
                  'match_cpu': match_cpu}
        return StereoFrame(disp, conf, z, pts, colour, stereo, window, *bounds, timing)

    def close(self) -> None:
        self.backend.close()
