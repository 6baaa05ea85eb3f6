"""stereo_depth: disparity, REP-118 depth, confidence and a point cloud from a stereo pair.

Subscribes stereo/{left,right}/image_raw + camera_info (synchronised: exact, or approximate with
``approximate_sync``), or only the images with ``calibration_file``. Raw (unrectified) input is
rectified here from the camera_info or the file. Publishes
stereo/disparity (DisparityImage, filled like stereo_image_proc), stereo/depth (32FC1 metres, NaN
invalid) + stereo/camera_info, stereo/confidence (32FC1 in [0, 1]) and, only while subscribed,
stereo/points (x, y, z, rgb). See docs/stereo_depth.md.
"""
from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

import cv2
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, RegionOfInterest
from stereo_msgs.msg import DisparityImage

from depthmarks_ros.convert.camera_info import camera_from_info, info_from_camera
from depthmarks_ros.convert.cloud import points_cloud
from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import image_to_mono8, image_to_rgb8, numpy_to_image
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.calibration import load_rig
from depthmarks_ros.core.camera import CalibrationError, StereoCamera
from depthmarks_ros.core.stereo import StereoParams
from depthmarks_ros.core.stereo.backend import create_backend
from depthmarks_ros.core.stereo.pipeline import StereoFrame, StereoPipeline
from depthmarks_ros.core.stereo.calib import fit_to_size
from depthmarks_ros.params.stereo_depth import StereoDepthParams
from depthmarks_ros.ros.node_base import DepthmarksNode, EXIT_DEADLINE_S, run_node
from depthmarks_ros.pipeline import node_inputs
from depthmarks_ros.ros.synced_inputs import inputs_of



@dataclass(frozen=True)
class StereoMessages:
    """One synchronised stereo set (Image or CompressedImage; no camera_info with calibration_file)."""
    left: Any
    right: Any
    left_info: Optional[CameraInfo] = None
    right_info: Optional[CameraInfo] = None
    received: float = field(default_factory=time.monotonic)


def _enc(msg) -> str:
    return getattr(msg, 'encoding', None) or getattr(msg, 'format', '')


def _info_key(info: CameraInfo) -> tuple:
    """Everything of a CameraInfo that camera_from_info reads (not the stamp)."""
    roi = info.roi
    return (info.header.frame_id, info.width, info.height, info.distortion_model, bytes(info.d),
            bytes(info.k), bytes(info.r), bytes(info.p), info.binning_x, info.binning_y,
            roi.x_offset, roi.y_offset, roi.width, roi.height, roi.do_rectify)


