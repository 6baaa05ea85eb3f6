"""In-process hand-over of published messages to a recorder and to the inputs of other nodes in the same
process (no DDS, no copy).

rclpy has no intra-process communication: every message a node publishes is converted to C,
serialised, and for every subscriber (one in the same process included) taken, copied and
deserialised again (FastDDS delivers in-process without a transport, but not without those
copies). `depthmarks run` records every output of the nodes it runs in its own process; for a
640x480 image that is four to six copies of 1.2 MB, ten times a second, for a file that keeps one
message a second (issue 21).

A :class:`LocalTap` installed for an rclpy context (:func:`install`) watches resolved topic names.
:class:`~depthmarks_ros.ros.node_base.DepthmarksNode` wraps each publisher it creates on a
watched topic in a :class:`TappedPublisher`: ``publish(msg)`` hands the message object to the tap's
callback (in the publishing thread) and publishes through DDS only while DDS has a subscriber
(another node, ``ros2 topic echo``, RViz); ``get_subscription_count()`` counts the tap as one
subscriber, so outputs computed only while subscribed (``DepthmarksNode.wanted``) are still
computed for it. The tap's callback must treat the message as read-only and return quickly.

A tap that keeps one message per period of a topic (the recorder writes ``record_rate`` messages
per second, the first of each ``stamp // period``) says so (``periods``): while DDS has no
subscriber, :meth:`TappedPublisher.wanted_at` is then True only for the first stamp of each
period, and a node that asks it before building an output (``DepthmarksNode.wanted_at``) builds
that output only for the instants the recorder keeps (issue 21: the stereo node's disparity and
camera_info, 10 Hz built for a file that keeps 1 Hz). The recording is the same; the tap's
counts (the report's rate of that topic) are then the record rate.

The nodes' synchronised inputs in the same process (``DepthmarksNode.create_input_subscription``,
ros/synced_inputs.py) register with the tap on its topics too. A publisher created with
``hand_over=True`` (``DepthmarksNode.create_publisher``) hands them the message object in its own
thread, without DDS, while every DDS subscriber of the topic is one of them (rclpy converts and
serialises an image on every publish whether anyone takes it or not (benchmarks/bench_conversions.py); the
subscriber's executor then copies it twice more); as soon as DDS has another subscriber, every
message goes through DDS again, to all of them (no message twice). The count works because each
input registered here owns exactly one DDS reader of the topic, its subscription
(``create_input_subscription`` registers both; ``DepthmarksNode.destroy_subscription`` and
``destroy_node`` remove both), and because nothing is handed over on the topic before every
input's reader has matched a publisher (``Subscription.get_publisher_count()``, asked per message
only until then; remembered until the input is removed), so that the publisher's count includes
it: an outside subscriber (RViz, ``ros2 topic echo``) that matched first is not taken for an
input's reader once the publisher has matched that reader too (the check sees the reader's side of
the match; a reader matched only on its side, or only to another publisher of the topic, can still
leave a start-up window where the two sides match separately: rclpy does not name the matched
endpoints). Until then every message goes through DDS, as without the hand-over (an input's
reader gets nothing before it matches, as in plain DDS). With rmw_fastrtps_cpp the endpoints of one
context (one DDS participant: `depthmarks run`'s nodes) match both ways as they are created (both
counts 1 right after the second is created, either order, with and without the package's profile),
so the wait matters where they do not (another rmw or profile). A reader counts as matched on any
publisher of the topic: the hand-over publisher is meant to be the topic's one publisher (stereo_depth's
stereo/confidence in `depthmarks run`). The recorder's callback gets the message first (its latency runs to
the publish call, as through DDS), then the inputs. An input's callback then runs in the publisher's
thread (SyncedInputs' callbacks may so run in two threads: the executor's and a publisher's); one
that raises is counted (``input_failed``; the message as ``hand_over_failed`` in :meth:`LocalTap.topic_counts`),
logged with its traceback through the publishing node's rate-limited problem log, and the publisher goes on; ``handed_over`` and ``input_failed`` are in
``depthmarks run``'s metrics.json (``local_tap``; publishers of several threads count each message under
one lock, so ``counts()`` sees whole messages). A handed-over input may wake its node's worker
there: meant for an output published at the end of the publisher's frame (issue 21: stereo/confidence to depth_fusion in the main job; the
simulated rig's stereo pair handed over that way woke the stereo node while the rig still held the
GIL for its other topics, ~0.7 ms more wall per stereo frame in one run).

A process that runs several nodes without a recorder (``depthmarks_container``, pipeline/container.py:
the launch files' shared processes and those of `depthmarks run --multi-process`; ``run_nodes`` with
more than one node) installs a hand-over-only tap (:meth:`LocalTap.hand_over_only`): no callbacks,
every topic watched, so the topics handed over are exactly those of the ``hand_over=True``
publishers (the flag at the publisher is the one place that says so), and every input of the
process registers. Its publishers are :class:`TappedPublisher` with no recorder callback: the same
rules as above (one DDS reader per input, nothing handed over before the inputs' readers matched,
no message twice, DDS to everyone as soon as an outside subscriber exists), the tap is not counted as
a subscriber, and a node's ``wanted_at`` is True while the topic has inputs here (they take every
message), else the wrapped publisher's (:meth:`TappedPublisher.wanted_at`). One outside subscriber is let
through: `depthmarks run --multi-process`'s recorder, in the runner's process, which keeps the first
message of each record period by stamp (pipeline/recorder_node.py). Where the runner named the
topic's period (``DEPTHMARKS_RECORDED_PERIODS``, ros/recorded_topics.py: the topic's publisher is
then a :class:`~depthmarks_ros.ros.recorded_topics.RecordedPublisher`, wrapped here) and every DDS
subscriber but the inputs' is that recorder (:meth:`RecordedPublisher.only_recorder
<depthmarks_ros.ros.recorded_topics.RecordedPublisher.only_recorder>`: the ROS graph, the recorder by
node name and every other subscriber by the (name, namespace) of an input's node, looked up when the
count changes and at most every second while the answer is yes: the recorder may leave and RViz join
at the same count), the first message of each period goes through DDS, to everyone
(the inputs take that one from DDS, not handed over as well), and the others are handed over; any
other outside subscriber (RViz, ``ros2 topic echo``, another node) or a graph that does not agree
with the count yet: every message through DDS. The input then gets the first of each period from DDS
(the executor's thread) and the others handed over (the publisher's thread): under load the DDS one can
arrive after a later handed-over one (within SyncedInputs' jump tolerance: at worst that frame goes
unpaired).

In every layout, the publishing node's /diagnostics count its ``hand_over`` outputs' messages
(:meth:`LocalTap.topic_counts`; ``DepthmarksNode.publish_diagnostics``): handed over
(``hand_over_messages``), handed over with an input that raised on them (``hand_over_failed_messages``)
and published through DDS (``hand_over_dds_messages``).
"""
from __future__ import annotations

