"""Import mediapipe without writing into $HOME.

mediapipe's ``solutions`` import its drawing utilities, which import matplotlib, and matplotlib
writes its configuration and font cache into ``~/.config/matplotlib`` and ``~/.cache/matplotlib``
unless ``MPLCONFIGDIR`` names another folder. The nodes write nothing outside ROS_LOG_DIR and the
temporary folder, so unless the user chose a folder, matplotlib gets one under the temporary folder.
"""
from __future__ import annotations

import os
import sys
import tempfile


def import_mediapipe():
    """The ``mediapipe`` module (ImportError if it is not installed)."""
    if 'matplotlib' not in sys.modules and not os.environ.get('MPLCONFIGDIR'):
        folder = os.path.join(tempfile.gettempdir(), f'depthmarks_matplotlib_{os.getuid()}')
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.environ['MPLCONFIGDIR'] = folder
    import mediapipe
    return mediapipe
