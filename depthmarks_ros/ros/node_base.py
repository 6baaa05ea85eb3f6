"""Conventions every depthmarks_ros node follows, written once.

* Parameters: a node names its spec (``PARAMS``, a :class:`~depthmarks_ros.core.params.ParamSet`
  dataclass in ``depthmarks_ros/params/<node>.py``); the base declares every field with a
  ParameterDescriptor (description, numeric range, allowed choices, read-only), keeps ``self.p``
  (an instance of the spec, replaced as a whole on every accepted change) current, refuses a
  change in the on-set callback with the spec's reason (per field and cross-field rules, plus the
  node's :meth:`check_parameters`), and calls :meth:`on_parameters_changed` after.
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

import array
import dataclasses
import functools
import gc
import os
import re
import sys
import time
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Type, Union

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

from depthmarks_ros.convert.stamps import FirstOfPeriod, stamp_ns
from depthmarks_ros.core.params import ParamField, ParamSet
from depthmarks_ros.params.base import NodeParams
from depthmarks_ros.ros import local_tap, recorded_topics
from depthmarks_ros.ros.executors import StopSignals, freeze_startup_heap, make_executor
from depthmarks_ros.ros.exit_deadline import arm_exit_deadline
from depthmarks_ros.ros.process import keep_large_buffers
from depthmarks_ros.ros.stats import ProcessingStats
from depthmarks_ros.ros.worker import LatestWorker

# a node process's exit ends this long after the stop request, at least EXIT_AFTER_NODES_S after its
# nodes stopped: before ros2 launch's SIGKILL (10 s after its SIGINT: SIGTERM at 5 s, which is ignored
# once the deadline is armed) where the workers' join (WORKERS_JOIN_S at most) leaves room
EXIT_DEADLINE_S = 8.5
EXIT_AFTER_NODES_S = 2.0
WORKERS_JOIN_S = 6.0    # every node's workers of a process together, each finishing its frame

# DiagnosticStatus levels as ints (the message holds them as one byte)
OK, WARN, ERROR, STALE = 0, 1, 2, 3


def _built(message: Callable[[], str], key: str) -> str:
    """A lazily built log message; a builder that raises gives a line saying so (the caller goes on)."""
    try:
        return str(message())
    except Exception as exc:     # noqa: BLE001 - the log line must not cost the node its frame
        return f'{key}: a problem whose message could not be built ({type(exc).__name__}: {exc})'


def _inner(publisher):
    """The rclpy publisher inside the package's publisher wrappers (TappedPublisher, RecordedPublisher)."""
    while isinstance(publisher, (local_tap.TappedPublisher, recorded_topics.RecordedPublisher)):
        publisher = publisher.publisher
    return publisher


