"""Simulated sensor rig with exact ground truth (ROS-free): see :mod:`.rig` and :mod:`.scene`."""
from depthmarks_ros.core.sim.rig import LIDAR_DTYPE, SimConfig, SimFrame, SimRig

__all__ = ['LIDAR_DTYPE', 'SimConfig', 'SimFrame', 'SimRig']
