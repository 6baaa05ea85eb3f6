"""video_source's parameters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import CompressedImageParams, NodeParams


def _check_source(value) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return f'must be a device index (integer) or a path, got {type(value).__name__} {value!r}'
    if isinstance(value, int) and value < 0:
        return f'device index must be >= 0, got {value}'
    return None


@dataclass
class VideoSourceParams(NodeParams, CompressedImageParams):
    # `-p source:=0` arrives as an integer: accepted as the device index it means
    source: str = param('0', 'Device index, /dev/videoN path, video file or image folder', read_only=True,
                        dynamic_typing=True, check=_check_source, check_text='device index >= 0 or a path')
    source_type: str = param('auto', 'How to read "source"', choices=('auto', 'device', 'file', 'folder'),
                             read_only=True)
    right_source: str = param('', 'Second device for stereo_mode two_devices', read_only=True)
    stereo_mode: str = param('none', 'none, side_by_side (left/right halves) or two_devices',
                             choices=('none', 'side_by_side', 'two_devices'), read_only=True)
    width: int = param(0, 'Requested capture width (devices; 0 = driver default)', min=0, max=8192, read_only=True)
    height: int = param(0, 'Requested capture height (devices; 0 = driver default)', min=0, max=8192,
                        read_only=True)
    fps: float = param(0.0, 'Publishing rate in Hz: devices request it at open (fixed while streaming); files '
                       'default to their own fps (0); folders need it (0 = 10 Hz)', min=0.0, max=1000.0)
    realtime: bool = param(True, 'Files/folders: pace at fps; false = as fast as subscribers take them')
    loop: bool = param(False, 'Files/folders: start again at the end')
    camera_info_url: str = param('', 'camera_info_manager YAML (file:// or package://) of the (left) camera',
                                 read_only=True)
    right_camera_info_url: str = param('', 'camera_info_manager YAML of the right camera', read_only=True)
    default_hfov_deg: float = param(60.0, 'Horizontal field of view assumed without calibration',
                                    min=1.0, max=179.0, read_only=True)
    frame_id: str = param('camera_optical_frame', 'Frame of the (left) camera (REP-103 optical frame)',
                          read_only=True)
    right_frame_id: str = param('right_camera_optical_frame', 'Frame of the right camera', read_only=True)
    max_retry_interval: float = param(10.0, 'Longest wait between reconnection attempts (s)',
                                      min=0.1, max=600.0, read_only=True)

    def cross_check(self):
        if self.stereo_mode == 'two_devices' and not self.right_source:
            return 'stereo_mode two_devices needs the "right_source" parameter'
        return None
