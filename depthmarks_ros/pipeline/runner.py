"""Run the pipeline's nodes in one process (or in the launch files' processes), record every output topic to MCAP,
and write previews and metrics. Used by `depthmarks run` (the README's main command) on machines
without `ros2 launch`.

Which nodes run, their parameters, remappings, namespace and the rig's static transforms come from
:func:`depthmarks_ros.pipeline.graph.plan`, as for the launch files; the runner only adds its own
extras (the sim rate, ``-p`` overrides) on top of the plan.
"""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import rclpy
from rclpy.signals import SignalHandlerOptions

from depthmarks_ros.pipeline import graph as g
from depthmarks_ros.pipeline import publication
from depthmarks_ros.pipeline.cpu import CpuMeter
from depthmarks_ros.pipeline.graph import write_params_file  # noqa: F401 - re-exported (tests)
from depthmarks_ros.pipeline.player import McapPlayer
from depthmarks_ros.pipeline.recorder import McapRecorder, TopicStats
from depthmarks_ros.pipeline.recorder_node import TF_STATIC, RecordedTopic, RecorderNode
from depthmarks_ros.pipeline.registry import load_node_class
from depthmarks_ros.pipeline.report import (PREVIEW_KEEP, SCORED_TOPICS, accuracy, exit_note, node_counters,
                                           write_metrics, write_previews)
from depthmarks_ros.ros import local_tap
from depthmarks_ros.ros.recorded_topics import node_process_env
from depthmarks_ros.ros.executors import StopSignals, freeze_startup_heap, make_executor
from depthmarks_ros.ros.node_base import bound_exit, stop_and_join
from depthmarks_ros.ros.process import keep_large_buffers
from depthmarks_ros.ros.worker import os_thread_name

DEFAULT_NODES = ['sim', 'stereo', 'fusion', 'face', 'body']
SENSOR_TOPICS = list(g.SENSOR_TOPICS)
# measured at a DDS subscriber (latency = stamp -> arrival there, as a user's node sees it); the other
# recorded topics of a single-process run are handed over in the process (latency = stamp -> publish)
DDS_MEASURED = ('stereo/depth', 'fusion/depth', 'face/landmarks', 'body/keypoints', 'mono/depth',
                'camera/image_raw', 'lidar/points')
CLOUD_NODES = ('stereo_depth', 'depth_fusion')   # points_period follows the record rate (plan_graph)
KEY_TOPICS = ('stereo/depth', 'fusion/depth', 'face/landmarks', 'body/keypoints', 'mono/depth', 'camera/image_raw')


@dataclass
class RunConfig:
    duration: float = 20.0
    output: str = 'output/run'
    nodes: List[str] = field(default_factory=lambda: list(DEFAULT_NODES))
    source: str = 'sim'              # sim | video | camera | bag
    video: str = ''
    camera: str = ''
    bag: str = ''
    record: bool = True
    record_rate: float = 1.0         # messages per second and topic written to MCAP; 0 = all
    use_dds_profile: bool = True
    params_dir: str = ''             # '' = the package's config/
    rate: Optional[float] = None     # sim_rig camera and LiDAR rate; None = its config file's
    mono_model: str = ''
    overrides: Dict[str, Dict[str, object]] = field(default_factory=dict)
    progress: bool = True
    multi_process: bool = False      # the nodes in processes as `ros2 launch` runs them (graph.Graph.processes)
    compose: str = 'true'            # with multi_process: launch's compose:= (graph.COMPOSE_CHOICES: true, false, all, people)
    start: Optional[List[str]] = None  # the launch files' nodes:= (which nodes of the graph to start)
    namespace: str = ''
    frame_prefix: str = ''
    use_sim_time: bool = False
    calibration_dir: str = ''
    # `depthmarks run` (its own process): once the report is written, the DDS teardown and the exit
    # get this long (ros/node_base.bound_exit); None where the caller lives on (tests)
    exit_deadline_s: Optional[float] = None


