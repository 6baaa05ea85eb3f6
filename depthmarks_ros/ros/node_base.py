"""Conventions every depthmarks_ros node follows, written once.

* Parameters: :meth:`DepthmarksNode.declare` declares each with a ParameterDescriptor
  (description, numeric range, allowed choices, read-only) and keeps ``self.p`` current;
  changes are validated (type, range, choices, custom check) before they are accepted, and
  :meth:`on_parameters_changed` runs after.
* QoS (REP-2003): inputs use SensorDataQoS (best effort, keep last 1 here: old frames are never
  queued); outputs are reliable by default, and best effort when ``output_reliability`` is
  ``best_effort``.
* Overload: callbacks hand work to a :class:`~depthmarks_ros.ros.worker.LatestWorker`; it
  processes the newest input and counts the dropped ones.
* ``/diagnostics``: a DiagnosticArray once per ``diagnostics_period`` s with rate, latency,
  compute time, frames in/out, drops and errors, plus node-specific values.
* Bad input: :meth:`reject` logs a rate-limited message (each distinct reason at least once, then
  at most once per ``log_throttle_period``), counts the error and the caller drops the frame; the
  node keeps running.
* Inputs: :meth:`synced_inputs` builds the one input mechanism
  (:class:`~depthmarks_ros.ros.synced_inputs.SyncedInputs`: role-keyed sets, latest-only worker,
  watchdog). Its status (an input never received, stopped, never pairing, stamps that jumped)
  raises the /diagnostics level to WARN/ERROR with the reason, and it is OK again on recovery.
* Shutdown: :func:`run_node` spins until SIGINT, SIGTERM or external shutdown and exits 0.
"""
from __future__ import annotations

import functools
import re
import sys
import time
from types import SimpleNamespace
from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.ros.executors import StopSignals, make_executor
from depthmarks_ros.ros.stats import ProcessingStats
from depthmarks_ros.ros.worker import LatestWorker

# DiagnosticStatus levels as ints (the message holds them as one byte)
OK, WARN, ERROR, STALE = 0, 1, 2, 3


