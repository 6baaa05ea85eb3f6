"""Record topics to an MCAP file (ROS 2 profile: ros2msg schemas, CDR messages).

Messages are taken serialized (raw subscriptions) and written as they are, so recording costs no
deserialization; the file opens in Foxglove Studio and plays with `ros2 bag play FILE.mcap`.
Beside it, ``metadata.yaml`` (rosbag2 metadata, version 5 so that Humble and later read it) makes
the folder a rosbag2 bag: `ros2 bag info FOLDER`, `ros2 bag play FOLDER`.
The header stamp is read from the CDR bytes of stamped messages for latency statistics.
"""
from __future__ import annotations

import struct
import threading
import time
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from depthmarks_ros.pipeline.msgdefs import schema_text

# types whose first field is std_msgs/Header (CDR: 4-byte encapsulation, then sec, nanosec)
STAMPED = {'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'sensor_msgs/msg/PointCloud2',
           'stereo_msgs/msg/DisparityImage', 'geometry_msgs/msg/PoseWithCovarianceStamped',
           'diagnostic_msgs/msg/DiagnosticArray'}


def cdr_stamp_ns(data: bytes) -> Optional[int]:
    """Header stamp of a CDR-serialized stamped message (little or big endian encapsulation)."""
    if len(data) < 12:
        return None
    little = data[1] == 1
    sec, nsec = struct.unpack_from('<iI' if little else '>iI', data, 4)
    return sec * 1_000_000_000 + nsec


class _Cdr:
    """Little-endian CDR (XCDR1) writer: alignment counts from after the 4-byte encapsulation header."""

    def __init__(self):
        self.buf = bytearray(b'\x00\x01\x00\x00')

    def _align(self, n: int) -> None:
        self.buf += b'\x00' * ((-(len(self.buf) - 4)) % n)

    def put(self, fmt: str, *values) -> None:
        self._align(struct.calcsize('<' + fmt[0]))
        self.buf += struct.pack('<' + fmt, *values)

    def string(self, text: str) -> None:
        data = text.encode() + b'\x00'
        self.put('I', len(data))
        self.buf += data


def tf_message_cdr(transforms, stamp_ns: int) -> bytes:
    """tf2_msgs/msg/TFMessage in CDR, for ``transforms`` (objects with parent, child, translation
    (x, y, z) and rotation (x, y, z, w)), every one stamped ``stamp_ns`` (written without tf2_msgs,
    which is not on PyPI)."""
    w = _Cdr()
    w.put('I', len(transforms))
    sec, nsec = divmod(int(stamp_ns), 1_000_000_000)
    for t in transforms:
        w.put('iI', sec, nsec)
        w.string(t.parent)
        w.string(t.child)
        w.put('ddd', *(float(v) for v in t.translation))
        w.put('dddd', *(float(v) for v in t.rotation))
    return bytes(w.buf)


# rosbag2 offered_qos_profiles of a latched topic (/tf_static): reliable, transient local, keep last 1
LATCHED_QOS = ('- history: 1\n  depth: 1\n  reliability: 1\n  durability: 1\n'
               '  deadline:\n    sec: 0\n    nsec: 0\n  lifespan:\n    sec: 0\n    nsec: 0\n'
               '  liveliness: 1\n  liveliness_lease_duration:\n    sec: 0\n    nsec: 0\n'
               '  avoid_ros_namespace_conventions: false\n')


def fully_qualified(topic: str) -> str:
    """'stereo/depth' -> '/stereo/depth' (topic names as `ros2 bag record` writes them)."""
    return '/' + topic.lstrip('/')


