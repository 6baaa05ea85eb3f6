"""video_source: a webcam, a video file or a folder of images as calibrated ROS image topics.

Mono: publishes camera/image_raw (bgr8) + camera/camera_info. Stereo (``stereo_mode``
side_by_side or two_devices): stereo/left/image_raw + camera_info and stereo/right/... with
identical stamps. Stamps are the capture time. A lost device is retried with exponential
back-off; a finite source ends (or loops). See docs/video_source.md.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import List, Optional

from sensor_msgs.msg import CameraInfo

from depthmarks_ros.convert.camera_info import info_from_camera
from depthmarks_ros.convert.image import numpy_to_image
from depthmarks_ros.core.calibration import load_camera_yaml, resolve_url
from depthmarks_ros.core.camera import CalibrationError
from depthmarks_ros.core.video import (Backoff, Pacer, SourceError, camera_for_frames, open_source,
                                       split_side_by_side)
from depthmarks_ros.params.video_source import VideoSourceParams
from depthmarks_ros.ros.node_base import ERROR, WARN, DepthmarksNode, EXIT_DEADLINE_S, run_node


class VideoSourceNode(DepthmarksNode):
    PARAMS = VideoSourceParams
    p: VideoSourceParams

    def __init__(self, **kwargs):
        super().__init__('video_source', **kwargs)
        self.stereo = self.p.stereo_mode != 'none'
        qos = self.output_qos()
        if self.stereo:
            self.pubs = [(self.create_image_publisher('stereo/left/image_raw', qos),
                          self.create_publisher(CameraInfo, 'stereo/left/camera_info', qos)),
                         (self.create_image_publisher('stereo/right/image_raw', qos),
                          self.create_publisher(CameraInfo, 'stereo/right/camera_info', qos))]
        else:
            self.pubs = [(self.create_image_publisher('camera/image_raw', qos),
                          self.create_publisher(CameraInfo, 'camera/camera_info', qos))]
        self.calibrations = [self._load_calibration(self.p.camera_info_url),
                             self._load_calibration(self.p.right_camera_info_url)]
        self.frame_ids = [self.p.frame_id, self.p.right_frame_id]
        self._warned = set()
        self.state = 'starting'
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._capture_loop, name='video_source-capture', daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ set-up
    def _load_calibration(self, url: str):
        if not url:
            return None
        try:
            return load_camera_yaml(resolve_url(url))
        except CalibrationError as exc:
            self.get_logger().error(f'{exc}; publishing uncalibrated camera_info instead')
            return None

    def check_parameters(self, candidate, changed):
        if 'fps' in changed and getattr(self, 'live', False):
            return 'fps: a device is asked for its rate when it is opened; restart the node to change it'
        return None

    def _make_sources(self):
        p = self.p
        first = open_source(str(p.source), p.source_type, p.width, p.height, p.fps)
        sources = [first]
        if p.stereo_mode == 'two_devices':   # the spec makes sure right_source is set
            sources.append(open_source(p.right_source, p.source_type, p.width, p.height, p.fps))
        return sources

    def _warn_once(self, text: str) -> None:
        if text and text not in self._warned:
            self._warned.add(text)
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ capture
    def _capture_loop(self) -> None:
        """The capture thread: an unexpected error ends it with a clear state, never silently."""
        try:
            self._capture()
        except Exception as exc:  # noqa: BLE001
            self.state = f'error: capture stopped: {type(exc).__name__}: {exc}'
            if self.context.ok():
                self.reject('capture', self.state, level='error')

    def _capture(self) -> None:
        try:
            sources = self._make_sources()
        except SourceError as exc:
            self.state = f'error: {exc}'
            self.reject('source', str(exc), level='error')
            return
        self.live = sources[0].live
        backoff = Backoff(0.5, self.p.max_retry_interval)
        opened = False
        pacer: Optional[Pacer] = None
        pacer_rate = None
        while not self._stop.is_set():
            if not opened:
                try:
                    for s in sources:
                        s.open()
                    opened, pacer = True, None
                    backoff.reset()
                    self.state = 'streaming'
                    self.get_logger().info('streaming from ' + ' + '.join(s.description for s in sources))
                except SourceError as exc:
                    for s in sources:
                        s.close()
                    if not sources[0].live:
                        self.state = f'error: {exc}'
                        self.reject('open', str(exc), level='error')
                        return
                    delay = backoff.next_delay()
                    self.state = f'retrying in {delay:.1f} s: {exc}'
                    self.reject('open', f'{exc}; retrying in {delay:.1f} s', level='error')
                    self._stop.wait(delay)
                    continue
            rate = self._rate(sources[0])
            if pacer is None or rate != pacer_rate:   # a new fps applies from the next frame
                pacer, pacer_rate = Pacer(rate), rate
            if not sources[0].live and not self.p.realtime:
                # as fast as consumed: wait for a subscriber, never spin
                while not self._stop.is_set() and not any(self.wanted(img) for img, _ in self.pubs):
                    self._stop.wait(0.05)
            if not sources[0].live and self.p.realtime:
                pacer.wait()
            try:
                frames = [s.read() for s in sources]
            except SourceError as exc:
                if sources[0].live:
                    for s in sources:
                        s.close()
                    opened = False
                    self.reject('read', f'{exc}; reconnecting', level='error')
                    continue
                self.state = f'error: {exc}'
                self.reject('read', str(exc), level='error')
                return
            stamp = self.get_clock().now()
            if any(f is None for f in frames):
                if self.p.loop:
                    for s in sources:
                        s.rewind()
                    continue
                self.state = 'finished'
                self.get_logger().info(f'end of {sources[0].description} after {self.published} frames')
                return
            self._publish(frames, stamp)

    def _rate(self, source) -> float:
        if source.live:
            return 0.0
        if self.p.fps > 0:
            return self.p.fps
        if source.nominal_fps > 0:
            return source.nominal_fps
        return 10.0

    def _publish(self, frames: List, stamp) -> None:
        t0 = time.monotonic()
        self.stats.frame_in()
        if self.p.stereo_mode == 'side_by_side':
            try:
                frames = list(split_side_by_side(frames[0]))
            except ValueError as exc:
                self.reject('split', str(exc))
                return
        header_stamp = stamp.to_msg()
        outputs = []
        for i, frame in enumerate(frames):
            h, w = frame.shape[:2]
            try:
                cam, note = camera_for_frames(self.calibrations[i], w, h, self.p.default_hfov_deg)
            except CalibrationError as exc:
                self.reject('calibration', f'{"right" if i else "left/mono"} camera: {exc}', level='error')
                return
            self._warn_once(note)
            img = numpy_to_image(frame, 'bgr8')
            img.header.stamp, img.header.frame_id = header_stamp, self.frame_ids[i]
            info = info_from_camera(cam)
            info.header = img.header
            outputs.append((img, info))
        for (img_pub, info_pub), (img, info) in zip(self.pubs, outputs):
            img_pub.publish(img)
            info_pub.publish(info)
        self.published += 1
        self.stats.output(0.0, time.monotonic() - t0)

    # ------------------------------------------------------------------ diagnostics
    def diagnostic_values(self):
        values = {'state': self.state, 'frames_published': self.published}
        if self.state.startswith('error'):
            values.update(status_level=ERROR, status_message=self.state)
        elif self.state.startswith('retrying'):
            values.update(status_level=WARN, status_message=self.state)
        return values

    def stop_workers(self) -> None:
        self._stop.set()
        super().stop_workers()

    def shutdown(self, **join) -> None:   # join: timeout or deadline (DepthmarksNode.shutdown)
        self.stop_workers()
        deadline = join.get('deadline')   # run_nodes' one deadline for every node: not overrun here
        self._thread.join(2.0 if deadline is None else max(0.0, min(2.0, deadline - time.monotonic())))
        super().shutdown(**join)


NODE_CLASS = VideoSourceNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