def graph_config(cfg: RunConfig) -> g.GraphConfig:
    """The graph arguments of a run: `depthmarks run` options as the launch files' arguments."""
    names = set(g.resolve(cfg.nodes)) & set(g.PROCESSING)   # the source nodes come from cfg.source
    source = {'sim': 'sim', 'video': 'video', 'camera': 'video', 'bag': 'topics'}[cfg.source]
    return g.GraphConfig(
        source=source, stereo='stereo_depth' in names, fusion='depth_fusion' in names,
        mono='mono_depth' in names, face='face_landmarks' in names, body='body_pose' in names,
        start=g.parse_nodes(','.join(cfg.start)) if cfg.start else None, calibration_dir=cfg.calibration_dir,
        mono_model=cfg.mono_model, video=cfg.video or cfg.camera, namespace=g.normalise_namespace(cfg.namespace),
        frame_prefix=cfg.frame_prefix, use_sim_time=cfg.use_sim_time, compose=cfg.compose)


def plan_graph(cfg: RunConfig) -> g.Graph:
    """The graph of a run, with the runner's extras (sim rate, ``-p`` overrides) on the planned overrides."""
    graph = g.plan(graph_config(cfg))
    nodes = []
    for n in graph.nodes:
        extra = dict(n.overrides)
        if n.name == 'sim_rig' and cfg.rate is not None:
            extra.update(rate=cfg.rate, lidar_rate=cfg.rate)
        if n.name in CLOUD_NODES:
            # the recorder keeps one cloud per record period: the node builds only those (by stamp)
            extra['points_period'] = 1.0 / cfg.record_rate if cfg.record_rate > 0 else 0.0
        extra.update(cfg.overrides.get(n.name, {}))
        nodes.append(g.NodeLaunch(n.name, n.namespace, n.params_file, extra, n.remappings, n.respawn))
    graph.nodes = nodes
    return graph


def node_plan(cfg: RunConfig) -> Dict[str, Dict[str, object]]:
    """{node name: parameter overrides} of a run (a view of :func:`plan_graph`)."""
    return {n.name: n.overrides for n in plan_graph(cfg).nodes}