class DepthmarksNode(Node):
    """Base class of the package's nodes (see module docstring)."""

    def __init_subclass__(cls, **kwargs):
        """A node whose ``__init__`` raises (a refused parameter, a bad calibration: the start-up
        rule) destroys what it created, so no half-made node keeps publishers or timers alive in a
        process that goes on (tests, ``depthmarks run``)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get('__init__')
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            try:
                init(self, *args, **kw)
            except BaseException:
                if type(self) is cls:   # the outermost class cleans up, once
                    for step in (self.shutdown, lambda: DepthmarksNode.shutdown(self), self.destroy_node):
                        try:
                            step()
                        except Exception:  # noqa: BLE001 - the original error is the one to report
                            pass
                raise
        cls.__init__ = __init__

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        self.p = SimpleNamespace()
        self._specs: Dict[str, dict] = {}
        self._throttle: Dict[str, float] = {}
        self._declaring = False
        self.stats = ProcessingStats()
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.declare('output_reliability', 'reliable', 'QoS reliability of published outputs',
                     choices=('reliable', 'best_effort'), read_only=True)
        self.declare('diagnostics_period', 1.0, 'Seconds between /diagnostics messages',
                     min_value=0.1, max_value=60.0, read_only=True)
        self.declare('log_throttle_period', 5.0, 'Seconds between repeats of one bad-input message',
                     min_value=0.0, max_value=600.0)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(self.p.diagnostics_period, self.publish_diagnostics)
        self._workers = []
        self._input_sets = []

    # ------------------------------------------------------------------ parameters
    def declare(self, name: str, default: Any, description: str, *,
                min_value: Optional[float] = None, max_value: Optional[float] = None,
                step: Optional[float] = None, choices: Optional[Sequence[Any]] = None,
                read_only: bool = False, check: Optional[Callable[[Any], Optional[str]]] = None,
                dynamic_typing: bool = False) -> Any:
        """Declare a parameter with a descriptor; returns its (possibly overridden) value.

        ``check(value)`` returns an error string to refuse a value (also applied at start).
        ``dynamic_typing``: accept a value of another type than the default's (``check`` decides).
        """
        desc = ParameterDescriptor(description=description, read_only=read_only, dynamic_typing=dynamic_typing)
        if isinstance(default, bool) or default is None:
            pass
        elif isinstance(default, int) and (min_value is not None or max_value is not None):
            desc.integer_range = [IntegerRange(
                from_value=int(min_value if min_value is not None else -2**31),
                to_value=int(max_value if max_value is not None else 2**31 - 1),
                step=int(step or 0))]
        elif isinstance(default, float) and (min_value is not None or max_value is not None):
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(min_value if min_value is not None else -sys.float_info.max),
                to_value=float(max_value if max_value is not None else sys.float_info.max),
                step=float(step or 0.0))]
        if choices is not None:
            desc.additional_constraints = 'one of: ' + ', '.join(str(c) for c in choices)
        self._specs[name] = {'choices': tuple(choices) if choices is not None else None, 'check': check}
        self._declaring = True
        try:
            value = self.declare_parameter(name, default, desc).value
        finally:
            self._declaring = False
        error = self._check_value(name, value)
        if error:
            raise ValueError(f'parameter {name}: {error}')
        setattr(self.p, name, value)
        return value

    def _check_value(self, name: str, value: Any) -> Optional[str]:
        spec = self._specs.get(name)
        if spec is None:
            return None
        if spec['choices'] is not None and value not in spec['choices']:
            return f'{value!r} is not one of {list(spec["choices"])}'
        if spec['check'] is not None:
            return spec['check'](value)
        return None

    def _validate_parameters(self, params) -> SetParametersResult:
        for prm in params:
            error = self._check_value(prm.name, prm.value)
            if error:
                return SetParametersResult(successful=False, reason=f'{prm.name}: {error}')
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        names = []
        for prm in params:
            if prm.name in self._specs:
                setattr(self.p, prm.name, prm.value)
                names.append(prm.name)
        if 'input_warn_after' in names:
            for inputs in self._input_sets:
                inputs.set_warn_after(self.p.input_warn_after)
        if names and not self._declaring:
            self.on_parameters_changed(names)

    def on_parameters_changed(self, names: Iterable[str]) -> None:
        """Override to react to accepted run-time parameter changes."""

    # ------------------------------------------------------------------ QoS
    @staticmethod
    def sensor_qos() -> QoSProfile:
        """SensorDataQoS with keep-last 1: the newest frame replaces an unread one."""
        qos = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in
                            ('reliability', 'durability', 'history')}, depth=1)
        return qos

    def output_qos(self, depth: int = 2) -> QoSProfile:
        rel = (ReliabilityPolicy.RELIABLE if self.p.output_reliability == 'reliable'
               else ReliabilityPolicy.BEST_EFFORT)
        return QoSProfile(reliability=rel, durability=DurabilityPolicy.VOLATILE,
                          history=HistoryPolicy.KEEP_LAST, depth=depth)

    @staticmethod
    def latched_qos() -> QoSProfile:
        return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL,
                          history=HistoryPolicy.KEEP_LAST, depth=1)

    @staticmethod
    def wanted(publisher) -> bool:
        """True when someone subscribes: costly outputs are only computed then."""
        return publisher.get_subscription_count() > 0

    # ------------------------------------------------------------------ work and errors
    def make_worker(self, process: Callable[[Any], None], name: str = 'process') -> LatestWorker:
        def on_error(exc: BaseException) -> None:
            if not self.context.ok():  # shutting down: publishers are gone, nothing to report
                return
            self.reject('unexpected', f'processing failed: {type(exc).__name__}: {exc}')
        w = LatestWorker(process, f'{self.get_name()}-{name}', on_error)
        self._workers.append(w)
        return w

    def worker_threads(self) -> list:
        """(thread name, OS thread id) of each worker thread of this node, e.g. for CPU accounting."""
        return [(w.thread_name, w.native_id) for w in self._workers]

    def reject(self, key: str, message: str, level: str = 'warn') -> None:
        """Count a dropped frame and log ``message`` (throttled, see :meth:`log_problem`)."""
        self.stats.error(message)
        self.log_problem(key, f'dropped frame: {message}', error=level == 'error')

    def log_problem(self, key: str, message: str, error: bool = False) -> bool:
        """Log ``message`` unless the same reason (the message with its numbers masked) under
        ``key`` was logged less than ``log_throttle_period`` s ago: two different reasons are both
        logged, repeats of one are throttled. Returns whether it was logged."""
        now = time.monotonic()
        period = float(getattr(self.p, 'log_throttle_period', 5.0))
        reason = (key, _NUMBER.sub('#', message))
        last = self._throttle.get(reason)
        if last is not None and now - last < period:
            return False
        if len(self._throttle) > 256:   # bounded: forget reasons not seen for a period
            self._throttle = {k: t for k, t in self._throttle.items() if now - t < period}
        self._throttle[reason] = now
        # (two calls: rclpy refuses two severities from one line of code)
        if error:
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)
        return True

    # ------------------------------------------------------------------ outputs
    def create_image_publisher(self, topic: str, qos, kind: str = 'image'):
        """An Image publisher with its image_transport-style compressed twin (``<topic>/compressed``
        for ``kind='image'``, ``<topic>/compressedDepth`` for ``kind='depth'``), encoded only while
        subscribed (see :mod:`depthmarks_ros.ros.image_publisher`)."""
        from depthmarks_ros.ros.image_publisher import ImagePublisher
        return ImagePublisher(self, topic, qos, kind, self.compression_settings())

    def compression_settings(self):
        """How compressed twins encode (defaults; see docs/multihost.md)."""
        from depthmarks_ros.ros.image_publisher import CompressionSettings
        return CompressionSettings()

    # ------------------------------------------------------------------ inputs
    def synced_inputs(self, inputs, make, process, max_image_pixels: int = 8_388_608, **kwargs):
        """The node's synchronised inputs (see :class:`~depthmarks_ros.ros.synced_inputs.SyncedInputs`).

        Declares on first use ``input_warn_after`` (the watchdog's grace period) and
        ``max_image_pixels`` (larger images are refused before any decoding or costly work;
        the default here, 8.4 Mpx, holds 4K UHD; stereo_depth passes a smaller one).
        """
        from depthmarks_ros.ros.synced_inputs import SyncedInputs
        if not hasattr(self.p, 'input_warn_after'):
            self.declare('input_warn_after', 3.0, 'Seconds before /diagnostics reports an input that never '
                         'arrives, stops, or never pairs with the others', min_value=0.2, max_value=600.0)
        if not hasattr(self.p, 'max_image_pixels'):
            self.declare('max_image_pixels', int(max_image_pixels), 'Images with more pixels (width x height) are '
                         'refused before any work (one huge frame must not stall the node or exhaust memory)',
                         min_value=1, max_value=2**31 - 1)
        return SyncedInputs(self, inputs, make, process, warn_after=self.p.input_warn_after, **kwargs)

    def declare_transports(self, depth: bool = False) -> None:
        """``image_transport`` (and with ``depth``, ``depth_transport``): how image inputs arrive,
        as image_transport names it (read-only)."""
        self.declare('image_transport', 'raw', "Camera images as 'raw' sensor_msgs/Image, or 'compressed' "
                     'sensor_msgs/CompressedImage (JPEG/PNG) on <topic>/compressed', choices=('raw', 'compressed'),
                     read_only=True)
        if depth:
            self.declare('depth_transport', 'raw', "Depth images as 'raw' sensor_msgs/Image, or "
                         "'compressedDepth' CompressedImage on <topic>/compressedDepth", choices=('raw', 'compressedDepth'),
                         read_only=True)

    def register_inputs(self, inputs) -> None:
        self._input_sets.append(inputs)

    def latency_since(self, header) -> float:
        """Seconds from a header's stamp to now (ROS clock)."""
        return (self.get_clock().now().nanoseconds - stamp_ns(header)) * 1e-9

    # ------------------------------------------------------------------ diagnostics
    def diagnostic_values(self) -> Dict[str, Any]:
        """Override to add node-specific key/values to /diagnostics."""
        return {}

    def publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        for w in self._workers:
            snap['dropped'] += w.dropped
        extra = self.diagnostic_values()
        status = DiagnosticStatus(name=f'{self.get_name()}: processing', hardware_id=self.get_fully_qualified_name())
        recent_error = snap['seconds_since_error'] < 2 * self.p.diagnostics_period + 1
        if recent_error and snap['frames_out'] == 0:
            level, message = ERROR, f'no output; last error: {self.stats.last_error}'
        elif recent_error:
            level, message = WARN, f'dropping bad input: {self.stats.last_error}'
        elif snap['frames_in'] == 0 and snap['frames_out'] == 0:
            level, message = OK, 'waiting for input'
        else:
            level, message = OK, 'running'
        for inputs in self._input_sets:   # inputs that stop or never pair raise the level
            in_level, in_reason = inputs.status()
            if in_level > OK:
                message = in_reason if level == OK else f'{in_reason}; {message}'
                level = max(level, in_level)
        if 'status_level' in extra:  # a node may raise (never lower) the level
            node_level = int(extra.pop('status_level'))
            node_message = extra.pop('status_message', message)
            if node_level > level:
                level, message = node_level, node_message
        status.level, status.message = bytes([level]), message
        values = {**snap, **extra}
        status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def shutdown(self) -> None:
        for inputs in self._input_sets:
            inputs.close()
        for w in self._workers:
            w.stop()


_NUMBER = re.compile(r'[-+]?\d+(\.\d+)?(e[-+]?\d+)?')


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.3f}'
    return str(v)