class DepthmarksNode(Node):
    """Base class of the package's nodes (see module docstring)."""

    #: the node's parameter spec: a NodeParams subclass (depthmarks_ros/params/<node>.py)
    PARAMS: Type[ParamSet] = NodeParams

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
        self._throttle: Dict[str, float] = {}
        self.stats = ProcessingStats()
        self._workers = []
        self._input_sets = []
        self._compression = None
        self._served: Dict[int, FirstOfPeriod] = {}   # wanted_every: publisher -> the periods served
        self._local_inputs = []   # (tap, topic, callback, subscription): inputs handed over in this process (ros/local_tap.py)
        self._hand_over_pubs = []  # its hand_over=True publishers on a tap (ros/local_tap.py)
        self._declare_spec(type(self).PARAMS)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._diag_timer = self.create_timer(self.p.diagnostics_period, self.publish_diagnostics)

    # ------------------------------------------------------------------ parameters
    def _declare_spec(self, spec: Type[ParamSet]) -> None:
        """Declare every parameter of ``spec``; ``self.p`` becomes the (validated) spec instance.

        The callbacks are registered *before* declaring, as stereo_image_proc's disparity node
        does: rclpy (like rclcpp) runs the on-set callbacks for every ``declare_parameter``, so a
        refused value from a parameter file or ``-p`` (out of range, not a choice, even
        window...) stops the declaration with the spec's reason. Rules between fields need
        every value, so while declaring they wait for the last field and run once
        (a ValueError: a one-line start-up error in run_node).
        """
        self._spec = spec
        self._fields: Dict[str, ParamField] = spec.param_fields()
        self.p = spec()
        self._declaring = True
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        try:
            for name, pf in self._fields.items():
                self.declare_parameter(name, pf.default, parameter_descriptor(pf))
        finally:
            self._declaring = False
        error = self.p.problem() or self.check_parameters(self.p, set(self._fields))
        if error:
            raise ValueError(f'parameters refused: {error}')

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {}
        for prm in params:
            if prm.name not in self._fields:
                continue   # rclpy's own (use_sim_time) or undeclared
            value = plain_value(prm.value)
            error = self._spec.check_value(prm.name, value)
            if error:
                return SetParametersResult(successful=False, reason=f'{prm.name}: {error}')
            changes[prm.name] = value
        if changes and not self._declaring:
            candidate = dataclasses.replace(self.p, **changes)
            error = candidate.problem() or self.check_parameters(candidate, set(changes))
            if error:
                return SetParametersResult(successful=False, reason=error)
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params) -> None:
        changes = {prm.name: plain_value(prm.value) for prm in params if prm.name in self._fields}
        if not changes:
            return
        self.p = dataclasses.replace(self.p, **changes)   # a new object: readers see old or new, whole
        if 'input_warn_after' in changes:
            for inputs in self._input_sets:
                inputs.set_warn_after(self.p.input_warn_after)
        if not self._declaring:
            self.on_parameters_changed(list(changes))

    def check_parameters(self, candidate: ParamSet, changed: set) -> Optional[str]:
        """Override: a reason to refuse ``candidate`` (the values after a change of ``changed``)
        that only the node knows (its state, its inputs), or None. The spec's own rules have
        passed already. Runs in the on-set callback and once after declaration."""
        return None

    def on_parameters_changed(self, names: Iterable[str]) -> None:
        """Override to apply accepted run-time parameter changes (``self.p`` holds them)."""

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

    @staticmethod
    def wanted_at(publisher, stamp: int) -> bool:
        """:meth:`wanted` for a message stamped ``stamp`` (ns): with only `depthmarks run`'s recorder
        in this process subscribed, True only for the instants it keeps (ros/local_tap.py); ask it
        right before building the output, once per frame."""
        at = getattr(publisher, 'wanted_at', None)
        return at(stamp) if at is not None else publisher.get_subscription_count() > 0

    def wanted_every(self, publisher, stamp: int, period: float) -> bool:
        """:meth:`wanted`, and with ``period`` > 0 s only for the first frame of each period by stamp
        (``stamp // period``, ns): the instants `depthmarks run`'s recorder keeps at its record rate, so
        a costly output recorded there is computed about once per period instead of every frame.
        Call it once per frame and output (a True marks the period as served)."""
        if not self.wanted(publisher):
            return False
        if period <= 0:
            return True
        first = self._served.setdefault(id(publisher), FirstOfPeriod())
        first.period_ns = int(round(period * 1e9))
        return first.take(stamp)

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

    def log_problem(self, key: str, message: Union[str, Callable[[], str]], error: bool = False,
                    reason: Optional[str] = None) -> bool:
        """Log ``message`` unless the same reason (the message with its numbers masked) under
        ``key`` was logged less than ``log_throttle_period`` s ago: two different reasons are both
        logged, repeats of one are throttled. Returns whether it was logged. ``reason``: throttle on
        it instead of the message (a message whose text varies from one repeat to the next, e.g. an
        exception's with an object's address); ``message`` may be a callable that builds the text,
        called only when it is logged (a traceback)."""
        now = time.monotonic()
        period = float(self.p.log_throttle_period)
        if callable(message) and reason is None:      # built once, and a builder that raises costs no frame
            message = _built(message, key)
        if reason is None:
            reason = message
        reason = (key, _NUMBER.sub('#', reason))
        last = self._throttle.get(reason)
        if last is not None and now - last < period:
            return False
        if len(self._throttle) > 256:   # bounded: forget reasons not seen for a period
            self._throttle = {k: t for k, t in self._throttle.items() if now - t < period}
        self._throttle[reason] = now
        if callable(message):
            message = _built(message, key)
        # (two calls: rclpy refuses two severities from one line of code)
        if error:
            self.get_logger().error(message)
        else:
            self.get_logger().warning(message)
        return True

    # ------------------------------------------------------------------ outputs
    def create_publisher(self, msg_type, topic, qos_profile, **kwargs):
        """rclpy's, wrapped in a :class:`~depthmarks_ros.ros.local_tap.TappedPublisher` when a
        recorder in this process taps the topic (`depthmarks run`; ros/local_tap.py), or in a
        :class:`~depthmarks_ros.ros.recorded_topics.RecordedPublisher` when `depthmarks run
        --multi-process` records it from another process (ros/recorded_topics.py). ``hand_over``: in
        a process of several nodes (`depthmarks run`'s, a container's), also hand the message objects
        to the topic's in-process inputs instead of DDS while nothing else subscribes (for an output
        published at the end of the node's frame; the rules, with another process's recorder: ros/local_tap.py)."""
        hand_over = kwargs.pop('hand_over', False)
        pub = super().create_publisher(msg_type, topic, qos_profile, **kwargs)
        tap = local_tap.tap_for(self.context)
        if tap is not None and tap.recorder:
            # a single-process run: an inherited DEPTHMARKS_RECORDED_PERIODS is not ours
            deliver = tap.callback(pub.topic_name)
            return self._tapped(pub, deliver, tap, hand_over) if deliver is not None else pub
        # a node process of `depthmarks run --multi-process`: recorded-only topics (ros/recorded_topics.py)
        period = recorded_topics.recorded_periods().get(pub.topic_name)
        if period:
            pub = recorded_topics.RecordedPublisher(pub, self, period)
        if hand_over and tap is not None and tap.tapped(pub.topic_name):   # several nodes in this process
            return self._tapped(pub, None, tap, hand_over)
        return pub

    def _tapped(self, pub, deliver, tap, hand_over: bool):
        tapped = local_tap.TappedPublisher(pub, deliver, tap, hand_over, self.log_problem)
        if hand_over:
            self._hand_over_pubs.append(tapped)   # their counts in /diagnostics
        return tapped

    def destroy_publisher(self, publisher) -> bool:
        """rclpy's, given the wrapper or the rclpy publisher inside it; a hand-over publisher's counts
        leave /diagnostics either way."""
        publisher = _inner(publisher)
        self._hand_over_pubs = [p for p in getattr(self, '_hand_over_pubs', []) if _inner(p) is not publisher]
        return super().destroy_publisher(publisher)

    def create_image_publisher(self, topic: str, qos, kind: str = 'image'):
        """An Image publisher with its image_transport-style compressed twin (``<topic>/compressed``
        for ``kind='image'``, ``<topic>/compressedDepth`` for ``kind='depth'``), encoded only while
        subscribed (see :mod:`depthmarks_ros.ros.image_publisher`)."""
        from depthmarks_ros.ros.image_publisher import ImagePublisher
        return ImagePublisher(self, topic, qos, kind, self.compression_settings)

    def compression_settings(self):
        """How compressed twins encode now: the node's ``compressed_*`` parameters (params/base.py
        ``CompressedImageParams`` / ``CompressedDepthParams``; image_transport's defaults without
        them). Read for each encoded frame, so a change applies from the next one."""
        from depthmarks_ros.ros.image_publisher import CompressionSettings
        p = self.p
        cached = self._compression
        if cached is None or cached[0] is not p:      # self.p is replaced whole on every change
            cached = self._compression = (p, CompressionSettings.from_params(p))
        return cached[1]

    # ------------------------------------------------------------------ inputs
    def synced_inputs(self, inputs, make, process, **kwargs):
        """The node's synchronised inputs (see :class:`~depthmarks_ros.ros.synced_inputs.SyncedInputs`).

        The node's spec includes :class:`~depthmarks_ros.params.base.InputParams`:
        ``input_warn_after`` (the watchdog's grace period) and ``max_image_pixels`` (larger images
        are refused before any decoding or costly work)."""
        from depthmarks_ros.ros.synced_inputs import SyncedInputs
        return SyncedInputs(self, inputs, make, process, warn_after=self.p.input_warn_after,
                            shard=self.shard_selector(), **kwargs)

    def shard_selector(self):
        """This instance's share of the frames when the spec has ``shard_count`` > 1
        (:class:`~depthmarks_ros.params.base.ShardParams`, docs/multihost.md), else None."""
        from depthmarks_ros.core.sharding import ShardSelector
        count = int(getattr(self.p, 'shard_count', 1))
        if count <= 1:
            return None
        return ShardSelector(count, int(self.p.shard_index), float(self.p.shard_period))

    def create_input_subscription(self, msg_type, topic, callback, qos_profile):
        """``create_subscription`` for an input whose callback is thread-safe (SyncedInputs'): in
        `depthmarks run`'s single process, on a topic its recorder takes from the publishers, and in a
        process of several nodes (a container), the ``hand_over`` publishers of this process hand
        ``callback`` their message objects (in their thread, no DDS) under the rules of ros/local_tap.py."""
        sub = self.create_subscription(msg_type, topic, callback, qos_profile)
        tap = local_tap.tap_for(self.context)
        if tap is not None and tap.tapped(sub.topic_name):
            # one input on the tap per DDS reader, handed messages once that has matched (the publisher
            # counts on it: ros/local_tap.py); destroy_subscription takes it off again
            tap.add_input(sub.topic_name, callback, sub, (self.get_name(), self.get_namespace()))
            self._local_inputs.append((tap, sub.topic_name, callback, sub))
        return sub

    def destroy_subscription(self, subscription) -> bool:
        """rclpy's; an input subscription also leaves the tap (its publishers hand over no more)."""
        self._drop_local_inputs(subscription)
        return super().destroy_subscription(subscription)

    def _drop_local_inputs(self, subscription=None) -> None:
        """Take this node's inputs (those of ``subscription`` only, when given) off the tap."""
        inputs = getattr(self, '_local_inputs', [])
        gone = [i for i in inputs if subscription is None or i[3] is subscription]
        self._local_inputs = [i for i in inputs if not any(i is g for g in gone)]
        for tap, topic, callback, _sub in gone:
            tap.remove_input(topic, callback)

    def destroy_node(self):
        self._drop_local_inputs()   # before its subscriptions go: publishers stop handing over to it
        return super().destroy_node()

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
        values = {**snap, **self._hand_over_values(), **extra}
        status.values = [KeyValue(key=k, value=_fmt(v)) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def _hand_over_values(self) -> Dict[str, int]:
        """The messages of its ``hand_over`` outputs on a tap (any layout: `depthmarks run`'s single process,
        a container) handed to all in-process inputs instead of DDS (``hand_over_messages``), handed over
        with an input that raised on it (``hand_over_failed_messages``) and published through DDS
        (``hand_over_dds_messages``; :meth:`LocalTap.topic_counts
        <depthmarks_ros.ros.local_tap.LocalTap.topic_counts>`); none without such outputs."""
        if not self._hand_over_pubs:
            return {}
        counts = [p.hand_over_counts() for p in self._hand_over_pubs]

        def total(key):
            return sum(c.get(key, 0) for c in counts)
        return {'hand_over_messages': total('handed_over'), 'hand_over_failed_messages': total('hand_over_failed'),
                'hand_over_dds_messages': total('dds')}

    def stop_workers(self) -> None:
        """Ask every worker thread to stop after its current frame (returns at once; again: no-op)."""
        if getattr(self, '_workers_stopping', False):
            return
        self._workers_stopping = True
        self._drop_local_inputs()
        for inputs in self._input_sets:
            inputs.close()
        for w in self._workers:
            w.request_stop()

    def shutdown(self, timeout: float = WORKERS_JOIN_S, deadline: Optional[float] = None) -> None:
        """Stop every worker thread and wait (together at most ``timeout`` s, or until the
        time.monotonic() ``deadline``) until each has ended its current frame: a worker still inside
        native code (MediaPipe, Open3D, torch) while the interpreter finalises can deadlock the process
        on exit (seen: sim_rig and body_pose hung in finalisation after a frame had outlasted a 2 s
        join under load). run_nodes asks every node of a process first, then joins them all against
        one deadline."""
        self.stop_workers()
        if deadline is None:
            deadline = time.monotonic() + timeout
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))


