"""Image outputs with image_transport-style compressed twins.

image_transport's ``compressed`` and ``compressedDepth`` plugins publish, next to every raw
``<topic>``, a ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` (JPEG/PNG: colour and
mono images) or ``<topic>/compressedDepth`` (16-bit PNG: depth images), and encode only while
someone subscribes. :class:`ImagePublisher` does the same with the codec in
:mod:`depthmarks_ros.convert.compressed`, so a node on another host (or RViz, Foxglove,
``image_transport republish``) can take the compressed stream and only compressed bytes cross
the network. Nothing is encoded while the twin has no subscriber.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sensor_msgs.msg import CompressedImage, Image

from depthmarks_ros.convert.compressed import encode_compressed, encode_compressed_depth
from depthmarks_ros.convert.image import image_to_numpy


@dataclass(frozen=True)
class CompressionSettings:
    """How the twins encode (fixed defaults for now: not node parameters yet)."""
    image_format: str = 'jpeg'       # jpeg | png, for <topic>/compressed
    jpeg_quality: int = 95
    png_level: int = 3
    depth_max: float = 10.0          # m; compressedDepth stores inverse depth up to here
    depth_quantization: float = 100.0


class ImagePublisher:
    """``publish(msg)`` publishes the raw Image and, while subscribed, its compressed twin.

    ``kind``: ``'image'`` (twin ``<topic>/compressed``) or ``'depth'`` (32FC1 / 16UC1; twin
    ``<topic>/compressedDepth``). ``get_subscription_count()`` counts both, so
    ``DepthmarksNode.wanted()`` keeps working (an output consumed only compressed is still wanted).
    """

    def __init__(self, node, topic: str, qos, kind: str = 'image',
                 settings: Optional[CompressionSettings] = None):
        if kind not in ('image', 'depth'):
            raise ValueError(f"kind must be 'image' or 'depth' (got {kind!r})")
        self.kind = kind
        self.settings = settings or CompressionSettings()
        self.raw = node.create_publisher(Image, topic, qos)
        suffix = 'compressedDepth' if kind == 'depth' else 'compressed'
        self.twin_topic = f'{topic}/{suffix}'
        self.twin = node.create_publisher(CompressedImage, self.twin_topic, qos)
        self.encoded = 0

    @property
    def topic_name(self) -> str:
        return self.raw.topic_name

    def get_subscription_count(self) -> int:
        return self.raw.get_subscription_count() + self.twin.get_subscription_count()

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
                                          depth_quantization=s.depth_quantization)
        else:
            out = encode_compressed(arr, msg.encoding, s.image_format, msg.header,
                                    jpeg_quality=s.jpeg_quality, png_level=s.png_level)
        self.encoded += 1
        return out

    def destroy(self, node) -> None:
        node.destroy_publisher(self.raw)
        node.destroy_publisher(self.twin)