def run_node(node_factory: Callable[[], Node], args: Optional[list] = None) -> int:
    """Init rclpy, spin the node until SIGINT or shutdown, clean up; returns the exit code.

    The executor comes from :func:`depthmarks_ros.ros.executors.make_executor` (rclpy's
    EventsExecutor where it exists, else the SingleThreadedExecutor; ``DEPTHMARKS_EXECUTOR``
    chooses): callbacks only hand work to worker threads, so one thread dispatches them.

    SIGINT and SIGTERM (one or several, e.g. the group SIGINT plus the second SIGINT of
    ``ros2 launch`` without a terminal) stop the loop and give exit code 0 (:class:`StopSignals`).

    Start-up errors (a refused parameter, a bad calibration or model: ValueError and its subclasses,
    rclpy's ParameterException, missing files) are printed as one clear line and give exit code 1 instead of a traceback.
    """
    stop = StopSignals()
    with stop:
        # rclpy's signal handlers would raise KeyboardInterrupt inside the executor: see StopSignals
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = None
        try:
            try:
                executor, _ = make_executor()   # first: an unknown DEPTHMARKS_EXECUTOR is a start-up error too
                node = node_factory()
            except (ValueError, FileNotFoundError, ParameterException) as exc:
                name = getattr(node_factory, '__name__', 'node')
                print(f'{name}: cannot start: {exc}', file=sys.stderr)
                return 1
            executor.add_node(node)
            try:
                # spin_once in a loop, not spin(): the EventsExecutor's spin() does not return on
                # shutdown; a signal is seen within one timeout
                while rclpy.ok() and not stop.requested:
                    executor.spin_once(timeout_sec=0.25)
            except Exception:  # noqa: BLE001
                # an external shutdown of the context under the executor makes a take or wait fail
                # inside rclpy (seen: 'Unable to convert call argument'); that is a clean shutdown
                if rclpy.ok():
                    raise
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            if node is not None:
                if hasattr(node, 'shutdown'):
                    node.shutdown()
                node.destroy_node()
            rclpy.try_shutdown()
    return 0
