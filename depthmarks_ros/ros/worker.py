"""Latest-only processing (ROS-free): when a node is overloaded it drops old frames.

Subscription callbacks only :meth:`LatestWorker.submit` their input; one worker thread
processes the newest submitted item. An item still waiting when a newer one arrives is
dropped and counted, so latency never grows with load and memory stays bounded (one slot).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from typing import Any, Callable, Optional

_PR_SET_NAME = 15
_libc = None


def set_os_thread_name(name: str) -> None:
    """Name the calling thread in the OS (Linux: /proc/PID/task/TID/comm, `top -H`, py-spy), the
    first 15 bytes of ``name``. Threads a native library starts from this thread later (OpenCV,
    the stereo strip pool) inherit the name, so the CPU of a node's own pools is counted with it.
    Does nothing elsewhere."""
    global _libc
    if not sys.platform.startswith('linux'):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's nice value by ``nice`` (Linux: per thread; lower priority, which
    needs no privilege), for work that nothing waits for (the MCAP writer). Does nothing elsewhere."""
    if not sys.platform.startswith('linux'):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + int(nice)))
    except (OSError, AttributeError):
        pass


def os_thread_name(name: str) -> str:
    """What :func:`set_os_thread_name` makes of ``name`` (as /proc shows it)."""
    return name.encode()[:15].decode(errors='ignore')


class LatestWorker:
    def __init__(self, process: Callable[[Any], None], name: str = 'worker',
                 on_error: Optional[Callable[[BaseException], None]] = None):
        self._process = process
        self._on_error = on_error
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._stop = False
        self.submitted = 0
        self.processed = 0
        self.dropped = 0
        self.busy = False
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._started.wait(5.0)   # named in the OS before anyone looks (CPU accounting)

    @property
    def thread_name(self) -> str:
        return self._thread.name

    @property
    def native_id(self) -> Optional[int]:
        """The worker thread's OS id (for CPU accounting: /proc/PID/task/TID)."""
        return self._thread.native_id

    def submit(self, item: Any) -> None:
        """Hand over the newest item; a pending older one is dropped."""
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self.submitted += 1
            self._cond.notify()

    def _run(self) -> None:
        set_os_thread_name(self._thread.name)
        self._started.set()
        while True:
            with self._cond:
                while not self._has_item and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                item, self._item, self._has_item = self._item, None, False
                self.busy = True
            try:
                self._process(item)
            except BaseException as exc:  # noqa: BLE001 - a bad frame must not kill the worker
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._cond:
                    self.busy = False
                    self.processed += 1
                    self._cond.notify_all()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending or running (for tests and shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._has_item and not self.busy, timeout)

    def request_stop(self) -> None:
        """Ask the thread to end after the item it is processing (returns at once)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait until the thread has ended; False if it still runs after ``timeout`` s."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 2.0) -> None:
        self.request_stop()
        self.join(timeout)
