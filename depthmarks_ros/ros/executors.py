"""Which rclpy executor spins the package's nodes (the node processes and `depthmarks run`).

``DEPTHMARKS_EXECUTOR`` chooses:

* ``events`` (default where rclpy has it, Kilted and later): ``rclpy.experimental.EventsExecutor``.
  Its wait and dispatch loop runs in C++; Python only runs the callbacks. The Python executor's
  per-message wait-set rebuild over every node's entities kept the main thread at 0.24-0.28 of a
  core, holding the GIL. On the 2-core benchmark (docs/pipeline.md) the EventsExecutor together with
  the OpenBLAS thread cap took the single-process pipeline from 6.8 Hz / 362 ms fused-depth latency
  to 10 Hz / 87 ms; with every later change in place, 60 s runs gave fused 54 ms (events) vs 77 ms
  (single-threaded).
* ``single``: rclpy's ``SingleThreadedExecutor`` (always available; the fallback when rclpy
  has no EventsExecutor, e.g. Humble and Jazzy).

Never the MultiThreadedExecutor: the nodes' callbacks only hand frames to worker threads, and it
measured 50-600 ms of extra delivery latency for 640x480 images here.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

ENV = 'DEPTHMARKS_EXECUTOR'
CHOICES = ('events', 'single')


def executor_choice() -> str:
    """The requested executor name; ValueError for an unknown one."""
    name = os.environ.get(ENV, '').strip().lower() or 'events'
    if name not in CHOICES:
        raise ValueError(f'{ENV}={name!r} is not one of {list(CHOICES)}')
    return name


def make_executor(context=None) -> Tuple[object, str]:
    """(executor, name actually used) for ``context`` (None = rclpy's default context)."""
    name = executor_choice()
    if name == 'events':
        try:
            from rclpy.experimental import EventsExecutor
        except ImportError:
            name = 'single'
        else:
            return EventsExecutor(context=context), 'events'
    from rclpy.executors import SingleThreadedExecutor
    return SingleThreadedExecutor(context=context), name


def freeze_startup_heap() -> None:
    """Collect once, then move every object alive now (modules, models, nodes: ~200k objects in the
    main job) out of the garbage collector's reach (``gc.freeze``). A full collection while the
    nodes run then walks only what was made since: in `depthmarks run` it took 150-170 ms holding the
    GIL every few seconds (every thread stalls: the p95 latency), 4-16 ms after the freeze (issue 21).
    Call after the nodes are built, before spinning; ``gc.unfreeze()`` undoes it."""
    import gc
    gc.collect()
    gc.freeze()


class StopSignals:
    """SIGINT and SIGTERM ask the spin loop to stop; they never raise inside rclpy.

    rclpy's own handlers (``rclpy.init`` installs them by default) shut the context down and then
    chain to Python's SIGINT handler, which raises KeyboardInterrupt wherever the main thread is:
    inside an executor's C++ callback dispatch that ends in "terminate called after throwing an
    instance of 'pybind11::error_already_set'" (exit -6), inside a worker join a KeyboardInterrupt
    traceback (exit -2). ``ros2 launch`` without a terminal (systemd, CI, ``</dev/null``) sends the
    whole process group SIGINT and then a second one, so both signals arrive close together.

    Use with ``rclpy.init(signal_handler_options=SignalHandlerOptions.NO)`` and spin with a
    timeout while :attr:`requested` is false: a handler only records the signal, the loop sees it
    within one spin timeout, and every later signal during clean-up is recorded and ignored.
    """

    SIGNALS = ('SIGINT', 'SIGTERM')

    def __init__(self, restore: bool = False, ignore_sigint_after_stop: bool = False):
        """``restore``: put the previous handlers back on exit (for a caller that lives on, e.g.
        `depthmarks run` inside a test process); a node process keeps them (see ``__exit__``).
        ``ignore_sigint_after_stop`` (with ``restore``): where a signal stopped it, SIGINT is ignored
        from then on instead of restored (`depthmarks run`: the process is ending, and a second SIGINT
        of a group stop must not raise KeyboardInterrupt after the run)."""
        self._ignore_sigint_after_stop = ignore_sigint_after_stop
        self.received: list = []
        self.first_at: Optional[float] = None    # time.monotonic() of the first signal
        self._restore = restore
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return bool(self.received)

    def _handle(self, signum, _frame) -> None:
        if self.first_at is None:
            import time
            self.first_at = time.monotonic()
        self.received.append(signum)

    def __enter__(self) -> 'StopSignals':
        import signal
        import threading
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for name in self.SIGNALS:
                sig = getattr(signal, name)
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        import signal
        if self._restore:
            for sig, handler in self._previous.items():
                if sig == signal.SIGINT and self.received and self._ignore_sigint_after_stop:
                    handler = signal.SIG_IGN    # straight from ours: no moment with Python's default
                signal.signal(sig, handler)
        elif signal.SIGINT in self._previous:
            # a node process, its loop ended: a later SIGINT (the second SIGINT of a group stop) must
            # not raise or kill it with -2. Ignored, not left to our handler: when the interpreter
            # finalizes, Python puts the default action back on every signal whose handler is a Python
            # function, and a SIGINT then killed the finished process with -2. SIGTERM keeps our handler
            # (recorded) and so its default at finalization: ros2 launch's SIGTERM, sent when a process
            # has not exited 5 s after its SIGINT, still ends one stuck at exit (where run_nodes armed its
            # exit deadline, that deadline ends it and SIGTERM is ignored: node_base.bound_exit).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._previous.clear()
