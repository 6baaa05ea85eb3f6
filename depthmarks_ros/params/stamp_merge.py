"""stamp_merge's parameters (docs/multihost.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from depthmarks_ros.core.params import param
from depthmarks_ros.params.base import CompressedDepthParams, CompressedImageParams, NodeParams


def _topics(value) -> Optional[str]:
    return None if value and all(value) else 'give at least one topic'


def _types(value) -> Optional[str]:
    from depthmarks_ros.pipeline.registry import message_class
    for name in value:
        try:
            message_class(name)
        except (ValueError, ImportError, AttributeError):
            return f'unknown message type {name!r} (pkg/msg/Type)'
    return None


@dataclass
class StampMergeParams(NodeParams, CompressedImageParams, CompressedDepthParams):
    """The compressed_* parameters encode the merged outputs' twins: give them the scaled-out node's values."""
    topics: List[str] = param(['mono/depth'], 'Output topics to merge (each from <topic>/shard_<k>)',
                              read_only=True, check=_topics, check_text='at least one topic')
    message_types: List[str] = param(['sensor_msgs/msg/Image'], 'Message type of each topic (pkg/msg/Type), one '
                                     'per topic or one for all', read_only=True, check=_types,
                                     check_text='known message types')
    instances: int = param(2, 'Number of instances (shard_count of the scaled-out node)', min=1, max=64,
                           read_only=True)
    max_wait: float = param(0.5, 'Longest a frame waits for the other instances (s)', min=0.01, max=10.0,
                            read_only=True)

    def cross_check(self) -> Optional[str]:
        if len(self.message_types) not in (1, len(self.topics)):
            return f'message_types has {len(self.message_types)} entries for {len(self.topics)} topics'
        return None
