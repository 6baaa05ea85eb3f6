"""Frame sources for the video_source node (ROS-free): camera devices, video files, image folders."""
from depthmarks_ros.core.video.sources import (DeviceSource, FrameSource, ImageFolderSource, SourceError,
                                               VideoFileSource, open_source)
from depthmarks_ros.core.video.timing import Backoff, Pacer
from depthmarks_ros.core.video.stereo_split import split_side_by_side
from depthmarks_ros.core.video.calibration import camera_for_frames, uncalibrated_camera

__all__ = ['DeviceSource', 'FrameSource', 'ImageFolderSource', 'SourceError', 'VideoFileSource',
           'open_source', 'Backoff', 'Pacer', 'split_side_by_side', 'camera_for_frames',
           'uncalibrated_camera']