class StereoDepthNode(DepthmarksNode):
    PARAMS = StereoDepthParams
    p: StereoDepthParams

    def __init__(self, **kwargs):
        super().__init__('stereo_depth', **kwargs)
        self._backend_error = None
        self._pending_backend = None
        self.chain = self._make_chain()
        self._file_cams = None
        self._info_cams = {}   # (left, right) camera_info contents -> checked (left, right) cameras
        if self.p.calibration_file:   # start-up calibration: unusable = one-line error, exit 1 (docs/inputs.md)
            try:
                rig = load_rig(self.p.calibration_file)
                self._file_cams = (rig.camera('left'), rig.camera('right'))
                StereoCamera(*self._file_cams)
            except (OSError, ValueError) as exc:  # CalibrationError is a ValueError
                raise CalibrationError(f'calibration_file {self.p.calibration_file!r} unusable: {exc}') from exc
        # (worker start -> outputs published, matcher, wait for the worker, outputs, worker thread CPU,
        # its CPU outside the matcher) s
        self.timings = deque(maxlen=100)
        qos = self.output_qos()
        self.pub_disp = self.create_publisher(DisparityImage, 'stereo/disparity', qos)
        self.pub_depth = self.create_image_publisher('stereo/depth', qos, 'depth')
        self.pub_info = self.create_publisher(CameraInfo, 'stereo/camera_info', qos)
        # handed to depth_fusion in the same process as the object, without DDS (`depthmarks run`'s
        # single process, a container: ros/local_tap.py; issue 21), and then published last in the frame (_publish)
        self.pub_conf = self.create_publisher(Image, 'stereo/confidence', qos, hand_over=True)
        self.pub_points = self.create_publisher(PointCloud2, 'stereo/points', qos)
        inputs, _ = inputs_of(node_inputs.stereo_depth(self.p))
        self.inputs = self.synced_inputs(
            inputs, StereoMessages, self._process, policy='approximate' if self.p.approximate_sync else 'exact',
            queue_size=self.p.queue_size, slop=self.p.slop)
        self.worker = self.inputs.worker

    # ------------------------------------------------------------------ parameters
    def check_parameters(self, candidate, changed):
        """A new backend is started here, so one that cannot start is refused with the reason."""
        chain = getattr(self, 'chain', None)
        if chain is None or 'backend' not in changed or candidate.backend == chain.backend_name:
            return None
        try:
            self._pending_backend = create_backend(candidate.backend, StereoParams.take(candidate), chain.threads,
                                                   **self._backend_options(candidate.backend))
        except (OSError, ValueError, ImportError) as exc:
            return f'backend: {candidate.backend!r} cannot start: {exc}'
        return None

    def _backend_options(self, name: str):
        if name != 'learned':
            return {}
        return {'model_path': self.p.model_path, 'device': self.p.device, 'half': self.p.half}

    def _make_chain(self) -> StereoPipeline:
        """The chain with the configured backend; when that cannot start (a learned model that is
        missing or unusable) the node stays up and drops every frame with the reason."""
        try:
            return StereoPipeline(self.p.backend, StereoParams.take(self.p), **self._backend_options(self.p.backend))
        except (OSError, ValueError) as exc:  # LearnedModelError is a ValueError
            self._backend_error = f'stereo backend {self.p.backend!r} not started: {exc}; frames dropped'
            self.get_logger().error(self._backend_error)
            return StereoPipeline('opencv', StereoParams.take(self.p))

    def on_parameters_changed(self, names):
        # the on-set callback refused anything StereoParams refuses and a backend that cannot start
        if self._pending_backend is not None:
            backend, self._pending_backend = self._pending_backend, None
            self.chain.set_backend(backend)
        if self.p.backend == self.chain.backend_name:
            self._backend_error = None   # a switch to a backend that started recovers
        self.chain.set_params(StereoParams.take(self.p))

    # ------------------------------------------------------------------ input
    def _cameras(self, msgs: 'StereoMessages', width: int, height: int):
        """(left, right) PinholeCamera for this frame, checked as a pair: from the calibration file
        (scaled to the image size) or from the camera_info messages (converted and checked once per
        calibration: usually every frame has the previous one's). Raises
        ConversionError/CalibrationError."""
        if msgs.left_info is not None:
            key = (_info_key(msgs.left_info), _info_key(msgs.right_info))
            cams = self._info_cams.get(key)
            if cams is None:
                cams = camera_from_info(msgs.left_info), camera_from_info(msgs.right_info)
                StereoCamera(*cams)   # the pair's check (baseline and its sign, sizes); raises
                if len(self._info_cams) >= 8:   # bounded: a stream of changing calibrations
                    self._info_cams.clear()
                self._info_cams[key] = cams
            return cams
        cams = fit_to_size(*self._file_cams, width, height)
        StereoCamera(*cams)
        return cams

    def _check_matchable(self, w: int, h: int) -> None:
        """Refuse images too small for the matcher (OpenCV would fail with a misleading message)."""
        p = self.chain.params
        need_w = p.min_disparity + p.disparity_range + p.correlation_window_size
        need_h = p.correlation_window_size
        if w < need_w or h < need_h:
            raise ConversionError(f'images {w}x{h} are too small for stereo matching with min_disparity '
                                  f'{p.min_disparity}, disparity_range {p.disparity_range} and window '
                                  f'{p.correlation_window_size}: need at least {need_w}x{need_h}')

    # ------------------------------------------------------------------ processing
    def _process(self, msgs: 'StereoMessages') -> None:
        """Messages (Image or CompressedImage) -> arrays -> core chain (core/stereo/pipeline.py) -> messages."""
        left, right, t_in = msgs.left, msgs.right, msgs.received
        t_start, cpu_start = time.monotonic(), time.thread_time()
        waited = t_start - t_in
        if self._backend_error:
            self.reject('backend', self._backend_error)
            return
        want_points = self.wanted_every(self.pub_points, stamp_ns(left.header), self.p.points_period)
        try:
            if _enc(left) != _enc(right):
                raise ConversionError(f'left and right encodings differ: {_enc(left)} vs {_enc(right)}')
            to_array = image_to_rgb8 if self.chain.backend.colour else image_to_mono8
            lg, rg = to_array(left), to_array(right)
            (h, w), (rh, rw) = lg.shape[:2], rg.shape[:2]
            if (w, h) != (rw, rh):
                raise ConversionError(f'left and right sizes differ: {w}x{h} vs {rw}x{rh}')
            self._check_matchable(w, h)
            cams = self._cameras(msgs, w, h)
            if cams[0].size != (w, h):
                raise ConversionError(f'camera_info is for {cams[0].width}x{cams[0].height} but images are {w}x{h}')
            colour = image_to_rgb8(left) if want_points and lg.ndim == 2 else None
        except (ConversionError, CalibrationError) as exc:
            self.reject('input', str(exc))
            return
        # each output only while subscribed; with only `depthmarks run`'s recorder (ros/local_tap.py),
        # only for the instants it keeps
        stamp = stamp_ns(left.header)
        want = (self.wanted_at(self.pub_depth, stamp), self.wanted_at(self.pub_conf, stamp),
                self.wanted_at(self.pub_disp, stamp), self.wanted_at(self.pub_info, stamp))
        try:
            frame = self.chain.process(lg, rg, cams, confidence=want[1], depth=want[0], points=want_points,
                                       left_colour=colour)
        except ValueError as exc:  # the backend refused this input (CalibrationError included)
            self.reject('input', str(exc))
            return
        header = left.header
        t_pub = time.monotonic()
        self._publish(header, frame, *want)
        t_out = time.monotonic()
        cpu = time.thread_time() - cpu_start
        self.timings.append((t_out - t_start, frame.timing['match'], waited, t_out - t_pub, cpu,
                             cpu - frame.timing.get('match_cpu', 0.0)))
        self.stats.output(self.latency_since(header), t_out - t_in)

    def _publish(self, header, frame: StereoFrame, want_depth: bool = True, want_confidence: bool = True,
                 want_disparity: bool = True, want_info: bool = True) -> None:
        """Each output only while wanted (each image is a 1.2 MB serialisation at 640x480).
        The images are the frame's own new arrays, so the messages hold them without a copy
        (``copy=False``: rclpy's publish copies them once into the C message). Depth and confidence
        first: depth_fusion waits for both, and a publish to another process takes 0.6 ms or more
        per image (docs/pipeline.md, "Multi-process"), so the disparity (for the recorder and
        viewers) and camera_info go after them. Except where the confidence is handed over to
        depth_fusion in this process (ros/local_tap.py): its set is then complete inside that
        publish call, which wakes depth_fusion's worker while this thread still needs the GIL for
        the rest of the frame, so the confidence goes last. The messages are the same either way."""
        confidence = (numpy_to_image(frame.confidence, '32FC1', header, copy=False)
                      if frame.confidence is not None and want_confidence else None)
        hands_over = getattr(self.pub_conf, 'hands_over', None)
        last = confidence is not None and hands_over is not None and hands_over(confidence)
        if frame.depth is not None and want_depth:
            self.pub_depth.publish(numpy_to_image(frame.depth, '32FC1', header, copy=False))
        if confidence is not None and not last:
            self.pub_conf.publish(confidence)
        if want_disparity:
            self.pub_disp.publish(self._disparity_msg(header, frame))
        if want_info:
            self.pub_info.publish(info_from_camera(frame.camera, header))
        if frame.points is not None:
            self.pub_points.publish(points_cloud(frame.points, frame.colour, header, self.p.points_layout))
        if last:
            self.pub_conf.publish(confidence)

    @staticmethod
    def _disparity_msg(header, frame: StereoFrame) -> DisparityImage:
        """DisparityImage filled as stereo_image_proc fills it."""
        msg = DisparityImage()
        msg.header = header
        # disparity minus (cx_l - cx_r), so that depth = f * t / d; invalid pixels hold
        # (min_disparity - 1) minus the same offset, below every valid value
        stereo = frame.stereo
        out = np.subtract(frame.disparity, np.float32(stereo.cx_offset), dtype=np.float32)   # a new array
        cv2.patchNaNs(out, float(frame.min_disparity - 1 - stereo.cx_offset))  # in place, one pass
        msg.image = numpy_to_image(out, '32FC1', header, copy=False)
        msg.f = float(stereo.focal)
        msg.t = float(stereo.baseline)
        x, y, w, h = frame.valid_window
        msg.valid_window = RegionOfInterest(x_offset=int(x), y_offset=int(y), width=int(w), height=int(h))
        msg.min_disparity = float(frame.min_disparity)
        msg.max_disparity = float(frame.max_disparity)
        msg.delta_d = float(frame.delta_d)
        return msg

    def diagnostic_values(self):
        p = self.chain.params
        values = {'backend': self.chain.backend_name, 'algorithm': p.algorithm_name,
                  'disparity_range': p.disparity_range,
                  'sync_dropped': self.inputs.dropped, 'image_transport': self.p.image_transport}
        if self.timings:
            a = np.asarray(self.timings)
            t = np.median(a, axis=0)
            # a frame's time on the worker (not its wait for it): the matcher and the rest (conversions,
            # rectification, confidence, depth, messages, publishing); issue 21: the rest <= 10 %.
            # The rest is each frame's own (frame - matcher), then the median: the difference of the
            # two medians mixes frames, and the matcher's spread (tens of ms under load) swamped it
            rest = a[:, 0] - a[:, 1]
            values['frame_ms'] = round(float(t[0]) * 1e3, 2)
            values['matcher_ms'] = round(float(t[1]) * 1e3, 2)
            values['node_overhead_ms'] = round(float(np.median(rest)) * 1e3, 2)
            values['node_overhead_share'] = round(float(np.median(rest / np.maximum(a[:, 0], 1e-9))), 3)
            values['worker_wait_ms'] = round(float(t[2]) * 1e3, 2)
            values['outputs_ms'] = round(float(t[3]) * 1e3, 2)  # building and publishing the outputs
            values['worker_cpu_ms'] = round(float(t[4]) * 1e3, 2)  # this thread only (not OpenCV's pool)
            # this thread's CPU outside the matcher: the rest's own work, without its waits for a
            # core or the GIL (which a loaded machine lengthens; the wall figures above include them)
            values['node_overhead_cpu_ms'] = round(float(t[5]) * 1e3, 2)
        return values

    def shutdown(self, **join) -> None:   # join: timeout or deadline (DepthmarksNode.shutdown)
        super().shutdown(**join)
        self.chain.close()


NODE_CLASS = StereoDepthNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