import threading
import traceback
from typing import Callable, Dict, List, Optional, Tuple

from depthmarks_ros.convert.stamps import FirstOfPeriod, stamp_ns
from depthmarks_ros.ros.recorded_topics import RecordedPublisher   # (imports nothing of this module)

_lock = threading.Lock()
_taps: Dict[int, 'LocalTap'] = {}
_NO_INPUTS: Tuple[tuple, tuple, tuple] = ((), (), ())
_NO_MATCH: Tuple[tuple, tuple] = ((), ())
#: the node owning an input: (node name, node namespace), as the ROS graph names a subscription's node
Owner = Tuple[str, str]


def _reader_matched(subscription) -> Optional[bool]:
    """Whether an input's DDS reader has matched a publisher; None for a subscription destroyed behind
    the node's back (``sub.destroy()`` instead of ``destroy_subscription``, which removes the input
    first): its reader is gone, so :meth:`LocalTap.matched_inputs` drops that input (the publish does
    not raise, and the topic's other inputs are not held back by it). Only before its reader was seen
    matched: once matched it is not asked again (no C call per message), so a subscription destroyed
    behind the node's back after that stays an input and would hide one outside subscriber from the
    count; destroy inputs with ``DepthmarksNode.destroy_subscription``."""
    try:
        return subscription.get_publisher_count() >= 1
    except Exception:   # noqa: BLE001 - rclpy's InvalidHandle (and its like) for a destroyed handle
        return None


