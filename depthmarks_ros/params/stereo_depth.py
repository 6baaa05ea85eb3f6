"""stereo_depth's parameters: the matcher's (core ``StereoParams``) plus the node's inputs."""
from __future__ import annotations

from dataclasses import dataclass

from depthmarks_ros.convert.cloud import POINTS_LAYOUTS
from depthmarks_ros.core.params import param
from depthmarks_ros.core.stereo.backend import backend_names
from depthmarks_ros.core.stereo.params import StereoParams
from depthmarks_ros.params.base import (CompressedDepthParams, ImageTransportParams, InputParams, NodeParams,
                                         ShardParams)


@dataclass
class StereoDepthParams(NodeParams, CompressedDepthParams, InputParams, ImageTransportParams, ShardParams,
                        StereoParams):
    # 2048x2048 (holds 1920x1200): the matcher's memory grows with the image
    max_image_pixels: int = param(4_194_304, 'Images with more pixels (width x height) are refused before any '
                                  'work (one huge frame must not stall the node or exhaust memory)',
                                  min=1, max=2**31 - 1, cli=False)
    approximate_sync: bool = param(False, 'Pair left/right by nearest stamps instead of equal ones',
                                   read_only=True, cli=False)
    queue_size: int = param(5, 'Synchronisation queue per input', min=1, max=100, read_only=True, cli=False)
    slop: float = param(0.01, 'Approximate sync: largest stamp difference (s)', min=0.0, max=1.0,
                        read_only=True, cli=False)
    calibration_file: str = param('', 'Rig YAML with sensors left and right: use it instead of the '
                                  'camera_info topics (which are then not subscribed)', read_only=True, cli=False)
    backend: str = param('coarse_to_fine_census', 'Matcher backend: opencv (the OpenCV matcher chosen by stereo_algorithm), '
                         'coarse_to_fine (that matcher at half size + full-size choice among neighbours), '
                         'coarse_to_fine_sgm (half size + a +-16 px full-size SGM around it), '
                         'coarse_to_fine_census (left-padded half size + full-size census choice among the '
                         'own, smallest and largest neighbouring disparity); core/stereo/backend.py',
                         choices=backend_names())
    points_layout: str = param('organized', 'stereo/points: organized (height x width, NaN where invalid, as '
                               'stereo_image_proc points2) or dense (valid points only, height 1)',
                               choices=POINTS_LAYOUTS, cli=False)
    points_period: float = param(0.0, 'stereo/points: seconds between published clouds, the first frame of each '
                                 'period by stamp (stamp // period, the instants depthmarks run records); '
                                 '0 = every frame (only while subscribed either way)', min=0.0, max=3600.0, cli=False)
    model_path: str = param('', 'backend learned: ONNX or TorchScript file with its input-convention YAML beside it '
                            "('' = the refinement network shipped in the package; docs/learned_stereo.md)",
                            read_only=True)
    device: str = param('auto', 'backend learned: where the network runs (auto: CUDA when present)',
                        choices=('auto', 'cpu', 'cuda'), read_only=True)
    half: bool = param(False, 'backend learned, TorchScript on CUDA: half precision', read_only=True)
