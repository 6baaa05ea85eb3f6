"""The one input mechanism of the nodes: role-keyed, synchronised subscriptions with a watchdog.

The ROS side of :mod:`depthmarks_ros.core.sync` (message_filters is not available everywhere).
A node lists its inputs as :class:`Input` (role, message type, topic, image transport); every
complete set is turned into the node's own dataclass (``make(**{role: msg})``, so a set always
has every role by name, never a positional tuple) and handed to the node's latest-only worker
(old sets are dropped, never queued). Side inputs (``side=``) are not synchronised: their newest
few messages are kept for :meth:`SyncedInputs.nearest` (mono_depth's metric reference).

Subscriptions use SensorDataQoS; the sync queues are bounded by ``queue_size``. The watchdog
(:class:`~depthmarks_ros.core.sync.InputHealth`) makes the node's /diagnostics WARN/ERROR with
the reason when an input never arrives, stops, or never pairs (after ``warn_after`` s), logs it
(throttled), and goes back to OK on recovery. Stamps that jump back on one input discard what
cannot match any more; a backward jump of the ROS clock (a looping bag with use_sim_time)
resets the queues. Image inputs can come as ``sensor_msgs/CompressedImage``
(``transport='compressed'`` or ``'compressedDepth'``: the topic ``<topic>/<transport>``, as
image_transport names it); the node's conversions (``convert/image.py``) decode both.

The callbacks are thread-safe: in `depthmarks run`'s single process and in a container (several nodes
in one process, pipeline/container.py) a publisher created with ``hand_over=True`` calls them in its own
thread (``DepthmarksNode.create_input_subscription``, ros/local_tap.py), so they may run in the
executor's thread and a publisher's at once; a set is
submitted to the worker under the lock, in the order the sets completed.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from rclpy.clock import JumpThreshold
from rclpy.duration import Duration
from sensor_msgs.msg import CompressedImage, Image

from depthmarks_ros.convert.errors import ConversionError
from depthmarks_ros.convert.image import image_size
from depthmarks_ros.convert.stamps import stamp_ns
from depthmarks_ros.core.sync import OK, InputHealth, make_sync
from depthmarks_ros.pipeline.node_inputs import InputTopic, transported
from depthmarks_ros.pipeline.registry import message_class

TRANSPORTS = ('raw', 'compressed', 'compressedDepth')
FUTURE_TOLERANCE_S = 5.0  # a stamp this far ahead of the node's clock is reported (not dropped)
_FUTURE_NS = int(FUTURE_TOLERANCE_S * 1e9)
CLOCK_READING_S = 1.0     # _check_future reuses a reading of the node's clock this long


@dataclass(frozen=True)
class Input:
    """One input: ``role`` (the field of the node's set dataclass), message type, base topic and,
    for images, the transport ('raw': sensor_msgs/Image on ``topic``; 'compressed' /
    'compressedDepth': sensor_msgs/CompressedImage on ``topic/compressed`` / ``topic/compressedDepth``)."""
    role: str
    msg_type: type
    topic: str
    transport: str = 'raw'

    def __post_init__(self):
        if self.transport not in TRANSPORTS:
            raise ValueError(f'image transport {self.transport!r} is not one of {list(TRANSPORTS)}')
        if self.transport != 'raw' and self.msg_type is not Image:
            raise ValueError(f'{self.role}: only image inputs have a transport')

    @property
    def subscribed_type(self) -> type:
        return self.msg_type if self.transport == 'raw' else CompressedImage

    def topic_on(self, node) -> str:
        """The name ``node`` subscribes: a transport's topic under the base topic's resolved name
        (remaps applied, as image_transport: ``camera/image_raw:=/cam/image`` takes
        /cam/image/compressed), the raw topic as it is (rcl resolves it)."""
        return self.topic if self.transport == 'raw' else transported(node.resolve_topic_name(self.topic), self.transport)


def input_of(t: InputTopic) -> Input:
    """The :class:`Input` of a node's input as pipeline/node_inputs.py lists it (the one list)."""
    return Input(t.role, message_class(t.type_name), t.topic, t.transport)


def inputs_of(topics: Sequence[InputTopic]) -> Tuple[List[Input], List[Input]]:
    """(synchronised, side) :class:`Input` lists of a node's inputs (pipeline/node_inputs.py)."""
    return [input_of(t) for t in topics if not t.side], [input_of(t) for t in topics if t.side]


def image_input(role: str, topic: str, transport: str = 'raw') -> Input:
    return Input(role, Image, topic, transport)


class SyncedInputs:
    """Subscribe ``inputs`` and hand every synchronised set, as ``make(**{role: msg})``, to
    ``process`` on the node's latest-only worker.

    policy: 'exact' or 'approximate' (within ``slop`` s). ``side``: inputs kept unsynchronised
    (newest ``side_keep`` each, see :meth:`nearest`), watched like the others.
    ``warn_after``: seconds of grace before a never-received, silent or never-pairing input is
    reported (can be changed later with :meth:`set_warn_after`).
    ``shard``: a :class:`~depthmarks_ros.core.sharding.ShardSelector` when several instances of
    the node share the input (docs/multihost.md); sets it leaves to the others are counted in
    ``left_to_others``, not as drops.
    """

    def __init__(self, node, inputs: Sequence[Input], make: Callable[..., Any], process: Callable[[Any], None],
                 *, policy: str = 'exact', queue_size: int = 5, slop: float = 0.05,
                 side: Sequence[Input] = (), side_keep: int = 8, warn_after: float = 3.0,
                 jump_tolerance: float = 1.0, qos=None, name: str = 'inputs', shard=None):
        if not inputs:
            raise ValueError('need at least one synchronised input')
        self.node = node
        self.inputs, self.side = list(inputs), list(side)
        roles = [i.role for i in self.inputs + self.side]
        if len(set(roles)) != len(roles):
            raise ValueError(f'input roles must be distinct: {roles}')
        self._make, self.policy, self.slop = make, policy, slop
        # scaled out (core/sharding.ShardSelector): only this instance's frames go to the worker
        self.shard = shard
        self.left_to_others = 0
        self._lock = threading.Lock()
        # the messages name each input by the topic it is subscribed on, remaps and namespace applied
        # (rcl resolves the name so for the subscription below: its topic_name), as the user sees it
        self.topics = [node.resolve_topic_name(i.topic_on(node)) for i in self.inputs + self.side]
        names = self.topics[:len(self.inputs)]
        describe = f'approximate, slop {slop:.3f} s' if policy == 'approximate' else 'exact stamps'
        self.health = InputHealth(self.topics, warn_after, time.monotonic(), describe)
        self.sync = make_sync(policy, len(self.inputs), queue_size, slop, jump_tolerance=jump_tolerance,
                              on_event=self._on_event, names=names)
        self.worker = node.make_worker(process, name)
        self._side: Dict[str, Deque[Any]] = {i.role: collections.deque(maxlen=side_keep) for i in self.side}
        qos = qos if qos is not None else node.sensor_qos()
        self._clock_reading: Optional[Tuple[int, float]] = None   # (node clock ns, monotonic s): _check_future
        self._clock_generation = 0   # bumped by every clock jump (_on_clock_jump)
        # the callbacks are thread-safe (self._lock): in one process a publisher may call them in its
        # own thread (DepthmarksNode.create_input_subscription, ros/local_tap.py)
        subscribe = getattr(node, 'create_input_subscription', node.create_subscription)
        self.subscriptions = [
            subscribe(i.subscribed_type, i.topic_on(node), self._make_cb(k), qos)
            for k, i in enumerate(self.inputs)]
        self.subscriptions += [
            subscribe(i.subscribed_type, i.topic_on(node), self._make_side_cb(len(self.inputs) + k, i.role), qos)
            for k, i in enumerate(self.side)]
        self._jump_handle = node.get_clock().create_jump_callback(
            JumpThreshold(min_forward=None, min_backward=Duration(seconds=-jump_tolerance), on_clock_change=False),
            post_callback=self._on_clock_jump)
        self._last_logged: Tuple[int, str] = (OK, '')
        self._timer = node.create_timer(min(1.0, max(warn_after / 2.0, 0.1)), self.check)
        node.register_inputs(self)

    # ------------------------------------------------------------------ arrival
    def _too_large(self, index: int, inp: Input, msg) -> bool:
        """Refuse an image above ``max_image_pixels`` before it is queued, decoded or processed."""
        if inp.msg_type is not Image:
            return False
        limit = getattr(self.node.p, 'max_image_pixels', None)
        if not limit:
            return False
        try:
            w, h = image_size(msg)
        except ConversionError:
            return False   # the node's conversion will say what is wrong
        if w * h <= limit:
            return False
        self.node.reject('size', f'{self.topics[index]}: image {w}x{h} ({w * h / 1e6:.1f} Mpx) is larger than '
                                 f'max_image_pixels ({limit / 1e6:.1f} Mpx)')
        return True

    def _make_cb(self, index: int):
        inp = self.inputs[index]

        def cb(msg):
            now = time.monotonic()
            header = getattr(msg, 'header', None)
            stamp = stamp_ns(header) if header is not None else 0
            if self._too_large(index, inp, msg):
                with self._lock:
                    self.health.seen(index, now)
                return
            self._check_future(index, stamp, now)
            with self._lock:
                self.health.seen(index, now)
                out: Optional[tuple] = self.sync.add(index, stamp, msg)
                if out is None:
                    return
                self.health.paired(now)
                if self.shard is not None and not self.shard.takes(stamp):
                    self.left_to_others += 1      # another instance of this node processes it
                    return
                self.node.stats.frame_in()
                # submitted under the lock: in one process the callbacks run in two threads (the
                # executor's and a publisher's, ros/local_tap.py), and the latest-only worker must get
                # sets in the order they completed, or it could keep an older one
                self.worker.submit(self._make(**{i.role: m for i, m in zip(self.inputs, out)}))
        return cb

    def _make_side_cb(self, index: int, role: str):
        inp = self.side[index - len(self.inputs)]

        def cb(msg):
            if self._too_large(index, inp, msg):
                return
            with self._lock:
                self.health.seen(index, time.monotonic())
                self._side[role].append(msg)
        return cb

    def _check_future(self, index: int, stamp: int, mono: float) -> None:
        """Report a stamp more than FUTURE_TOLERANCE_S ahead of the node's clock. The clock is read
        only where the stamp may be ahead: a stamp within the tolerance of a reading taken less
        than CLOCK_READING_S ago is within it of now while the clock goes forward between readings.
        A ROS clock jump back by more than ``jump_tolerance`` (a looping bag with use_sim_time) runs
        :meth:`_on_clock_jump`, which drops the reading (a reading taken before the jump is not
        stored after it: the generation check below); a smaller step back, or a step of the system
        clock (no jump callbacks), keeps it for up to CLOCK_READING_S, so such a stamp is reported
        at most that much later. A read builds an rclpy Time: ~0.04 ms per message in the main job
        (in depth_fusion's callback for stereo/confidence, which runs in the stereo worker, issue 21)."""
        reading = self._clock_reading
        if reading is not None and mono - reading[1] < CLOCK_READING_S and stamp - reading[0] <= _FUTURE_NS:
            return
        generation = self._clock_generation
        clock_ns = self.node.get_clock().now().nanoseconds
        with self._lock:
            if generation == self._clock_generation:   # no jump since the read: the reading holds
                self._clock_reading = (clock_ns, mono)
        ahead = (stamp - clock_ns) * 1e-9
        if ahead > FUTURE_TOLERANCE_S:
            self._on_event(f'stamps of {self.sync.names[index]} are {ahead:.1f} s ahead of this node\'s clock '
                           '(sensor clock wrong, or use_sim_time differs?)')

    def _on_event(self, message: str) -> None:
        # called under self._lock from the sync, or from a callback: InputHealth.note is a deque append
        self.health.note(message, time.monotonic())
        self.node.log_problem('inputs', message)

    def _on_clock_jump(self, jump) -> None:
        with self._lock:
            self._clock_generation += 1   # a reading taken before this jump is not stored after it
            self._clock_reading = None
            self.sync.reset(f'ROS clock jumped by {jump.delta.nanoseconds * 1e-9:+.3f} s')
            for q in self._side.values():
                q.clear()

    # ------------------------------------------------------------------ queries
    def nearest(self, role: str, stamp: int, max_age_s: float):
        """The kept side-input message of ``role`` nearest in stamp to ``stamp`` (ns), if within
        ``max_age_s``; else None."""
        with self._lock:
            kept = list(self._side[role])
        if not kept:
            return None
        best = min(kept, key=lambda m: abs(stamp_ns(m.header) - stamp))
        return best if abs(stamp_ns(best.header) - stamp) <= max_age_s * 1e9 else None

    def status(self) -> Tuple[int, str]:
        """(level, reason) of these inputs now (see InputHealth.status)."""
        with self._lock:
            return self.health.status(time.monotonic(), self.sync.offsets())

    def set_slop(self, slop: float) -> None:
        """A new largest stamp difference (approximate policy), applied to the next message."""
        with self._lock:
            self.slop = slop
            self.sync.slop_ns = int(round(slop * 1e9))

    def set_warn_after(self, seconds: float) -> None:
        with self._lock:
            self.health.after = float(seconds)

    def check(self) -> None:
        """Timer: log a new or changed input problem (throttled), and the recovery."""
        level, reason = self.status()
        last_level, _last_reason = self._last_logged
        if level != OK:
            self.node.log_problem('inputs', reason, error=level >= 2)
        elif last_level != OK:
            self.node.get_logger().info('inputs recovered: sets synchronise again')
        self._last_logged = (level, reason)

    def close(self) -> None:
        """Unregister the clock jump callback (the node's shutdown calls it, before the clock goes)."""
        handle, self._jump_handle = self._jump_handle, None
        if handle is not None:
            handle.unregister()

    @property
    def dropped(self) -> int:
        return self.sync.dropped
