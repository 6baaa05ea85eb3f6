"""Which rclpy executor spins the package's nodes (the node processes and `depthmarks run`).

``DEPTHMARKS_EXECUTOR`` chooses:

* ``events`` (default where rclpy has it, Kilted and later): ``rclpy.experimental.EventsExecutor``.
  Its wait and dispatch loop runs in C++; Python only runs the callbacks. On the 2-core benchmark
  (benchmarks/bench_pipeline.py, docs/pipeline.md) it took the single-process pipeline from
  6-7 Hz / 360 ms fused-depth latency to 10 Hz / ~90 ms: the Python executor's per-message wait-set
  rebuild over every node's entities cost a third of a core and held the GIL.
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
