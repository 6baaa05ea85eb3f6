"""builtin_interfaces/Time <-> integer nanoseconds / float seconds."""
from __future__ import annotations


def stamp_ns(stamp) -> int:
    """Time message (or a header) to integer nanoseconds."""
    if hasattr(stamp, 'stamp'):
        stamp = stamp.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def stamp_sec(stamp) -> float:
    return stamp_ns(stamp) * 1e-9


def ns_to_stamp(ns: int):
    from builtin_interfaces.msg import Time
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(frame_id: str, ns: int):
    from std_msgs.msg import Header
    return Header(frame_id=frame_id, stamp=ns_to_stamp(ns))
