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
from typing import Tuple

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
