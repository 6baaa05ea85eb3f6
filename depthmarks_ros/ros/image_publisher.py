"""Image outputs with image_transport-style compressed twins.

image_transport's ``compressed`` and ``compressedDepth`` plugins publish, next to every raw
``<topic>``, a ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` (JPEG/PNG: colour and
mono images) or ``<topic>/compressedDepth`` (16-bit PNG: depth images), ``<topic>`` being the raw
topic's resolved name (namespace and remaps applied, as image_transport does: a remapped output
takes its twin along), and encode only while
someone subscribes. :class:`ImagePublisher` does the same with the codec in
:mod:`depthmarks_ros.convert.compressed`, so a node on another host (or RViz, Foxglove,
``image_transport republish``) can take the compressed stream and only compressed bytes cross
the network. Nothing is encoded while the twin has no subscriber. How the twins encode comes
from the node's parameters (``compressed_*``, params/base.py ``CompressedImageParams`` and
``CompressedDepthParams``), read for every encoded frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from sensor_msgs.msg import CompressedImage, Image

from depthmarks_ros.convert.compressed import encode_compressed, encode_compressed_depth
from depthmarks_ros.convert.image import image_to_numpy
from depthmarks_ros.params.base import CompressedDepthParams, CompressedImageParams
from depthmarks_ros.pipeline.node_inputs import TWIN_TRANSPORT, transported

# settings field -> the node parameter it comes from (params/base.py: names, defaults and ranges there)
PARAMETER_OF = {'image_format': 'compressed_format', 'jpeg_quality': 'compressed_jpeg_quality',
                'png_level': 'compressed_png_level', 'depth_png_level': 'compressed_depth_png_level',
                'depth_max': 'compressed_depth_max', 'depth_quantization': 'compressed_depth_quantization'}
_DEFAULTS = {**CompressedImageParams.defaults(), **CompressedDepthParams.defaults()}


@dataclass(frozen=True)
class CompressionSettings:
    """How the twins encode; the defaults are the parameters' (image_transport_plugins' own)."""
    image_format: str = _DEFAULTS['compressed_format']            # jpeg | png, for <topic>/compressed
    jpeg_quality: int = _DEFAULTS['compressed_jpeg_quality']
    png_level: int = _DEFAULTS['compressed_png_level']
    depth_png_level: int = _DEFAULTS['compressed_depth_png_level']  # compressedDepth
    depth_max: float = _DEFAULTS['compressed_depth_max']            # m; inverse depth stored up to here
    depth_quantization: float = _DEFAULTS['compressed_depth_quantization']

    @classmethod
    def from_params(cls, p) -> 'CompressionSettings':
        """From a node's parameters (``compressed_*`` fields; a spec without them keeps the defaults)."""
        return cls(**{f: getattr(p, name, _DEFAULTS[name]) for f, name in PARAMETER_OF.items()})


class ImagePublisher:
    """``publish(msg)`` publishes the raw Image and, while subscribed, its compressed twin.

    ``kind``: ``'image'`` (twin ``<topic>/compressed``) or ``'depth'`` (32FC1 / 16UC1; twin
    ``<topic>/compressedDepth``). ``get_subscription_count()`` counts both, so
    ``DepthmarksNode.wanted()`` keeps working (an output consumed only compressed is still wanted).
    ``settings``: fixed :class:`CompressionSettings`, or a callable giving the current ones (the
    node's parameters) for each encoded frame.
    """

    def __init__(self, node, topic: str, qos, kind: str = 'image',
                 settings: Union[CompressionSettings, Callable[[], CompressionSettings], None] = None):
        if kind not in ('image', 'depth'):
            raise ValueError(f"kind must be 'image' or 'depth' (got {kind!r})")
        self.kind = kind
        fixed = settings or CompressionSettings()
        self._settings = settings if callable(settings) else (lambda: fixed)
        self.raw = node.create_publisher(Image, topic, qos)
        # image_transport's rule: the twin hangs under the raw topic's RESOLVED name (namespace and
        # remaps applied: ``stereo/depth:=/foo`` moves the twin to /foo/compressedDepth); a remap
        # rule naming that full twin name still applies to it (create_publisher resolves it again)
        self.twin_topic = transported(self.raw.topic_name, TWIN_TRANSPORT[kind])
        self.twin = node.create_publisher(CompressedImage, self.twin_topic, qos)
        self.encoded = 0

    @property
    def topic_name(self) -> str:
        return self.raw.topic_name

    @property
    def settings(self) -> CompressionSettings:
        return self._settings()

    def get_subscription_count(self) -> int:
        return self.raw.get_subscription_count() + self.twin.get_subscription_count()

    def wanted_at(self, stamp_ns: int) -> bool:
        """A compressed subscriber, or the raw topic's wanted_at (ros/local_tap.py) / subscribers."""
        if self.twin.get_subscription_count() > 0:
            return True
        at = getattr(self.raw, 'wanted_at', None)
        return at(stamp_ns) if at is not None else self.raw.get_subscription_count() > 0

    def publish(self, msg: Image) -> None:
        self.raw.publish(msg)
        if self.twin.get_subscription_count() > 0:
            self.twin.publish(self.compress(msg))

    def compress(self, msg: Image) -> CompressedImage:
        """The twin message of ``msg`` (raises ConversionError for an encoding it cannot hold)."""
        s = self.settings
        arr = image_to_numpy(msg)
        if self.kind == 'depth':
            out = encode_compressed_depth(arr, msg.encoding, msg.header, depth_max=s.depth_max,
                                          depth_quantization=s.depth_quantization, png_level=s.depth_png_level)
        else:
            out = encode_compressed(arr, msg.encoding, s.image_format, msg.header,
                                    jpeg_quality=s.jpeg_quality, png_level=s.png_level)
        self.encoded += 1
        return out

    def destroy(self, node) -> None:
        node.destroy_publisher(self.raw)
        node.destroy_publisher(self.twin)
