"""depth_fusion's parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

from depthmarks_ros.convert.cloud import POINTS_LAYOUTS
from depthmarks_ros.core.fusion.completion import METHODS as COMPLETION_METHODS
from depthmarks_ros.core.params import odd, param
from depthmarks_ros.params.base import (CompressedDepthParams, DepthTransportParams, ImageTransportParams, InputParams,
                                         NodeParams)


@dataclass
class DepthFusionParams(NodeParams, CompressedDepthParams, InputParams, ImageTransportParams, DepthTransportParams):
    rig_file: str = param('', 'Rig calibration YAML (file://, package:// or path); empty = the simulated rig',
                          read_only=True, cli=False)
    camera_sensor: str = param('rgb', 'Camera sensor name in the rig file', read_only=True, cli=False)
    lidar_sensor: str = param('lidar', 'LiDAR sensor name in the rig file', read_only=True, cli=False)
    lidar_to_camera: List[float] = param([0.0], 'Override the LiDAR -> camera transform (maps LiDAR points into the camera frame): [x, y, z, qx, qy, qz, qw] '
                                         '(one 0 = use the rig; checked by core transform_from_pose at start)',
                                         read_only=True, cli=False)
    lidar_frame: str = param('', 'Expected frame_id of the cloud with lidar_to_camera ("" = the rig frame)',
                             read_only=True, cli=False)
    completion: str = param('classical', 'Depth completion: classical (IP-Basic), guided (RGB guided filter), '
                            'scanline (edge-aware)', choices=COMPLETION_METHODS)
    visibility_rows: int = param(0, 'Camera-visibility filter: a LiDAR return deeper than 1.1 z_min + 0.3 m, z_min the '
                                 'nearest return in a visibility_rows x visibility_cols px window around it, is '
                                 'dropped before completion (a point seen past a nearer edge, hidden from the '
                                 'camera); 0 = off. About one gap between scan lines in the image (KITTI HDL-64E: 7)',
                                 min=0, max=51, check=lambda v: None if v == 0 else odd(v), check_text='0 or odd')
    visibility_cols: int = param(3, 'Width of the camera-visibility filter window (px)', min=1, max=51, check=odd,
                                 check_text='odd')
    max_depth: float = param(100.0, 'Largest depth considered (m)', min=1.0, max=1000.0)
    time_tolerance: float = param(0.06, 'Largest |sweep stamp - image stamp| accepted (s)', min=0.0, max=10.0,
                                  cli=False)
    use_stereo: bool = param(False, 'Fuse stereo/depth (+ stereo/confidence)', read_only=True, cli=False)
    use_mono: bool = param(False, 'Fuse mono/depth', read_only=True, cli=False)
    stereo_baseline: float = param(0.0, 'Baseline of the stereo source for its sigma (m); 0 = from the rig file',
                                   min=0.0, max=10.0, read_only=True, cli=False)
    sigma_model_file: str = param('', 'Sigma model: a fitted model JSON (depthmarks fit-fusion; file://, '
                                  'package:// or path), "kitti" = the shipped model fitted on real KITTI data, '
                                  'empty = built-in defaults fitted on the simulated rig', read_only=True)
    queue_size: int = param(5, 'Synchronisation queue per input', min=1, max=100, read_only=True, cli=False)
    points_layout: str = param('organized', 'fusion/points: organized (height x width, NaN where invalid, as '
                               'depth_image_proc) or dense (valid points only, height 1)', choices=POINTS_LAYOUTS,
                               cli=False)
    points_period: float = param(0.0, 'fusion/points: seconds between published clouds, the first frame of each '
                                 'period by stamp (stamp // period, the instants depthmarks run records); '
                                 '0 = every frame (only while subscribed either way)', min=0.0, max=3600.0, cli=False)
