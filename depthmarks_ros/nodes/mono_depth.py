"""mono_depth: relative inverse depth from a monocular depth network, and metric depth aligned to
sparse metric depth (LiDAR projection or stereo). See docs/mono_depth.md.

Without usable weights the node says what it looked for and how to get them, then idles (reports
ERROR on /diagnostics) instead of exiting or retrying the network.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from sensor_msgs.msg import Image

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import depth_image_to_metres, image_to_rgb8, numpy_to_image
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.mono.alignment import TemporalAligner
from depthmarks_ros.core.mono.models import ModelLoadError, ModelNotFound, NotADepthModel, load_depth_model
from depthmarks_ros.params.mono_depth import MonoDepthParams
from depthmarks_ros.ros.node_base import ERROR, WARN, DepthmarksNode, EXIT_DEADLINE_S, run_node
from depthmarks_ros.pipeline import node_inputs
from depthmarks_ros.ros.synced_inputs import inputs_of


@dataclass(frozen=True)
class MonoMessages:
    image: Any   # Image or CompressedImage (the reference is a side input, see SyncedInputs.nearest)


class MonoDepthNode(DepthmarksNode):
    PARAMS = MonoDepthParams
    p: MonoDepthParams

    def __init__(self, **kwargs):
        super().__init__('mono_depth', **kwargs)
        qos = self.output_qos()
        self.pub_inv = self.create_publisher(Image, 'mono/inverse_depth', qos)
        self.pub_depth = self.create_image_publisher('mono/depth', qos, 'depth')
        self.aligner = TemporalAligner(self.p.smoothing, self.p.min_reference_points)
        self.state = 'loading model'
        self.alignment_note = 'no reference yet'
        self.model = None
        try:
            self.model = load_depth_model(self.p.model, self.p.device, self.p.input_size, self.p.half,
                                          self.p.allow_download, self.p.midas_repo, self.p.checkpoint)
        except (ModelNotFound, NotADepthModel, ModelLoadError, RuntimeError) as exc:
            self.state = f'no model: {exc}'
            self.get_logger().error(f'mono_depth is idle: {exc}')
            return
        self.state = f'running {self.model.info.source}'
        inputs, side = inputs_of(node_inputs.mono_depth(self.p))
        self.inputs = self.synced_inputs(inputs, MonoMessages, self._process, side=side)
        self.worker = self.inputs.worker

    def on_parameters_changed(self, names):
        self.aligner.alpha, self.aligner.min_points = self.p.smoothing, self.p.min_reference_points

    def _process(self, msgs: 'MonoMessages') -> None:
        msg = msgs.image
        start = time.monotonic()
        try:
            rgb = image_to_rgb8(msg)
        except ConversionError as exc:
            self.reject('input', str(exc))
            return
        if min(rgb.shape[:2]) < 8:
            self.reject('size', f'image {rgb.shape[1]}x{rgb.shape[0]} is too small for the network')
            return
        rel = self.model.predict(rgb)
        header = msg.header
        self.pub_inv.publish(numpy_to_image(rel, '32FC1', header))
        ref_msg = (self.inputs.nearest('reference', stamp_ns(header), self.p.reference_max_age)
                   if self.p.reference_topic else None)
        ref = None
        if ref_msg is not None:
            try:
                ref = depth_image_to_metres(ref_msg)
                if ref.shape != rel.shape:
                    self.reject('ref_size', f'reference depth is {ref.shape[1]}x{ref.shape[0]}, image '
                                            f'{rel.shape[1]}x{rel.shape[0]}: publishing inverse depth only')
                    ref = None
            except ConversionError as exc:
                self.reject('ref', f'reference depth: {exc}')
        align = self.aligner.update(rel, ref)
        if align is None:
            self.alignment_note = ('no metric reference' if ref is None
                                   else f'too few reference points (< {self.p.min_reference_points})')
        else:
            self.alignment_note = (f'scale {align.scale:.4g} shift {align.shift:.4g} residual {align.residual:.4g} '
                                   f'1/m, {align.inliers}/{align.n_reference} inliers')
            self.pub_depth.publish(numpy_to_image(align.apply(rel, self.p.max_depth), '32FC1', header))
        self.stats.output(self.latency_since(header), time.monotonic() - start)

    def diagnostic_values(self):
        values = {'state': self.state, 'alignment': self.alignment_note}
        if self.model is None:
            values.update(status_level=ERROR, status_message=self.state)
        elif self.aligner.current is None and self.stats.frames_out:
            values.update(status_level=WARN, status_message='publishing inverse depth only: ' + self.alignment_note)
        return values


NODE_CLASS = MonoDepthNode


def main(args=None) -> int:
    return run_node(NODE_CLASS, args, exit_deadline_s=EXIT_DEADLINE_S)


if __name__ == '__main__':
    sys.exit(main())
