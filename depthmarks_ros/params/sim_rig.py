"""sim_rig's parameters: what the rig renders (core ``SimConfig``) plus the node's timing."""
from __future__ import annotations

from dataclasses import dataclass

from depthmarks_ros.core.params import param
from depthmarks_ros.core.sim.rig import SimConfig
from depthmarks_ros.params.base import CompressedImageParams, CompressedDepthParams, NodeParams


@dataclass
class SimRigParams(NodeParams, CompressedImageParams, CompressedDepthParams, SimConfig):
    rate: float = param(10.0, 'Camera frame rate (Hz)', min=0.1, max=100.0, read_only=True)
    lidar_rate: float = param(10.0, 'LiDAR sweep rate (Hz)', min=0.1, max=100.0, read_only=True, cli=False)
    publish_ground_truth: bool = param(True, 'Publish sim/depth_gt and sim/disparity_gt', cli=False)