_NUMBER = re.compile(r'[-+]?\d+(\.\d+)?(e[-+]?\d+)?')


def parameter_descriptor(pf: ParamField) -> ParameterDescriptor:
    """The ROS ParameterDescriptor of a spec field (description, range, choices, read-only)."""
    info = pf.info
    desc = ParameterDescriptor(description=info.description, read_only=info.read_only,
                               additional_constraints=info.constraints(), dynamic_typing=info.dynamic_typing)
    has_range = info.min is not None or info.max is not None
    if pf.kind is int and has_range:
        desc.integer_range = [IntegerRange(
            from_value=int(info.min if info.min is not None else -2**63),
            to_value=int(info.max if info.max is not None else 2**63 - 1),
            step=int(info.step or 0))]
    elif pf.kind is float and has_range:
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(info.min if info.min is not None else -sys.float_info.max),
            to_value=float(info.max if info.max is not None else sys.float_info.max),
            step=float(info.step or 0.0))]
    return desc


def plain_value(value: Any) -> Any:
    """rclpy gives array parameters as array.array (or numpy): lists in ``self.p``."""
    if isinstance(value, array.array) or type(value).__module__ == 'numpy':
        return list(value.tolist())
    return value


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f'{v:.3f}'
    return str(v)


def run_node(node_factory: Callable[[], Node], args: Optional[list] = None,
             exit_deadline_s: Optional[float] = None) -> int:
    """Init rclpy, spin the node until SIGINT or shutdown, clean up; returns the exit code
    (:func:`run_nodes` with one node)."""
    return run_nodes([node_factory], args, exit_deadline_s=exit_deadline_s)


