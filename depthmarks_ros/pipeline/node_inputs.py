"""The topics each node subscribes, from its parameters, written once: the nodes build their
subscriptions from these lists (through :func:`depthmarks_ros.ros.synced_inputs.input_of`) and
:attr:`graph.NodeSpec.inputs` (which planned node reads which topic, the per-topic publication rules
of pipeline/publication.py) reads the same lists. ROS-free (no rclpy).

``p``: the node's parameters, a mapping (:func:`graph.merged_parameters`) or the node's parameter
dataclass (``node.p``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

IMAGE, INFO, CLOUD = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/PointCloud2'


@dataclass(frozen=True)
class InputTopic:
    """One subscription: ``role`` (the field of the node's set dataclass), message type name, base
    topic, image transport ('raw', 'compressed', 'compressedDepth'; image_transport names the topic
    ``<topic>/<transport>``), ``side``: kept unsynchronised (mono_depth's reference)."""
    role: str
    type_name: str
    topic: str
    transport: str = 'raw'
    side: bool = False

    @property
    def subscribed_topic(self) -> str:
        return transported(self.topic, self.transport)


#: image_transport's transports of this package: the compressed twin's transport of each image kind
#: (ros/image_publisher.py publishes them, inputs subscribe them)
TWIN_TRANSPORT = {'image': 'compressed', 'depth': 'compressedDepth'}


def transported(topic: str, transport: object) -> str:
    """The topic an input subscribes with an image_transport-style transport ('raw': the topic).

    image_transport hangs the transport's topic under the RESOLVED base topic (remaps applied,
    image_common#326): give the resolved base (``Node.resolve_topic_name``) where remaps may apply;
    pipeline/graph.py :func:`resolve_topic` follows the same rule for the graph."""
    tr = str(transport or 'raw')
    return topic if tr == 'raw' else f'{topic.rstrip("/")}/{tr}'


def _get(p: Any, name: str) -> Any:
    return p.get(name) if isinstance(p, Mapping) else getattr(p, name, None)


def _tr(p: Any, name: str) -> str:
    return str(_get(p, name) or 'raw')


def stereo_depth(p: Any) -> Tuple[InputTopic, ...]:
    tr = _tr(p, 'image_transport')
    pair = (InputTopic('left', IMAGE, 'stereo/left/image_raw', tr), InputTopic('right', IMAGE, 'stereo/right/image_raw', tr))
    if _get(p, 'calibration_file'):
        return pair
    return pair + (InputTopic('left_info', INFO, 'stereo/left/camera_info'),
                   InputTopic('right_info', INFO, 'stereo/right/camera_info'))


def depth_fusion(p: Any) -> Tuple[InputTopic, ...]:
    dtr = _tr(p, 'depth_transport')
    out = (InputTopic('image', IMAGE, 'camera/image_raw', _tr(p, 'image_transport')),
           InputTopic('info', INFO, 'camera/camera_info'), InputTopic('cloud', CLOUD, 'lidar/points'))
    if _get(p, 'use_stereo'):   # the confidence is not a depth: always raw
        out += (InputTopic('stereo', IMAGE, 'stereo/depth', dtr), InputTopic('confidence', IMAGE, 'stereo/confidence'))
    if _get(p, 'use_mono'):
        out += (InputTopic('mono', IMAGE, 'mono/depth', dtr),)
    return out


def camera(p: Any) -> Tuple[InputTopic, ...]:
    """face_landmarks, body_pose (ros/camera_inputs.py): the camera and, when ``depth_topic`` names
    one, a depth image."""
    depth = str(_get(p, 'depth_topic') or '')
    out = (InputTopic('image', IMAGE, 'camera/image_raw', _tr(p, 'image_transport')),
           InputTopic('info', INFO, 'camera/camera_info'))
    return out + ((InputTopic('depth', IMAGE, depth, _tr(p, 'depth_transport')),) if depth else ())


def mono_depth(p: Any) -> Tuple[InputTopic, ...]:
    ref = str(_get(p, 'reference_topic') or '')
    out = (InputTopic('image', IMAGE, 'camera/image_raw', _tr(p, 'image_transport')),)
    return out + ((InputTopic('reference', IMAGE, ref, _tr(p, 'depth_transport'), side=True),) if ref else ())


def stamp_merge_shards(p: Any) -> Tuple[Tuple[str, int, str], ...]:
    """stamp_merge: (merged topic, instance k, the topic instance k publishes it on) for each topic
    and instance."""
    return tuple((t, k, f'{t}/shard_{k}') for t in (_get(p, 'topics') or ())
                 for k in range(int(_get(p, 'instances') or 0)))


def stamp_merge(p: Any) -> Tuple[InputTopic, ...]:
    # the type is not needed by NodeSpec.inputs (the node subscribes with its message_types)
    return tuple(InputTopic(f'shard_{k}', '', shard) for _, k, shard in stamp_merge_shards(p))


def subscribed(inputs: Tuple[InputTopic, ...]) -> Tuple[str, ...]:
    """The relative topics a list of inputs subscribes."""
    return tuple(i.subscribed_topic for i in inputs)
