"""Backend ``learned`` of the stereo chain (core/stereo/backend.py): a network from a file
(:class:`~depthmarks_ros.core.stereo.learned.LearnedStereo`, docs/learned_stereo.md).

Options (node parameters / `depthmarks stereo` options): ``model_path`` ('' = the refinement network
shipped in the package), ``device`` (auto | cpu | cuda), ``half``. A refine model refines the
classical matcher configured by the chain's StereoParams (run-time changes apply to it).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from depthmarks_ros.core.stereo.backend import StereoBackend
from depthmarks_ros.core.stereo.learned import LearnedStereo, shipped_model_path
from depthmarks_ros.core.stereo.params import StereoParams


class LearnedBackend(StereoBackend):
    name = 'learned'

    def __init__(self, params: Optional[StereoParams] = None, threads: int = 2, model_path: str = '',
                 device: str = 'auto', half: bool = False):
        super().__init__(params)
        self.model = LearnedStereo(model_path or shipped_model_path(), device=device, half=half,
                                   threads=threads, classical=self.params)
        spec = self.model.spec
        self.colour = spec.kind == 'disparity' and spec.color != 'gray'
        self.last_sigma: Optional[np.ndarray] = None   # disparity sigma (px) of the last frame, if any

    def set_params(self, params: StereoParams) -> None:
        params.validate()
        self.params = params
        self.model.set_classical_params(params)

    @property
    def max_disparity(self) -> float:
        if self.model.spec.kind == 'disparity' and self.model.spec.max_disparity > 0:
            return float(self.model.spec.max_disparity)
        return super().max_disparity

    def compute(self, left: np.ndarray, right: np.ndarray, confidence: bool = True):
        r = self.model.compute(left, right, confidence=confidence)
        self.last_sigma = r.sigma
        return r.disparity, r.confidence

    def close(self) -> None:
        self.model.close()