def prepare_environment(use_dds_profile: bool) -> None:
    """Loopback discovery and the package's FastDDS profile unless the user set their own."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if use_dds_profile:
        os.environ.setdefault(publication.PROFILES_ENV, publication.loopback_profile())


def node_ros_args(node: g.NodeLaunch, params_file: str) -> List[str]:
    """``--ros-args`` of a planned node: its params file, namespace and remappings."""
    return process_ros_args(g.ProcessLaunch(node.name, (node,)), [params_file])


def process_ros_args(proc: g.ProcessLaunch, params_files: List[str]) -> List[str]:
    """``--ros-args`` of a process of the graph: its nodes' params files, the namespace and the
    remappings (node-targeted in a shared process: :attr:`graph.ProcessLaunch.remappings`)."""
    args = ['--ros-args']
    for path in params_files:
        args += ['--params-file', path]
    if proc.namespace:
        args += ['-r', f'__ns:={proc.namespace}']
    for src, dst in proc.remappings:
        args += ['-r', f'{src}:={dst}']
    return args


def recorded_topics(graph: g.Graph, started: List[str]) -> List[RecordedTopic]:
    """Every output of the started nodes (names resolved through the graph) and /diagnostics."""
    topics: Dict[str, RecordedTopic] = {}
    for name in started:
        for topic, type_name in g.NODES[name].outputs:
            topics[topic] = RecordedTopic(topic, graph.resolve_topic(topic, name), type_name)
    topics['/diagnostics'] = RecordedTopic('/diagnostics', '/diagnostics', 'diagnostic_msgs/msg/DiagnosticArray',
                                           decimate=False)
    return list(topics.values())


def recorder_routes(topics: List[RecordedTopic], multi_process: bool) -> tuple:
    """(local, filtered): the resolved names the recorder takes from this process's publishers, and
    those it subscribes with a stamp filter (the filter itself only with DEPTHMARKS_RECORDER_FILTER=1;
    without it their node processes still build them once per record period, ros/recorded_topics.py).
    Recorded only (not DDS_MEASURED): handed over in one process, across processes built once per
    record period (and, opted in, filtered by stamp), except the topics accuracy() matches by stamp with the
    measured ones (SCORED_TOPICS: sim/depth_gt, fusion/depth_sigma), which cross DDS whole so that
    both modes score the same ~30 latest instants (filtered at the record rate, few of their stamps
    fell inside the last 30 measured frames)."""
    recorded_only = [t.name for t in topics if t.key not in DDS_MEASURED]
    if not multi_process:
        return recorded_only, []
    return [], [t.name for t in topics if t.key not in DDS_MEASURED and t.key not in SCORED_TOPICS]


class PipelineRunner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.nodes = []                             # in-process nodes (and the player, the recorder)
        self.node_names: List[str] = []
        self.started: List[str] = []                # graph node names that run (in or out of process)
        self.skipped: Dict[str, str] = {}
        self.procs: Dict[str, subprocess.Popen] = {}  # multi-process: process name -> process
        self.async_topics: Dict[str, List[str]] = {}  # process -> topics it publishes asynchronously (publication.py)
        self.proc_nodes: Dict[str, List[str]] = {}    # multi-process: process name -> its node names
        self._class_names: Dict[str, str] = {}        # multi-process: node name -> its class's name (its log lines)
        self.cpu_targets: Dict[str, tuple] = {}     # label -> (pid, tid or None)
        self.cpu_share: Dict[str, Optional[float]] = {}
        self.cpu_threads: Dict[str, float] = {}     # every thread, grouped (CpuMeter groups)
        self.page_faults: Dict[str, float] = {}     # minor page faults per second, per process
        self._thread_owner: Dict[str, str] = {}     # OS thread name of a worker -> node name
        self.executor_name = ''
        self.stopped_by_signal = ''
        self.filtered_topics: List[str] = []        # recorded only, stamp-filtered at the publisher (opt-in)
        self.local_tap = None                        # the recorder's tap of this process (ros/local_tap.py)
        self._child_env: Optional[Dict[str, str]] = None   # multi-process: the node processes' environment
        # (None until run() sets it: inherit this process's, never an empty one)

    def run(self) -> dict:
        cfg = self.cfg
        prepare_environment(cfg.use_dds_profile)
        keep_large_buffers()   # no page faults per received image (ros/process.py)
        os.makedirs(os.path.join(cfg.output, 'params'), exist_ok=True)
        graph = plan_graph(cfg)
        for note in graph.notes:
            print(f'[depthmarks run] {note}', file=sys.stderr)
        stats = TopicStats(keep_last=PREVIEW_KEEP, keep_last_of={t: 30 for t in SCORED_TOPICS})
        t_wall = time.monotonic()
        # SIGINT ignored after a stop only where the process ends after the run (the exit deadline's own
        # process, cli/main.py): a caller's in-process run gets its previous handler back
        with StopSignals(restore=True, ignore_sigint_after_stop=cfg.exit_deadline_s is not None) as stop:
            # an own context: the runner also works inside a process that already uses rclpy;
            # no rclpy signal handlers: SIGINT/SIGTERM end the run early, with its report (StopSignals)
            context = rclpy.Context()
            rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
            # one executor for every node (EventsExecutor where rclpy has it): callbacks only hand
            # work to the nodes' worker threads
            executor, self.executor_name = make_executor(context)
            recorder = McapRecorder(os.path.join(cfg.output, 'recording.mcap')) if cfg.record else None
            ran, report = False, None
            try:
                # the recorder first: in one process, the topics it does not measure through DDS are
                # handed over by the nodes' publishers (ros/local_tap.py), set up before they exist
                topics = recorded_topics(graph, [n.name for n in graph.nodes])
                # recorded only: in one process handed over by the publishers, across processes built
                # once per record period by their nodes (DDS stamp filter at the publisher only when opted in)
                local, filtered = recorder_routes(topics, cfg.multi_process)
                rec_node = RecorderNode(topics, stats, recorder, cfg.record_rate, graph.static_transforms,
                                        local=local, filtered=filtered, context=context)
                self.filtered_topics = sorted(t.key for t in topics if t.name in rec_node.filters)
                # the node processes build those topics only for the instants recorded (while only
                # the recorder subscribes; ros/recorded_topics.py)
                self._child_env = node_process_env({name: rec_node.period_ns for name in rec_node.once_per_period})
                self.local_tap = rec_node.local_tap()
                local_tap.install(context, self.local_tap)
                if cfg.multi_process:
                    for proc in graph.processes():
                        self._start_process(proc, graph)
                else:
                    for node in graph.nodes:
                        self._start_node(node, context, executor)
                if cfg.source == 'bag':
                    self._add(McapPlayer(cfg.bag, topics=SENSOR_TOPICS, loop=True, context=context), executor)
                self._add(rec_node, executor)
                self.cpu_targets['whole process' if not cfg.multi_process else 'runner (recorder)'] = (os.getpid(), None)
                self._wait_for_processes(executor, stats, stop)
                freeze_startup_heap()      # full GC pauses walk only what the run makes (executors.py)
                self._spin(executor, stats, stop)
                if stop.received:
                    self.stopped_by_signal = signal.Signals(stop.received[0]).name
                ran = True
            finally:
                gc.unfreeze()
                local_tap.uninstall(context)
                self._stop_processes()
                executor.shutdown()
                stop_and_join(self.nodes)   # every node's workers asked first, joined against one deadline
                try:
                    if recorder is not None:
                        recorder.close()
                    if ran:
                        # still inside StopSignals: a second SIGINT (ros2 launch, a process group) that arrives
                        # while the report is written is recorded and ignored, not a KeyboardInterrupt. Written
                        # before the DDS teardown, which Fast DDS can hang (docs/pipeline.md, Stopping)
                        report = self._report(stats, time.monotonic() - t_wall, graph)
                        if cfg.exit_deadline_s is not None:   # counted from here: the report is written
                            bound_exit(cfg.exit_deadline_s, time.monotonic(), 0, 'depthmarks run')
                finally:
                    # also where the report failed (disk full, permissions): the nodes and the context go
                    for node in self.nodes:
                        node.destroy_node()
                    rclpy.try_shutdown(context=context)
            return report

    def _add(self, node, executor) -> None:
        self.nodes.append(node)
        self.node_names.append(node.get_fully_qualified_name())
        executor.add_node(node)

    def _start_node(self, node: g.NodeLaunch, context, executor) -> None:
        """One planned node in this process; a node that cannot start is skipped."""
        cls, reason = load_node_class(node.name)
        if cls is None:
            self._skip(node.name, reason)
            return
        pfile = os.path.join(self.cfg.output, 'params', f'{node.name}.yaml')
        write_params_file(pfile, node, config_dir=self.cfg.params_dir or None)
        try:
            instance = cls(cli_args=node_ros_args(node, pfile), context=context)
        except Exception as exc:  # noqa: BLE001 - a node that cannot start must not stop the others
            self._skip(node.name, f'{node.name} failed to start: {type(exc).__name__}: {exc}')
            return
        for pname in self.cfg.overrides.get(node.name, {}):
            if not instance.has_parameter(pname):
                print(f'[depthmarks run] {node.name} has no parameter {pname!r}: ignored', file=sys.stderr)
        self._add(instance, executor)
        self.started.append(node.name)
        for thread_name, tid in instance.worker_threads():
            self.cpu_targets[f'{node.name} ({thread_name})'] = (os.getpid(), tid)
            self._thread_owner[os_thread_name(thread_name)] = node.name

    def _skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        print(f'[depthmarks run] {reason}: skipped', file=sys.stderr)

    def _start_process(self, proc: g.ProcessLaunch, graph: g.Graph) -> None:
        """Multi-process: one process of the graph (a node, or a group of nodes in the container),
        started as the launch files start it; a node whose class cannot be loaded is left out."""
        nodes = []
        for node in proc.nodes:
            cls, reason = load_node_class(node.name)
            if cls is None:
                self._skip(node.name, reason)
                continue
            nodes.append(node)
            self._class_names[node.name] = cls.__name__
        if not nodes:
            return
        proc = g.ProcessLaunch(proc.name, tuple(nodes)) if len(nodes) < len(proc.nodes) else proc
        pfiles = []
        for node in nodes:
            pfile = os.path.join(self.cfg.output, 'params', f'{node.name}.yaml')
            write_params_file(pfile, node, proc.params_key(node), config_dir=self.cfg.params_dir or None)
            pfiles.append(pfile)
        env = self._child_env if self._child_env is not None else dict(os.environ)
        # a shared process asked to publish per topic (DEPTHMARKS_CONTAINER_PUBLICATION_MODE=OUTBOUND|CROSSING)
        config_dir = self.cfg.params_dir or None
        setup = publication.process_setup(graph, proc, env, config_dir)
        for note in setup.notes:
            print(f'[depthmarks run] {note}', file=sys.stderr)
        if setup.env:
            self.async_topics[proc.name] = list(setup.topics)
            env = dict(env, **setup.env)
        log = open(os.path.join(self.cfg.output, f'{proc.name}.log'), 'w')
        popen = subprocess.Popen([sys.executable, '-m', proc.module, *proc.arguments, *process_ros_args(proc, pfiles)],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.procs[proc.name] = popen
        self.proc_nodes[proc.name] = [n.name for n in nodes]
        for node in nodes:
            self.node_names.append(node.fully_qualified_name)
            self.started.append(node.name)
        self.cpu_targets[proc.name] = (popen.pid, None)

    def _failed_to_start(self) -> Dict[str, str]:
        """{node: its start-up error} of the nodes that did not start (ros/node_base.run_nodes prints
        '<NodeClass>: cannot start: ...' to its process's log): in a shared process the others run on; a
        node alone exits 1, which _stop_processes then does not report as a crash (the same error in
        every run, e.g. a missing model, is not a process that died)."""
        from depthmarks_ros.ros.node_base import start_error_prefix
        failed = {}
        for name, nodes in self.proc_nodes.items():
            try:
                with open(os.path.join(self.cfg.output, f'{name}.log'), errors='replace') as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            for node in nodes:
                line = next((ln for ln in lines if ln.startswith(start_error_prefix(self._class_names[node]))), None)
                if line:
                    where = f'in process {name}, ' if len(nodes) > 1 else ''
                    failed[node] = f'{line} ({where}see {name}.log)'
        return failed

    def _wait_for_processes(self, executor, stats: TopicStats, stop: StopSignals, timeout: float = 90.0) -> None:
        """Multi-process: until every node has sent /diagnostics (constructed and spinning), at most
        ``timeout`` s; the run's duration counts from then (start-up takes seconds on a loaded machine,
        and is not what a run measures). A node of a shared process that could not start is not
        waited for (its process runs on with the others)."""
        wanted = {n for names in self.proc_nodes.values() for n in names}
        fqns = set(self.node_names)
        end = time.monotonic() + timeout
        next_log_check = 0.0
        while wanted and time.monotonic() < end and not stop.requested:
            if time.monotonic() >= next_log_check:
                wanted -= set(self._failed_to_start())
                next_log_check = time.monotonic() + 0.5
            if wanted <= set(node_counters(stats.last.get('/diagnostics', []), only=fqns)):
                return
            if any(p.poll() is not None for p in self.procs.values()):
                return   # one died at start-up: reported as skipped when the run stops
            executor.spin_once(timeout_sec=0.1)
        if wanted and not stop.requested:
            print(f'[depthmarks run] node processes not all up after {timeout:.0f} s', file=sys.stderr)

    def _stop_processes(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10 * len(self.proc_nodes[name]))   # a node process ends within EXIT_DEADLINE_S (8.5 s) of its signal (ros/node_base.py)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        not_started = self._failed_to_start()
        for name, proc in self.procs.items():
            nodes = self.proc_nodes[name]
            if proc.returncode != 0 and not (len(nodes) == 1 and nodes[0] in not_started):
                what = name if nodes == [name] else f'{name} ({", ".join(nodes)})'
                self.skipped[name] = exit_note(what, proc.returncode, name)
        self.skipped.update(not_started)

    def _spin(self, executor, stats: TopicStats, stop: StopSignals) -> None:
        start = time.monotonic()
        next_print = start + 1.0
        meter = CpuMeter(self.cpu_targets, self._cpu_groups())
        steady_from = start + min(2.0, self.cfg.duration / 3)   # CPU shares skip start-up
        started = False
        key_topics = [t for t in KEY_TOPICS if any(t == o for n in self.started for o, _ in g.NODES[n].outputs)]
        while time.monotonic() - start < self.cfg.duration and not stop.requested:
            executor.spin_once(timeout_sec=0.05)
            if not started and time.monotonic() >= steady_from:
                meter.start(time.monotonic())
                started = True
            if self.cfg.progress and time.monotonic() >= next_print:
                next_print += 1.0
                parts = [f'{t} {self._rate(stats, t):4.1f} Hz' for t in key_topics]
                print(f'\r[depthmarks run {time.monotonic() - start:5.1f}/{self.cfg.duration:.0f} s] '
                      + ' | '.join(parts), end='', file=sys.stderr, flush=True)
        if started:
            self.cpu_share = meter.stop(time.monotonic())
            self.cpu_threads = meter.group_shares
            names = {proc.pid: name for name, proc in self.procs.items()}
            names[os.getpid()] = 'runner' if self.cfg.multi_process else 'whole process'
            self.page_faults = {names[pid]: rate for pid, rate in meter.fault_rates.items() if pid in names}
        if self.cfg.progress:
            print(file=sys.stderr)

    def _cpu_groups(self) -> Dict[int, Callable[[int, str], str]]:
        """How every thread of this process (and of each node process) is counted in ``cpu_threads``:
        a node's worker threads and the native threads they started (their OS names are inherited),
        the main thread (the executor: message delivery, the recorder's callbacks), MediaPipe's
        own threads, the MCAP writer, and the rest (DDS, pools started elsewhere)."""
        main_tid = threading.main_thread().native_id
        owner = dict(self._thread_owner)

        def label(tid: int, comm: str, prefix: str = '', main: str = 'main thread (executor, recorder)') -> str:
            if comm in owner:
                return f'{prefix}{owner[comm]} workers'
            if tid == main_tid and not prefix:
                return main
            if comm.startswith('mediapipe'):
                return f'{prefix}mediapipe threads'
            if comm == 'mcap-writer':
                return 'recorder (mcap writer)'
            return f'{prefix}other threads (DDS, ...)'

        groups: Dict[int, Callable[[int, str], str]] = {os.getpid(): label}
        for name, proc in self.procs.items():
            nodes = self.proc_nodes[name]
            # a node's worker threads by their OS names; in a shared process labelled by their node
            workers = {os_thread_name(f'{n}-{w}'): n for n in nodes for w in ('inputs', 'cameras', 'lidar', 'process')}

            def proc_label(tid: int, comm: str, _pid=proc.pid, _name=name, _workers=workers) -> str:
                if tid == _pid:
                    return f'{_name}: main thread (executor)'
                if comm in _workers:
                    return f'{_workers[comm]}: workers'
                if comm.startswith('mediapipe'):
                    return f'{_name}: mediapipe threads'
                return f'{_name}: other threads (DDS, ...)'
            groups[proc.pid] = proc_label
        return groups

    @staticmethod
    def _rate(stats: TopicStats, topic: str, window: float = 3.0) -> float:
        arr = [t for t in stats.arrivals.get(topic, []) if time.monotonic() - t <= window]
        if len(arr) < 2:
            return 0.0
        return (len(arr) - 1) / max(arr[-1] - arr[0], 1e-6)

    @staticmethod
    def _topic_metrics(stats: TopicStats) -> Dict[str, dict]:
        topics = {}
        for topic in sorted(stats.count):
            arr = stats.arrivals[topic]
            lat = np.array(stats.latency.get(topic, []) or [np.nan])
            third = len(lat) // 3
            # queue growth shows as latency rising over the run: last third minus first third
            thirds = ([float(np.nanmedian(part)) for part in (lat[:third], lat[third:-third], lat[-third:])]
                      if third >= 3 and np.isfinite(lat).any() else None)
            trend = thirds[2] - thirds[0] if thirds else None
            steady = [t for t in arr if t - arr[0] > 2.0] if arr else []   # skip start-up
            rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0
            finite = np.isfinite(lat).any()
            topics[topic] = {'messages': stats.count[topic], 'rate_hz': round(rate, 2),
                             'latency_ms_median': float(np.nanmedian(lat)) if finite else None,
                             'latency_ms_p95': float(np.nanpercentile(lat, 95)) if finite else None,
                             'latency_ms_trend': trend, 'latency_ms_thirds': thirds}
        return topics

    def _report(self, stats: TopicStats, wall: float, graph: g.Graph) -> dict:
        types = {t: type_name for n in self.started for t, type_name in g.NODES[n].outputs}
        metrics = {
            'duration_s': self.cfg.duration, 'wall_s': round(wall, 2), 'source': self.cfg.source,
            'stopped_by_signal': self.stopped_by_signal or None,
            'nodes': self.node_names, 'skipped': self.skipped, 'notes': graph.notes,
            'topics': self._topic_metrics(stats),
            # multi-process with DEPTHMARKS_RECORDER_FILTER=1: received only at the record rate (stamp
            # filter at the publisher): their rate and latency are those of the recorded messages
            'filtered_topics': self.filtered_topics,
            'accuracy_vs_ground_truth': accuracy(stats.last) if self.cfg.source == 'sim' else {},
            'previews': write_previews(os.path.join(self.cfg.output, 'previews'), stats.last, types),
            'mode': 'multi-process' if self.cfg.multi_process else 'single-process',
            # multi-process: which nodes shared a process (graph.COMPOSE_CHOICES); None in one process
            'compose': g.parse_compose(self.cfg.compose) if self.cfg.multi_process else None,
            'executor': self.executor_name,
            # one process: messages handed to the recorder / to in-process inputs instead of DDS, and the
            # callbacks of either that raised (ros/local_tap.py); None across processes
            'local_tap': self.local_tap.counts() if self.local_tap is not None and not self.cfg.multi_process else None,
            # multi-process, per-topic publication mode asked (pipeline/publication.py): process -> topics
            'async_topics': self.async_topics or None,
            'cpu_share': self.cpu_share,
            'cpu_threads': self.cpu_threads,
            'page_faults_per_s': self.page_faults,
            'node_counters': node_counters(stats.last.get('/diagnostics', []), only=set(self.node_names)),
            'recording': 'recording.mcap' if self.cfg.record else None,
            'recording_rate_hz': self.cfg.record_rate or 'all',
            'fixed_frame': graph.fixed_frame,
            # what /tf_static of the recording holds
            'static_transforms': {t.child: {'parent': t.parent, 'translation': list(t.translation),
                                            'rotation_xyzw': list(t.rotation)} for t in graph.static_transforms},
            'tf_topic': TF_STATIC if graph.static_transforms and self.cfg.record else None,
        }
        write_metrics(os.path.join(self.cfg.output, 'metrics.json'), metrics)
        return metrics
