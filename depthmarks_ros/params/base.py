"""The parameters every depthmarks_ros node has (see depthmarks_ros/ros/node_base.py)."""
from __future__ import annotations

from dataclasses import dataclass

from depthmarks_ros.core.params import ParamSet, param


@dataclass
class NodeParams(ParamSet):
    output_reliability: str = param('reliable', 'QoS reliability of published outputs',
                                    choices=('reliable', 'best_effort'), read_only=True, cli=False)
    diagnostics_period: float = param(1.0, 'Seconds between /diagnostics messages', min=0.1, max=60.0,
                                      read_only=True, cli=False)
    log_throttle_period: float = param(5.0, 'Seconds between repeats of one bad-input message',
                                       min=0.0, max=600.0, cli=False)


BASE_PARAMETERS = tuple(NodeParams.param_fields())


@dataclass
class InputParams(ParamSet):
    """Nodes with synchronised inputs (``DepthmarksNode.synced_inputs``, ros/synced_inputs.py)."""
    input_warn_after: float = param(3.0, 'Seconds before /diagnostics reports an input that never arrives, '
                                    'stops, or never pairs with the others', min=0.2, max=600.0, cli=False)
    # 8.4 Mpx holds 4K UHD; a node's spec may lower it (stereo_depth)
    max_image_pixels: int = param(8_388_608, 'Images with more pixels (width x height) are refused before any '
                                  'work (one huge frame must not stall the node or exhaust memory)',
                                  min=1, max=2**31 - 1, cli=False)


@dataclass
class ImageTransportParams(ParamSet):
    image_transport: str = param('raw', "Camera images as 'raw' sensor_msgs/Image, or 'compressed' "
                                 'sensor_msgs/CompressedImage (JPEG/PNG) on <topic>/compressed',
                                 choices=('raw', 'compressed'), read_only=True, cli=False)


@dataclass
class DepthTransportParams(ParamSet):
    depth_transport: str = param('raw', "Depth images as 'raw' sensor_msgs/Image, or 'compressedDepth' "
                                 'CompressedImage on <topic>/compressedDepth', choices=('raw', 'compressedDepth'),
                                 read_only=True, cli=False)


@dataclass
class CompressedImageParams(ParamSet):
    """Nodes that publish camera-facing images: how their image_transport-style ``<topic>/compressed``
    twins encode (ros/image_publisher.py). Names and defaults are image_transport_plugins'
    (``compressed.format``, ``compressed.jpeg_quality``, ``compressed.png_level``) with ``_`` for the
    dot. Read for every encoded frame: a change applies from the next frame."""
    compressed_format: str = param('jpeg', 'Codec of the <topic>/compressed twins of image outputs',
                                   choices=('jpeg', 'png'), cli=False)
    compressed_jpeg_quality: int = param(95, 'JPEG quality of <topic>/compressed (higher: more bytes, closer '
                                         'to raw)', min=1, max=100, cli=False)
    compressed_png_level: int = param(3, 'PNG level of <topic>/compressed with compressed_format png '
                                      '(higher: fewer bytes, slower)', min=0, max=9, cli=False)


@dataclass
class CompressedDepthParams(ParamSet):
    """Nodes that publish depth images: how their ``<topic>/compressedDepth`` twins encode
    (image_transport_plugins' ``compressedDepth.png_level``, ``.depth_max``, ``.depth_quantization``)."""
    compressed_depth_png_level: int = param(9, 'PNG level of <topic>/compressedDepth (higher: fewer bytes, '
                                            'slower)', min=0, max=9, cli=False)
    compressed_depth_max: float = param(10.0, 'Depths at or beyond this (m) are invalid in <topic>/compressedDepth '
                                        '(its inverse-depth quantisation range)', min=0.1, max=1000.0, cli=False)
    compressed_depth_quantization: float = param(100.0, 'Depth quantisation of <topic>/compressedDepth (higher: '
                                                 'finer steps near, coarser far)', min=1.0, max=10000.0, cli=False)


@dataclass
class ShardParams(ParamSet):
    """Scaling a slow node out: several instances share one input (docs/multihost.md)."""
    shard_count: int = param(1, 'Instances sharing the input; this one processes the frames whose number '
                             'round(stamp / shard_period) is shard_index modulo shard_count (1 = every frame)',
                             min=1, max=64, read_only=True, cli=False)
    shard_index: int = param(0, 'This instance, 0 .. shard_count - 1', min=0, max=63, read_only=True, cli=False)
    shard_period: float = param(0.1, 'Nominal input period (s) that numbers the frames', min=0.001, max=10.0,
                                read_only=True, cli=False)

    def cross_check(self):
        if self.shard_index >= self.shard_count:
            return f'shard_index ({self.shard_index}) must be below shard_count ({self.shard_count})'
        return None


# every node's and the input conventions' parameters: not repeated in each config/<node>.yaml
COMMON_PARAMETERS = BASE_PARAMETERS + tuple(InputParams.param_fields()) + tuple(
    ImageTransportParams.param_fields()) + tuple(DepthTransportParams.param_fields()) + tuple(
    ShardParams.param_fields()) + tuple(
    CompressedImageParams.param_fields()) + tuple(CompressedDepthParams.param_fields())