class LocalTap:
    """{resolved topic name: callback(msg)} for the nodes of one rclpy context."""

    def __init__(self, callbacks: Dict[str, Callable[[object], None]], periods: Optional[Dict[str, int]] = None,
                 hand_over_all: bool = False):
        """``periods``: {topic: ns} for topics of which the callback uses only the first message
        of each period by header stamp (missing or 0: every message). ``hand_over_all``: no recorder in
        this process (:meth:`hand_over_only`): every topic is tapped, for the hand-over only."""
        self.callbacks = dict(callbacks)
        self.periods = dict(periods or {})
        self.hand_over_all = bool(hand_over_all)
        # topic -> (in-process inputs' callbacks, (callback, subscription) of those whose DDS reader has
        # not been seen matched yet, the owning node of each callback (same order)), replaced whole under
        # the lock: a publisher reads it without
        self._inputs: Dict[str, Tuple[Tuple[Callable[[object], None], ...], Tuple[Tuple[Callable, object], ...],
                                      Tuple[Optional[Owner], ...]]] = {}
        self._inputs_lock = threading.Lock()
        # the counts (:meth:`add`, :meth:`counts`), written by the publishing threads of several nodes
        self._counts_lock = threading.Lock()
        self.delivered = 0        # messages handed to the callbacks
        self.failed = 0           # callbacks that raised (the node's frame goes on)
        self.handed_over = 0      # messages handed to in-process inputs instead of DDS
        self.input_failed = 0     # input callbacks that raised
        # hand-over topic -> [messages handed over, through DDS, handed over with an input that raised]
        self._by_topic: Dict[str, List[int]] = {}

    @classmethod
    def hand_over_only(cls) -> 'LocalTap':
        """The tap of a process that runs several nodes without a recorder (pipeline/container.py,
        ``run_nodes``): ``hand_over=True`` publishers hand their messages to the process's inputs."""
        return cls({}, hand_over_all=True)

    @property
    def recorder(self) -> bool:
        """Whether a recorder of this process takes the tapped topics (`depthmarks run`'s single process)."""
        return not self.hand_over_all

    def tapped(self, topic: str) -> bool:
        """Whether the topic's ``hand_over`` publishers and its inputs in this process meet here."""
        return self.hand_over_all or topic in self.callbacks

    def callback(self, topic: str) -> Optional[Callable[[object], None]]:
        return self.callbacks.get(topic)

    def period(self, topic: str) -> int:
        """ns: the callback uses the first message of each period of this topic (0: every one)."""
        return int(self.periods.get(topic, 0))

    def add_input(self, topic: str, callback: Callable[[object], None], subscription=None,
                  owner: Optional[Owner] = None) -> None:
        """An input of a node of this process on a tapped ``topic`` (resolved name): its publishers
        hand it their messages while it and its like are the topic's only DDS subscribers. The
        callback runs in the publisher's thread (it must be thread-safe, as SyncedInputs' are) and
        must treat the message as read-only. ``subscription``: the input's own DDS reader of the
        topic (its rclpy Subscription): nothing is handed over on the topic until it has matched a
        publisher (``get_publisher_count()``, asked per message only until then), so that the
        publisher's subscriber count includes it (None: taken as matched). ``owner``: (name, namespace)
        of the node that owns the subscription, as the ROS graph names it: where the recorder of another
        process subscribes too, the other subscribers must be these nodes (None: never matches one)."""
        with self._inputs_lock:
            callbacks, unmatched, owners = self._inputs.get(topic, _NO_INPUTS)
            if subscription is not None:
                unmatched += ((callback, subscription),)
            self._inputs[topic] = (callbacks + (callback,), unmatched, owners + (owner,))

    def remove_input(self, topic: str, callback: Callable[[object], None]) -> None:
        """Take ``callback`` off ``topic`` (with its subscription: one added again is asked anew)."""
        with self._inputs_lock:
            callbacks, unmatched, owners = self._inputs.get(topic, _NO_INPUTS)
            kept = [k for k, c in enumerate(callbacks) if c is not callback]
            if kept:
                self._inputs[topic] = (tuple(callbacks[k] for k in kept),
                                       tuple(u for u in unmatched if u[0] is not callback),
                                       tuple(owners[k] for k in kept))
            else:
                self._inputs.pop(topic, None)

    def inputs(self, topic: str) -> Tuple[Callable[[object], None], ...]:
        """The callbacks of the topic's in-process inputs, matched or not."""
        return self._inputs.get(topic, _NO_INPUTS)[0]

    def matched_inputs(self, topic: str) -> Tuple[Callable[[object], None], ...]:
        """The topic's inputs when the DDS reader of each has matched a publisher, else () (the
        publisher's count may not include one yet: a message must go through DDS). A reader seen
        matched is remembered until its input is removed: then no C call per message."""
        return self.matched(topic)[0]

    def matched(self, topic: str) -> Tuple[Tuple[Callable[[object], None], ...], Tuple[Optional[Owner], ...]]:
        """:meth:`matched_inputs` and the owning node of each (the same order; ``((), ())`` when not all matched)."""
        callbacks, unmatched, owners = self._inputs.get(topic, _NO_INPUTS)
        if not unmatched:
            return callbacks, owners
        with self._inputs_lock:   # remove_input waits: the subscription is not destroyed under the call
            callbacks, unmatched, owners = self._inputs.get(topic, _NO_INPUTS)
            state = [(u, _reader_matched(u[1])) for u in unmatched]
            gone = tuple(u[0] for u, matched in state if matched is None)
            left = tuple(u for u, matched in state if matched is False)
            if gone:
                kept = [k for k, c in enumerate(callbacks) if not any(c is g for g in gone)]
                callbacks, owners = tuple(callbacks[k] for k in kept), tuple(owners[k] for k in kept)
            if len(left) < len(unmatched):
                if callbacks:
                    self._inputs[topic] = (callbacks, left, owners)
                else:
                    self._inputs.pop(topic, None)
        return _NO_MATCH if left else (callbacks, owners)

    def counts(self) -> Dict[str, int]:
        """What went where (`depthmarks run`'s metrics.json): to the recorder (``delivered``,
        ``failed``) and to in-process inputs instead of DDS (``handed_over``, ``input_failed``)."""
        with self._counts_lock:
            return {'delivered': self.delivered, 'failed': self.failed,
                    'handed_over': self.handed_over, 'input_failed': self.input_failed}

    def add(self, delivered: int = 0, failed: int = 0, handed_over: int = 0, input_failed: int = 0,
            topic: Optional[str] = None, dds: int = 0) -> None:
        """Count one published message's fate (publishers in several threads: one lock per message);
        ``topic``: a hand-over publisher's, whose message was handed over (``handed_over`` > 0 or
        ``input_failed`` > 0) or went through DDS (``dds``: :meth:`topic_counts`)."""
        with self._counts_lock:
            self.delivered += delivered
            self.failed += failed
            self.handed_over += handed_over
            self.input_failed += input_failed
            if topic is not None:
                counts = self._by_topic.setdefault(topic, [0, 0, 0])
                if input_failed:
                    counts[2] += 1
                elif handed_over:
                    counts[0] += 1
                counts[1] += dds

    def topic_counts(self, topic: str) -> Dict[str, int]:
        """The messages of a hand-over topic published in this process (the publishing node's
        /diagnostics): handed to all its inputs instead of DDS (``handed_over``), handed over with an
        input that raised on it (``hand_over_failed``: that input missed it) and through DDS (``dds``)."""
        with self._counts_lock:
            handed, dds, failed = self._by_topic.get(topic, (0, 0, 0))
        return {'handed_over': handed, 'hand_over_failed': failed, 'dds': dds}


