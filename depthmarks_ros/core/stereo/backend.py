"""Stereo matcher backends (ROS-free): the interface the per-frame chain calls, and a registry.

A backend turns a *rectified* pair into a left disparity map::

    backend.compute(left_rect, right_rect, confidence=True) -> disparity | (disparity, confidence)

* ``left_rect``, ``right_rect``: (H, W) uint8 grey, or (H, W, 3) uint8 RGB when the backend's
  ``colour`` is True; same size.
* ``disparity``: (H, W) float32 px of the left image, NaN where invalid.
* ``confidence`` (optional): (H, W) float32 in [0, 1], 0 where invalid, or None. When a backend
  gives none and confidence is wanted, the chain uses the texture term of confidence.py.
  ``confidence=False`` tells the backend it may skip computing it.
* Both are new arrays of this call (never a buffer the backend reuses): the stereo node publishes
  them without copying, and a message may be kept (the recorder) while later frames are computed.

Besides ``compute`` a backend has ``name``, ``colour``, ``min_disparity``, ``max_disparity``,
``delta_d`` (the disparity step it resolves, for stereo_msgs/DisparityImage), ``valid_window(w, h)``
and ``close()``; :class:`StereoBackend` gives defaults. ``set_params(StereoParams)`` applies
run-time parameter changes (classical backends; others may ignore what does not concern them).

Backends are created by name (``create_backend``); a new one is added with ``register_backend``
(name -> factory(params, threads, **options)) or listed in ``_LAZY`` so its module (and its heavy
imports) loads only when it is used.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np

from depthmarks_ros.core.stereo.params import StereoParams

BackendOutput = Union[np.ndarray, Tuple[np.ndarray, Optional[np.ndarray]]]


class StereoBackend:
    """Base class with the interface's defaults (see the module docstring)."""

    name = ''
    colour = False        # True: compute() gets RGB (H, W, 3) uint8; False: grey (H, W) uint8
    delta_d = 1.0 / 16.0  # smallest disparity step resolved (px)

    def __init__(self, params: Optional[StereoParams] = None):
        self.params = params or StereoParams()

    def set_params(self, params: StereoParams) -> None:
        params.validate()
        self.params = params

    @property
    def min_disparity(self) -> float:
        return float(self.params.min_disparity)

    @property
    def max_disparity(self) -> float:
        return float(self.params.min_disparity + self.params.disparity_range - 1)

    def valid_window(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """x, y, width, height of the region where disparities can be valid (whole image here)."""
        return 0, 0, int(width), int(height)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True) -> BackendOutput:
        raise NotImplementedError

    def close(self) -> None:
        pass


Factory = Callable[..., StereoBackend]
_FACTORIES: Dict[str, Factory] = {}
# name -> 'module:attribute' of a factory, imported on first use
_LAZY: Dict[str, str] = {
    'opencv': 'depthmarks_ros.core.stereo.matching:OpenCVBackend',
    'coarse_to_fine': 'depthmarks_ros.core.stereo.coarse_to_fine:CoarseToFineBackend',
    'coarse_to_fine_sgm': 'depthmarks_ros.core.stereo.coarse_to_fine_sgm:CoarseToFineSGMBackend',
    'coarse_to_fine_census': 'depthmarks_ros.core.stereo.coarse_to_fine_census:CoarseToFineCensusBackend',
    'learned': 'depthmarks_ros.core.stereo.learned_backend:LearnedBackend',
}


def register_backend(name: str, factory: Factory) -> None:
    """Make ``create_backend(name, ...)`` call ``factory(params, threads, **options)``."""
    _FACTORIES[name] = factory


def backend_names() -> Tuple[str, ...]:
    return tuple(dict.fromkeys(list(_LAZY) + list(_FACTORIES)))


def create_backend(name: str, params: Optional[StereoParams] = None, threads: int = 2,
                   **options) -> StereoBackend:
    """A backend by name; ValueError (with the known names) for an unknown one."""
    if name not in _FACTORIES:
        if name not in _LAZY:
            raise ValueError(f'unknown stereo backend {name!r}; known: {", ".join(backend_names())}')
        module, attr = _LAZY[name].split(':')
        _FACTORIES[name] = getattr(importlib.import_module(module), attr)
    return _FACTORIES[name](params or StereoParams(), threads, **options)


class ResultMatcher:
    """A backend with StereoMatcher's call (``compute(left, right) -> StereoResult``), for the fits
    and benchmarks that score a backend's disparity and confidence (fit-fusion, bench_fusion)."""

    def __init__(self, name: str, params: Optional[StereoParams] = None, threads: int = 2):
        self.name = name
        self.backend = create_backend(name, params, threads)

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True):
        from depthmarks_ros.core.stereo.matching import StereoResult
        disparity, conf = self.backend.compute(left, right, confidence=confidence)
        return StereoResult(disparity, conf, self.backend.valid_window(left.shape[1], left.shape[0]))

    def close(self) -> None:
        self.backend.close()
