"""CPU time of processes and threads from /proc (Linux; ROS-free). Returns None elsewhere.

Used by the runner to report each node's CPU share: a node's worker threads (single process)
or a node's whole process (multi-process), and every thread of a process grouped by what it is
(:meth:`CpuMeter` ``groups``): the nodes' workers name their OS threads
(:func:`depthmarks_ros.ros.worker.set_os_thread_name`), and the threads a native library starts
from a worker (OpenCV's pool, the stereo strip pool) inherit that name, so they count with the node.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Tuple

_TICK = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100


def _stat_seconds(path: str) -> Optional[float]:
    try:
        with open(path) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK   # fields 14, 15 of stat(5), after pid and comm


def minor_faults(pid: int) -> Optional[int]:
    """Minor page faults of a process so far (field 10 of stat(5)); None where /proc is missing."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int, tid: Optional[int] = None) -> Optional[float]:
    """utime + stime of a process (all its threads) or of one of its threads, in seconds."""
    return _stat_seconds(f'/proc/{pid}/stat' if tid is None else f'/proc/{pid}/task/{tid}/stat')


def thread_seconds(pid: int) -> Dict[int, Tuple[str, float]]:
    """{tid: (OS thread name, CPU seconds)} of every live thread of ``pid`` ({} where /proc is missing)."""
    out: Dict[int, Tuple[str, float]] = {}
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f'/proc/{pid}/task/{tid}/comm') as f:
                comm = f.read().strip()
        except OSError:
            continue
        sec = _stat_seconds(f'/proc/{pid}/task/{tid}/stat')
        if sec is not None:
            out[int(tid)] = (comm, sec)
    return out


class CpuMeter:
    """CPU seconds per label between :meth:`start` and :meth:`stop`.

    ``targets``: {label: (pid, tid or None)}; shares are CPU seconds / wall seconds
    (1.0 = one core busy). ``groups``: {pid: label_of(tid, os_thread_name) -> label}: every thread
    of that process counted under its label (:meth:`stop_groups`); a thread that ended during the
    window is missed, one that started counts from zero. ``fault_rates``: minor page faults per
    second of each process of ``groups`` (by pid; a process that faults in fresh pages for every
    message it receives shows here, see ros/process.py).
    """

    def __init__(self, targets: Dict[str, tuple],
                 groups: Optional[Dict[int, Callable[[int, str], str]]] = None):
        self.targets = dict(targets)
        self.groups = dict(groups or {})
        self._t0: Dict[str, Optional[float]] = {}
        self._threads0: Dict[int, Dict[int, Tuple[str, float]]] = {}
        self.group_shares: Dict[str, float] = {}
        self.fault_rates: Dict[int, float] = {}
        self._faults0: Dict[int, Optional[int]] = {}
        self._wall0 = 0.0

    def start(self, wall: float) -> None:
        self._wall0 = wall
        self._t0 = {k: cpu_seconds(*v) for k, v in self.targets.items()}
        self._threads0 = {pid: thread_seconds(pid) for pid in self.groups}
        self._faults0 = {pid: minor_faults(pid) for pid in self.groups}

    def stop(self, wall: float) -> Dict[str, Optional[float]]:
        dt = max(wall - self._wall0, 1e-6)
        out: Dict[str, Optional[float]] = {}
        for k, v in self.targets.items():
            now, before = cpu_seconds(*v), self._t0.get(k)
            out[k] = None if now is None or before is None else round((now - before) / dt, 3)
        self.group_shares = self._groups(dt)
        self.fault_rates = {}
        for pid, before in self._faults0.items():
            now = minor_faults(pid)
            if now is not None and before is not None:
                self.fault_rates[pid] = round((now - before) / dt, 1)
        return out

    def _groups(self, dt: float) -> Dict[str, float]:
        shares: Dict[str, float] = {}
        for pid, label_of in self.groups.items():
            before = self._threads0.get(pid, {})
            for tid, (comm, sec) in thread_seconds(pid).items():
                label = label_of(tid, comm)
                used = sec - before.get(tid, (comm, 0.0))[1]
                shares[label] = shares.get(label, 0.0) + used / dt
        return {k: round(v, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
