"""Stereo matching (ROS-free): OpenCV BM/SGBM in parallel strips, post-filters, confidence, metrics."""
from depthmarks_ros.core.stereo.params import ALGORITHMS, StereoParams
from depthmarks_ros.core.stereo.matching import StereoMatcher, StereoResult

__all__ = ['ALGORITHMS', 'StereoParams', 'StereoMatcher', 'StereoResult']