def start_error_prefix(name: str) -> str:
    """The start of the one line run_nodes prints for a node (class name) that cannot start; the
    runner finds a failed node of a shared process in its log by it."""
    return f'{name}: cannot start:'


def run_nodes(node_factories: Sequence[Callable[[], Node]], args: Optional[list] = None,
              exit_deadline_s: Optional[float] = None) -> int:
    """Init rclpy, build the nodes in this process (in order), spin them with one executor until
    SIGINT or shutdown, clean up; returns the exit code. One node: a node's own process
    (:func:`run_node`); several: ``depthmarks_container`` (pipeline/container.py), where the nodes
    take the process's ROS arguments (``args``) with their own parameter-file sections and
    node-targeted remappings, and a hand-over-only local tap lets a ``hand_over=True`` publisher hand
    its messages to the other nodes' inputs without DDS (:meth:`LocalTap.hand_over_only
    <depthmarks_ros.ros.local_tap.LocalTap.hand_over_only>`).

    The executor comes from :func:`depthmarks_ros.ros.executors.make_executor` (rclpy's
    EventsExecutor where it exists, else the SingleThreadedExecutor; ``DEPTHMARKS_EXECUTOR``
    chooses): callbacks only hand work to worker threads, so one thread dispatches them.

    SIGINT and SIGTERM (one or several, e.g. the group SIGINT plus the second SIGINT of
    ``ros2 launch`` without a terminal) stop the loop and give exit code 0 (:class:`StopSignals`).

    Start-up errors (a refused parameter, a bad calibration or model: ValueError and its subclasses,
    rclpy's ParameterException, missing files) are printed as one clear line per failing node instead
    of a traceback. A process whose nodes all failed (a node's own process: its one node) exits with
    code 1; in a shared process the nodes that started run on (as in rclcpp's component container,
    where one node failing to load leaves the others running), so a bad depth_fusion parameter does
    not take stereo_depth down with it, nor make ``ros2 launch``'s respawn restart both for ever.

    ``exit_deadline_s`` (the node executables and the container pass :data:`EXIT_DEADLINE_S`; never
    in a process that lives on): once the nodes have stopped, the rest of the exit (the DDS teardown,
    interpreter finalization) may last until that long after the stop request (at least
    :data:`EXIT_AFTER_NODES_S`), then the process ends with its exit code anyway, SIGTERM ignored
    meanwhile (ros/exit_deadline.py: Fast DDS can hang destroying the participant while peers leave).
    The exit code is 1 where an exception (a callback's) ended the loop.
    """
    keep_large_buffers()   # no page faults per received image (ros/process.py)
    stop = StopSignals()
    with stop:
        # rclpy's signal handlers would raise KeyboardInterrupt inside the executor: see StopSignals
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        context = rclpy.get_default_context()
        if len(node_factories) > 1:
            # a container: hand_over publishers hand their messages to the other nodes' inputs (ros/local_tap.py)
            local_tap.install(context, local_tap.LocalTap.hand_over_only())
        nodes: list = []
        added: list = []     # the nodes the executor holds
        executor = None
        code = 1             # until the nodes run
        try:
            try:
                executor, _ = make_executor()   # first: an unknown DEPTHMARKS_EXECUTOR is a start-up error too
            except ValueError as exc:
                name = getattr(node_factories[0], '__name__', 'node') if node_factories else 'node'
                print(f'{start_error_prefix(name)} {exc}', file=sys.stderr)
                return code
            for factory in node_factories:
                try:
                    nodes.append(factory())
                except (ValueError, FileNotFoundError, ParameterException) as exc:
                    name = getattr(factory, '__name__', 'node')
                    print(f'{start_error_prefix(name)} {exc}', file=sys.stderr)
            if len(nodes) < len(node_factories):
                if not nodes or len(node_factories) == 1:
                    return code
                # a shared process (as rclcpp's component_container with a node that fails to load):
                # the nodes that started run on; the failed one is named above
                print(f'{len(node_factories) - len(nodes)} of {len(node_factories)} nodes of this process '
                      f'did not start; the others run', file=sys.stderr)
            for node in nodes:
                executor.add_node(node)
                added.append(node)
            code = 0
            freeze_startup_heap()
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
        except BaseException as exc:   # leaving the loop (a callback's exception): the process failed
            if isinstance(exc, SystemExit):
                code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
            else:
                code = 1
            raise
        finally:
            ended_at = time.monotonic()
            gc.unfreeze()   # the start-up heap is collectable again: native objects (Open3D) are freed
            for node in added:
                executor.remove_node(node)   # the executor lets go of the node's entities first
            stop_and_join(nodes)
            if exit_deadline_s:
                # the nodes' own work is done (workers joined); what follows is rclpy's and Fast DDS's
                bound_exit(exit_deadline_s, stop.first_at or ended_at, code, _process_name(args))
            for node in nodes:
                node.destroy_node()
            if executor is not None:
                # join the executor's own threads now (the EventsExecutor's timer thread): left to
                # interpreter exit, a still-joinable std::thread aborts the process ("terminate called
                # without an active exception", exit -6)
                executor.shutdown()
            local_tap.uninstall(context)
            rclpy.try_shutdown()
    return 0