def install(context, tap: LocalTap) -> None:
    """Publishers created from now on by DepthmarksNodes of ``context`` on the tap's topics are tapped."""
    with _lock:
        _taps[id(context)] = tap


def uninstall(context) -> None:
    with _lock:
        _taps.pop(id(context), None)


def tap_for(context) -> Optional[LocalTap]:
    with _lock:
        return _taps.get(id(context))


class TappedPublisher:
    """An rclpy Publisher whose messages also go to a local tap (see the module docstring).

    Everything else (``topic_name``, ``qos_profile``, ``handle`` ...) is the wrapped publisher's.
    """

    def __init__(self, publisher, deliver: Optional[Callable[[object], None]], tap: Optional[LocalTap] = None,
                 hand_over: bool = False, log_problem: Optional[Callable[..., object]] = None):
        """``deliver``: the recorder's callback (None: a hand-over-only tap, no recorder in this
        process). ``publisher``: rclpy's, or a :class:`~depthmarks_ros.ros.recorded_topics.RecordedPublisher`
        (a recorder in another process keeps one message per period of the topic: the module docstring).
        ``log_problem(key, message, reason=...)``: the publishing node's rate-limited problem log
        (DepthmarksNode.log_problem), told of an in-process input that raised on a handed-over message."""
        self.publisher = publisher
        self._log_problem = log_problem
        self._deliver = deliver
        self._tap = tap
        self._hand_over_to = tap if hand_over else None   # in-process inputs get the object (module doc)
        self._period = tap.period(publisher.topic_name) if tap is not None and deliver is not None else 0
        self._first = FirstOfPeriod(self._period)   # the periods of the messages handed over
        # the recorder of another process, when it keeps one message per period (ros/recorded_topics.py)
        self._recorded = publisher if isinstance(publisher, RecordedPublisher) else None

    def wanted_at(self, stamp_ns: int) -> bool:
        """Whether a message stamped ``stamp_ns`` would be used: always while DDS has a subscriber
        or the tap takes every message; else only the first of each of the tap's periods (no
        side effect: :meth:`publish` marks the period as served). Without a recorder in this process:
        while the topic has inputs here, whether DDS has a subscriber (the inputs want every message;
        not the RecordedPublisher's answer: asked about a recorder beside no inputs, it would undo the
        graph lookup :meth:`publish` keeps for the recorder beside the inputs), else the wrapped
        publisher's answer (a RecordedPublisher's: with the recorder alone, the first of each period)."""
        if self._deliver is None:
            at = getattr(self.publisher, 'wanted_at', None)
            if at is None or (self._hand_over_to is not None and self._hand_over_to.inputs(self.publisher.topic_name)):
                return self.publisher.get_subscription_count() > 0
            return at(stamp_ns)
        if not self._period or self.publisher.get_subscription_count() > 0:
            return True
        return self._first.wanted(stamp_ns)

    def hands_over(self, msg=None) -> bool:
        """Whether ``msg`` published now would go to the topic's in-process inputs instead of DDS
        (without ``msg``: False where that depends on its stamp, a recorder in another process)."""
        return self._hand_over_to is not None and bool(self._handed_inputs(msg)[0])

    def _handed_inputs(self, msg) -> Tuple[Tuple[Callable[[object], None], ...], int]:
        """(the in-process inputs that ``msg`` published now goes to instead of DDS, () for DDS; the DDS
        subscriber count). Each input registered with the tap owns exactly one DDS reader of the topic (its
        subscription; DepthmarksNode.create_input_subscription / destroy_subscription keep the two
        together), and matched() gives them only once each of those has matched, read before the count
        so that the count includes them: no more subscribers than inputs then means DDS would only reach
        inputs of this process; more, all of them the recorder of another process besides the inputs'
        own nodes: DDS (to all) only for the first of its period (the module docstring)."""
        tap = self._hand_over_to
        inputs, owners = tap.matched(self.publisher.topic_name) if tap is not None else _NO_MATCH
        subscribers = self.publisher.get_subscription_count()
        if inputs and (subscribers <= len(inputs) or (msg is not None and self._recorder_has_it(owners, msg))):
            return inputs, subscribers
        return (), subscribers

    def _recorder_has_it(self, owners, msg) -> bool:
        """Whether every DDS subscriber but those of the inputs' nodes ``owners`` is the recorder of another
        process, and it keeps no message of ``msg``'s period any more (the first went through DDS): ``msg``
        need not cross DDS."""
        recorded = self._recorded
        if recorded is None:
            return False
        header = getattr(msg, 'header', None)
        return header is not None and not recorded.keeps(stamp_ns(header)) and recorded.only_recorder(owners)

    def publish(self, msg) -> None:
        if self._period:
            header = getattr(msg, 'header', None)
            if header is not None:
                self._first.mark(stamp_ns(header))
        inputs, subscribers = self._handed_inputs(msg)
        if inputs:
            delivered, failed = self._to_tap(msg)   # the recorder first: its latency runs to the publish call
            handed = self._hand_over(inputs, msg)
            self._hand_over_to.add(delivered=delivered, failed=failed, handed_over=handed,
                                   input_failed=len(inputs) - handed, topic=self.publisher.topic_name)
            return
        if subscribers > 0:
            self.publisher.publish(msg)
        delivered, failed = self._to_tap(msg)
        if self._tap is not None:
            self._tap.add(delivered=delivered, failed=failed,
                          topic=self.publisher.topic_name if self._hand_over_to is not None else None,
                          dds=1 if subscribers > 0 else 0)

    def hand_over_counts(self) -> Dict[str, int]:
        """This topic's messages handed over and through DDS (:meth:`LocalTap.topic_counts`)."""
        return self._tap.topic_counts(self.publisher.topic_name) if self._tap is not None else {}

    def _to_tap(self, msg) -> Tuple[int, int]:
        """(delivered, failed): (1, 0) the tap's callback took ``msg``; (0, 1) it raised; (0, 0) no callback."""
        if self._deliver is None:
            return 0, 0
        try:                         # a recorder error must not cost the node the rest of its frame
            self._deliver(msg)
        except Exception:            # noqa: BLE001 - counted; the recording misses this message
            return 0, 1
        return 1, 0

    def _hand_over(self, inputs, msg) -> int:
        """How many of ``inputs`` took ``msg`` (the others raised)."""
        handed = 0
        for callback in inputs:
            try:
                callback(msg)
            except Exception as exc:  # noqa: BLE001 - counted and logged; that input misses this message
                if self._log_problem is not None:
                    # throttled on the topic and the exception's type: its text (an address, a number)
                    # varies per frame; the message and its traceback are built only when logged
                    topic = self.publisher.topic_name
                    self._log_problem('hand_over', lambda exc=exc: (
                        f'{topic}: an in-process input failed on a handed-over message ({type(exc).__name__}: '
                        f'{exc}); the publisher goes on:\n'
                        + ''.join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
                        reason=f'{topic}: {type(exc).__name__}')
            else:
                handed += 1
        return handed

    def get_subscription_count(self) -> int:
        """The DDS subscribers, and the recorder's callback as one (none in a hand-over-only tap)."""
        return self.publisher.get_subscription_count() + (self._deliver is not None)

    def __getattr__(self, name):
        return getattr(self.publisher, name)
