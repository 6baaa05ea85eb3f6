"""CPU time of processes and threads from /proc (Linux; ROS-free). Returns None elsewhere.

Used by the runner to report each node's CPU share: a node's worker threads (single process)
or a node's whole process (multi-process).
"""
from __future__ import annotations

import os
from typing import Dict, Optional

_TICK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def cpu_seconds(pid: int, tid: Optional[int] = None) -> Optional[float]:
    """utime + stime of a process (all its threads) or of one of its threads, in seconds."""
    path = f'/proc/{pid}/stat' if tid is None else f'/proc/{pid}/task/{tid}/stat'
    try:
        with open(path) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK   # fields 14, 15 of stat(5), after pid and comm


class CpuMeter:
    """CPU seconds per label between :meth:`start` and :meth:`stop`.

    ``targets``: {label: (pid, tid or None)}; shares are CPU seconds / wall seconds
    (1.0 = one core busy).
    """

    def __init__(self, targets: Dict[str, tuple]):
        self.targets = dict(targets)
        self._t0: Dict[str, Optional[float]] = {}
        self._wall0 = 0.0

    def start(self, wall: float) -> None:
        self._wall0 = wall
        self._t0 = {k: cpu_seconds(*v) for k, v in self.targets.items()}

    def stop(self, wall: float) -> Dict[str, Optional[float]]:
        dt = max(wall - self._wall0, 1e-6)
        out: Dict[str, Optional[float]] = {}
        for k, v in self.targets.items():
            now, before = cpu_seconds(*v), self._t0.get(k)
            out[k] = None if now is None or before is None else round((now - before) / dt, 3)
        return out
