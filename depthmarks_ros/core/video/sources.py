"""Where frames come from: a camera device, a video file or a folder of images.

Every source returns BGR uint8 frames (OpenCV's order) from :meth:`FrameSource.read` and raises
:class:`SourceError` with a message that names the source and says what is wrong.
"""
from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

import numpy as np

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.webp')


class SourceError(RuntimeError):
    """A source cannot be opened or read (the message says which and why)."""


class FrameSource:
    """Base class. ``read()`` -> BGR frame (H, W, 3) uint8, or None at the end of a finite source."""

    live = False          # a device: frames pace themselves, failures are retried
    nominal_fps = 0.0     # 0 = unknown

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> Optional[np.ndarray]:
        raise NotImplementedError

    def rewind(self) -> None:
        """Start again from the first frame (finite sources)."""
        self.close()
        self.open()

    def close(self) -> None:
        pass

    @property
    def description(self) -> str:
        return type(self).__name__


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


class DeviceSource(FrameSource):
    """A camera device: an index (``0``) or a path (``/dev/video0``), with a requested size and fps."""

    live = True

    def __init__(self, device: str, width: int = 0, height: int = 0, fps: float = 0.0):
        self.device = device
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._cap = None

    @property
    def description(self) -> str:
        return f'camera device {self.device!r}'

    def open(self) -> None:
        import cv2
        dev = int(self.device) if str(self.device).isdigit() else str(self.device)
        if isinstance(dev, str) and not os.path.exists(dev):
            raise SourceError(f'{self.description}: no such device')
        cap = cv2.VideoCapture(dev, cv2.CAP_V4L2) if isinstance(dev, int) or dev.startswith('/dev/') \
            else cv2.VideoCapture(dev)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f'{self.description}: cannot open (missing, busy or no permission)')
        if self.width > 0 and self.height > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.fps > 0:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        self.nominal_fps = float(cap.get(cv2.CAP_PROP_FPS) or self.fps or 0.0)
        self._cap = cap

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            raise SourceError(f'{self.description}: not open')
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError(f'{self.description}: no frame (device disconnected?)')
        return _as_bgr(frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource(FrameSource):
    """A video file read with OpenCV (FFmpeg backend). ``read()`` returns None at the end."""

    def __init__(self, path: str):
        self.path = path
        self._cap = None
        self.frames_read = 0

    @property
    def description(self) -> str:
        return f'video file {self.path!r}'

    def open(self) -> None:
        import cv2
        if not os.path.isfile(self.path):
            raise SourceError(f'{self.description}: file not found')
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f'{self.description}: cannot be decoded (not a video, or truncated/corrupt)')
        self.nominal_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(f'{self.description}: holds no decodable frame (truncated/corrupt?)')
        self._pending = first
        self._cap = cap
        self.frames_read = 0

    def read(self) -> Optional[np.ndarray]:
        if self._cap is None:
            raise SourceError(f'{self.description}: not open')
        if self._pending is not None:
            frame, self._pending = self._pending, None
        else:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                return None
        self.frames_read += 1
        return _as_bgr(frame)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', name)]


class ImageFolderSource(FrameSource):
    """The images of a folder in natural sort order (frame2 before frame10). Unreadable files are skipped."""

    def __init__(self, folder: str):
        self.folder = folder
        self.files: List[str] = []
        self._index = 0
        self.skipped: List[str] = []

    @property
    def description(self) -> str:
        return f'image folder {self.folder!r}'

    def open(self) -> None:
        if not os.path.isdir(self.folder):
            raise SourceError(f'{self.description}: not a folder')
        names = sorted((n for n in os.listdir(self.folder) if n.lower().endswith(IMAGE_EXTENSIONS)),
                       key=_natural_key)
        if not names:
            raise SourceError(f'{self.description}: holds no images ({", ".join(IMAGE_EXTENSIONS)})')
        self.files = [os.path.join(self.folder, n) for n in names]
        self._index = 0

    def read(self) -> Optional[np.ndarray]:
        import cv2
        while self._index < len(self.files):
            path = self.files[self._index]
            self._index += 1
            frame = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            if frame is None:
                self.skipped.append(path)
                continue
            if frame.dtype != np.uint8:
                frame = (frame / 256).astype(np.uint8) if frame.dtype == np.uint16 else frame.astype(np.uint8)
            return _as_bgr(frame)
        if len(self.skipped) >= len(self.files):
            raise SourceError(f'{self.description}: none of its {len(self.files)} images can be read')
        return None

    def rewind(self) -> None:
        self._index = 0


def open_source(spec: str, kind: str = 'auto', width: int = 0, height: int = 0,
                fps: float = 0.0) -> FrameSource:
    """Make (not open) a source from a string: a device index/path, a video file or a folder.

    kind: 'auto' | 'device' | 'file' | 'folder'.
    """
    spec = str(spec).strip()
    if not spec:
        raise SourceError('no source given (set the "source" parameter: device index, /dev/videoN, '
                          'video file or image folder)')
    if kind == 'auto':
        if spec.isdigit() or spec.startswith('/dev/video'):
            kind = 'device'
        elif os.path.isdir(spec):
            kind = 'folder'
        else:
            kind = 'file'
    if kind == 'device':
        return DeviceSource(spec, width, height, fps)
    if kind == 'file':
        return VideoFileSource(spec)
    if kind == 'folder':
        return ImageFolderSource(spec)
    raise SourceError(f'unknown source type {kind!r}: use auto, device, file or folder')
