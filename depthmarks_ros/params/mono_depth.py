"""mono_depth's parameters."""
from __future__ import annotations

from dataclasses import dataclass

from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import (CompressedDepthParams, DepthTransportParams, ImageTransportParams, InputParams,
                                        NodeParams, ShardParams)


@dataclass
class MonoDepthParams(NodeParams, CompressedDepthParams, InputParams, ImageTransportParams, DepthTransportParams,
                      ShardParams):
    model: str = param('', 'Local model folder (transformers), hub id (local cache), or midas:<type>',
                       read_only=True)
    device: str = param('cpu', 'Torch device', choices=('cpu', 'cuda'), read_only=True)
    input_size: int = param(384, 'Network input size (long side, px)', min=64, max=1536, read_only=True)
    half: bool = param(False, 'Half precision (GPU only)', read_only=True)
    allow_download: bool = param(False, 'Let transformers / torch.hub download (needs internet)', read_only=True)
    midas_repo: str = param('', 'Local clone of intel-isl/MiDaS (original MiDaS models)', read_only=True)
    checkpoint: str = param('', 'Original MiDaS checkpoint (.pt)', read_only=True)
    reference_topic: str = param('fusion/sparse_depth', 'Metric depth for scale/shift (empty = none)',
                                 read_only=True, cli=False)
    reference_max_age: float = param(0.3, 'Use a reference at most this far from the image stamp (s)',
                                     min=0.0, max=10.0, cli=False)
    min_reference_points: int = param(50, 'Fewest valid reference pixels for a fit', min=3, max=10**7)
    smoothing: float = param(0.3, 'Weight of a new scale/shift fit (1 = no smoothing)', min=0.01, max=1.0,
                             cli=False)
    max_depth: float = param(100.0, 'Largest metric depth published (m)', min=0.1, max=1000.0)
