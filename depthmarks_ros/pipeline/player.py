"""Play an MCAP recording (ROS 2 profile, CDR) into the pipeline: messages are published as
serialized bytes on their recorded topics, at the recorded pace (relative log times)."""
from __future__ import annotations

import time
from typing import Optional

from rclpy.node import Node


def mcap_file(path: str) -> str:
    """A .mcap file, or the first .mcap file of a rosbag2 folder (sqlite3 .db3 bags are not read)."""
    import glob
    import os
    if not os.path.isdir(path):
        return path
    files = sorted(glob.glob(os.path.join(path, '*.mcap')))
    if not files:
        raise ValueError(f'{path}: no .mcap file in this folder (convert sqlite3 bags with `ros2 bag convert`)')
    return files[0]


class McapPlayer(Node):
    def __init__(self, path: str, topics: Optional[list] = None, loop: bool = False, **kwargs):
        super().__init__('mcap_player', **kwargs)
        from mcap.reader import make_reader
        from depthmarks_ros.pipeline.registry import message_class
        path = mcap_file(path)
        self._path, self._loop = path, loop
        with open(path, 'rb') as f:
            reader = make_reader(f)
            summary = reader.get_summary()
            if summary is None:
                raise ValueError(f'{path}: MCAP file has no summary (truncated?)')
            self._pubs = {}
            for ch in summary.channels.values():
                schema = summary.schemas.get(ch.schema_id)
                if schema is None or ch.message_encoding != 'cdr':
                    continue
                if topics and ch.topic.lstrip('/') not in {t.lstrip('/') for t in topics}:
                    continue
                try:
                    cls = message_class(schema.name)
                except (ImportError, AttributeError, ValueError):
                    self.get_logger().warning(f'{path}: skipping {ch.topic}: unknown type {schema.name}')
                    continue
                self._pubs[ch.id] = self.create_publisher(cls, ch.topic, 10)
        self._messages = self._iterate()
        self._t0_wall = None
        self._t0_log = None
        self.published = 0
        self.finished = False
        self.create_timer(0.005, self._tick)
        self._pending = None

    def _iterate(self):
        from mcap.reader import make_reader
        while True:
            with open(self._path, 'rb') as f:
                for _schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
                    if channel.id in self._pubs:
                        yield channel.id, message.log_time, message.data
            if not self._loop:
                return
            self._t0_wall = None

    def _tick(self) -> None:
        now = time.monotonic()
        while True:
            if self._pending is None:
                try:
                    self._pending = next(self._messages)
                except StopIteration:
                    self.finished = True
                    return
            cid, log_time, data = self._pending
            if self._t0_wall is None:
                self._t0_wall, self._t0_log = now, log_time
            if (log_time - self._t0_log) * 1e-9 > now - self._t0_wall:
                return
            self._pubs[cid].publish(data)
            self.published += 1
            self._pending = None
