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


class FirstOfPeriod:
    """The first stamp of each period (``stamp // period_ns``): what `depthmarks run`'s recorder
    keeps at its record rate, and what the outputs built only for it are built for (local tap,
    RecordedPublisher, ``DepthmarksNode.wanted_every``, the recorder's own keep logic).
    ``period_ns`` <= 0: every stamp. Not thread-safe: one caller per instance."""

    def __init__(self, period_ns: int = 0):
        self.period_ns = int(period_ns)
        self.served = None           # the period of the last stamp marked

    def wanted(self, ns: int) -> bool:
        """Whether ``ns`` starts a period not yet marked (no side effect). A stamp <= 0 (a source
        that does not stamp) is always wanted: its period says nothing."""
        return self.period_ns <= 0 or int(ns) <= 0 or int(ns) // self.period_ns != self.served

    def mark(self, ns: int) -> None:
        """``ns``'s period is served (a stamp <= 0 marks nothing)."""
        if self.period_ns > 0 and int(ns) > 0:
            self.served = int(ns) // self.period_ns

    def take(self, ns: int) -> bool:
        """:meth:`wanted`, and mark it when so."""
        if not self.wanted(ns):
            return False
        self.mark(ns)
        return True