class McapRecorder:
    """Thread-safe MCAP writer of serialized ROS 2 messages.

    ``write`` only queues: a background thread compresses (LZ4 chunks) and writes, so recording
    never blocks the executor that delivers messages to the nodes.
    """

    def __init__(self, path: str, max_queue: int = 2000):
        import queue
        from mcap.writer import CompressionType, Writer
        self._file = open(path, 'wb')
        self._writer = Writer(self._file, compression=CompressionType.LZ4)
        self._writer.start(profile='ros2', library='depthmarks_ros')
        self._lock = threading.Lock()
        self._queue = queue.Queue(max_queue)
        self.dropped = 0
        self._thread = threading.Thread(target=self._drain, name='mcap-writer', daemon=True)
        self._thread.start()
        self._schemas: Dict[str, int] = {}
        self._channels: Dict[str, int] = {}
        self._seq: Dict[str, int] = defaultdict(int)
        self._types: Dict[str, str] = {}
        self._qos: Dict[str, str] = {}
        self._first_ns: Optional[int] = None
        self._last_ns: Optional[int] = None
        self.path = path
        self.closed = False

    def channel(self, topic: str, type_name: str, offered_qos: str = '') -> int:
        """Register ``topic``; ``offered_qos``: rosbag2's offered_qos_profiles YAML (e.g.
        :data:`LATCHED_QOS` for /tf_static, so that `ros2 bag play` offers it transient-local)."""
        topic = fully_qualified(topic)
        with self._lock:
            if topic not in self._channels:
                if type_name not in self._schemas:
                    self._schemas[type_name] = self._writer.register_schema(
                        name=type_name, encoding='ros2msg', data=schema_text(type_name).encode())
                self._channels[topic] = self._writer.register_channel(
                    topic=topic, message_encoding='cdr', schema_id=self._schemas[type_name],
                    metadata={'offered_qos_profiles': offered_qos} if offered_qos else {})
                self._types[topic] = type_name
                self._qos[topic] = offered_qos
            return self._channels[topic]

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: Optional[int] = None) -> None:
        import queue
        if self.closed:
            return
        try:
            self._queue.put_nowait((fully_qualified(topic), data, log_time_ns, publish_time_ns or log_time_ns))
        except queue.Full:
            self.dropped += 1  # the disk cannot keep up: drop rather than grow without bound

    def _drain(self) -> None:
        from depthmarks_ros.ros.worker import lower_thread_priority, set_os_thread_name
        set_os_thread_name('mcap-writer')
        # off the hot path: compressing and writing yields the cores to the nodes (nothing waits for it)
        lower_thread_priority(10)
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, data, log_time, publish_time = item
            with self._lock:
                cid = self._channels[topic]
                self._writer.add_message(channel_id=cid, log_time=log_time, data=data,
                                         publish_time=publish_time, sequence=self._seq[topic])
                self._seq[topic] += 1
                self._first_ns = log_time if self._first_ns is None else min(self._first_ns, log_time)
                self._last_ns = log_time if self._last_ns is None else max(self._last_ns, log_time)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.put(None)
        self._thread.join()
        with self._lock:
            self._writer.finish()
            self._file.close()
            self._write_bag_metadata()

    def _write_bag_metadata(self) -> None:
        """rosbag2 metadata.yaml (version 5) for the recording, in its folder."""
        import os
        import yaml
        count = sum(self._seq.values())
        start = self._first_ns or 0
        duration = (self._last_ns - start) if self._last_ns is not None else 0
        name = os.path.basename(self.path)
        info = {
            'version': 5, 'storage_identifier': 'mcap', 'relative_file_paths': [name],
            'duration': {'nanoseconds': duration}, 'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': count,
            'topics_with_message_count': [
                {'topic_metadata': {'name': topic, 'type': type_name, 'serialization_format': 'cdr',
                                    'offered_qos_profiles': self._qos.get(topic, '')},
                 'message_count': self._seq[topic]}
                for topic, type_name in self._types.items()],
            'compression_format': '', 'compression_mode': '',
            'files': [{'path': name, 'starting_time': {'nanoseconds_since_epoch': start},
                       'duration': {'nanoseconds': duration}, 'message_count': count}],
        }
        with open(os.path.join(os.path.dirname(os.path.abspath(self.path)), 'metadata.yaml'), 'w') as f:
            yaml.safe_dump({'rosbag2_bagfile_information': info}, f, sort_keys=False)


class TopicStats:
    """Counts, arrival times and stamp-to-arrival latency per topic; keeps the last messages:
    ``keep_last`` of each topic, ``keep_last_of[topic]`` of the topics named there (a run keeps 30
    of the ones it scores at equal stamps and a few of the rest: 30 of every 640x480 topic held
    ~0.6 GB, a recorded-only one filling up over 30 s at 1 Hz)."""

    def __init__(self, keep_last: int = 30, keep_last_of: Optional[Dict[str, int]] = None):
        self._lock = threading.Lock()
        self.count: Dict[str, int] = defaultdict(int)
        self.arrivals: Dict[str, List[float]] = defaultdict(list)
        self.latency: Dict[str, List[float]] = defaultdict(list)
        self.last: Dict[str, List[Tuple[int, bytes]]] = defaultdict(list)
        self.keep_last = keep_last
        self.keep_last_of = dict(keep_last_of or {})

    def add(self, topic: str, data: bytes, stamp_ns: Optional[int], now_ns: int) -> None:
        with self._lock:
            self.count[topic] += 1
            self.arrivals[topic].append(time.monotonic())
            if stamp_ns:
                self.latency[topic].append((now_ns - stamp_ns) * 1e-6)
            lst = self.last[topic]
            lst.append((stamp_ns or 0, data))
            if len(lst) > self.keep_last_of.get(topic, self.keep_last):
                del lst[0]