def stop_and_join(nodes: Sequence[Node], timeout: float = WORKERS_JOIN_S) -> None:
    """Ask every node's workers to stop first, then join them all against one deadline ``timeout`` s
    from now (run_nodes, `depthmarks run`): the nodes finish their current frames together, not one
    after the other. A node without workers (no ``stop_workers``) that has a ``shutdown`` gets it."""
    for node in nodes:
        if hasattr(node, 'stop_workers'):
            node.stop_workers()
    deadline = time.monotonic() + timeout
    for node in nodes:
        if hasattr(node, 'stop_workers'):
            node.shutdown(deadline=deadline)
        elif hasattr(node, 'shutdown'):
            node.shutdown()


def bound_exit(deadline_s: float, stopped_at: float, code: int, name: str) -> None:
    """Arm the exit deadline of a process that is ending (``deadline_s`` after the time.monotonic()
    ``stopped_at``, at least EXIT_AFTER_NODES_S from now; exit ``code``): run_nodes, `depthmarks run`.
    Once armed, SIGTERM is ignored too: the deadline ends the process."""
    import signal
    import threading
    left = max(EXIT_AFTER_NODES_S, deadline_s - (time.monotonic() - stopped_at))
    total = time.monotonic() - stopped_at + left
    if arm_exit_deadline(left, f'[{name}] the DDS teardown and interpreter exit did not finish {total:.1f} s after '
                         f'the stop (where it was: the thread dump above; docs/pipeline.md): exiting {code} '
                         f'without them', code) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _process_name(args: Optional[list]) -> str:
    """The executable's name for the one line a deadline prints (its first argument, else argv[0])."""
    first = (args or sys.argv or ['node'])[0]
    return os.path.basename(str(first)) or 'node'
