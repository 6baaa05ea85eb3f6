"""Run the pipeline's nodes in one process (the same node classes and parameter files as the launch
files), record every output topic to MCAP, and write previews and metrics.

Used by `depthmarks run` (the README's main command) on machines without `ros2 launch`.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import yaml

DEFAULT_NODES = ['sim', 'stereo', 'fusion', 'face', 'body']
# what a recording may feed into the pipeline (outputs in it are not replayed)
SENSOR_TOPICS = ['stereo/left/image_raw', 'stereo/left/camera_info', 'stereo/right/image_raw',
                 'stereo/right/camera_info', 'camera/image_raw', 'camera/camera_info', 'lidar/points',
                 'sim/depth_gt', 'sim/disparity_gt']


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
    rate: float = 10.0
    mono_model: str = ''
    overrides: Dict[str, Dict[str, object]] = field(default_factory=dict)
    progress: bool = True
    multi_process: bool = False      # each node in its own process (as `ros2 launch` would run them)


def prepare_environment(use_dds_profile: bool) -> None:
    """Loopback discovery and the package's FastDDS profile unless the user set their own."""
    from depthmarks_ros.core.calibration import package_config_dir
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if use_dds_profile:
        os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                              os.path.join(package_config_dir(), 'fastdds_localhost.xml'))


def node_plan(cfg: RunConfig) -> Dict[str, Dict[str, object]]:
    """{node name: parameter overrides} for the configured source and nodes."""
    from depthmarks_ros.pipeline.registry import resolve
    names = resolve([n for n in cfg.nodes if n not in ('sim', 'sim_rig', 'video', 'video_source')])
    plan: Dict[str, Dict[str, object]] = {}
    if cfg.source == 'sim':
        plan['sim_rig'] = {'rate': cfg.rate, 'lidar_rate': cfg.rate}
    elif cfg.source in ('video', 'camera'):
        plan['video_source'] = {'source': cfg.video or cfg.camera, 'loop': bool(cfg.video)}
        names = [n for n in names if n not in ('stereo_depth', 'depth_fusion')]  # one camera, no LiDAR
    for n in names:
        plan[n] = {}
    if 'depth_fusion' in plan:
        plan['depth_fusion'].update(use_stereo='stereo_depth' in plan)
    if 'mono_depth' in plan:
        if cfg.mono_model:
            plan['mono_depth']['model'] = cfg.mono_model
        else:
            del plan['mono_depth']  # no weights on this machine: never block the pipeline
    depth_topic = 'fusion/depth' if 'depth_fusion' in plan else ('stereo/depth' if 'stereo_depth' in plan else '')
    for n in ('face_landmarks', 'body_pose'):
        if n in plan:
            plan[n]['depth_topic'] = depth_topic
    for n, extra in cfg.overrides.items():
        if n in plan:
            plan[n].update(extra)
    return plan


def write_params_file(path: str, base_file: str, node_name: str, overrides: Dict[str, object]) -> None:
    """The node's config file with overrides applied, as a node-specific params file."""
    params: Dict[str, object] = {}
    if os.path.isfile(base_file):
        with open(base_file) as f:
            data = yaml.safe_load(f) or {}
        for key in ('/**', node_name, f'/{node_name}'):
            params.update((data.get(key) or {}).get('ros__parameters', {}))
    params.update(overrides)
    with open(path, 'w') as f:
        yaml.safe_dump({node_name: {'ros__parameters': params}}, f, sort_keys=False)


class PipelineRunner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.nodes = []
        self.node_names: List[str] = []
        self.skipped: Dict[str, str] = {}
        self.types: Dict[str, str] = {}
        self.procs: Dict[str, object] = {}          # multi-process: node name -> Popen
        self.cpu_targets: Dict[str, tuple] = {}     # label -> (pid, tid or None)
        self.cpu_share: Dict[str, Optional[float]] = {}
        self.executor_name = ''

    def run(self) -> dict:
        cfg = self.cfg
        prepare_environment(cfg.use_dds_profile)
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
        from depthmarks_ros.core.calibration import package_config_dir
        from depthmarks_ros.pipeline.recorder import STAMPED, McapRecorder, TopicStats, cdr_stamp_ns
        from depthmarks_ros.pipeline.registry import NODES, load_node_class, message_class
        os.makedirs(cfg.output, exist_ok=True)
        params_dir = cfg.params_dir or package_config_dir()
        os.makedirs(os.path.join(cfg.output, 'params'), exist_ok=True)
        plan = node_plan(cfg)
        # an own context: the runner also works inside a process that already uses rclpy
        context = rclpy.Context()
        rclpy.init(context=context)
        # one executor for every node (EventsExecutor where rclpy has it): callbacks only hand work to
        # the nodes' worker threads (one executor per node in threads measured 2x the latency: GIL contention)
        from depthmarks_ros.ros.executors import make_executor
        executor, self.executor_name = make_executor(context)
        recorder = McapRecorder(os.path.join(cfg.output, 'recording.mcap')) if cfg.record else None
        stats = TopicStats()
        t_wall = time.monotonic()
        try:
            for name, overrides in plan.items():
                cls, reason = load_node_class(name)
                if cls is None:
                    self.skipped[name] = reason
                    print(f'[depthmarks run] skipping {reason}', file=sys.stderr)
                    continue
                pfile = os.path.join(cfg.output, 'params', f'{name}.yaml')
                write_params_file(pfile, os.path.join(params_dir, NODES[name].params_file), name, overrides)
                if cfg.multi_process:
                    self._spawn(name, pfile)
                else:
                    try:
                        node = cls(cli_args=['--ros-args', '--params-file', pfile], context=context)
                    except Exception as exc:  # noqa: BLE001 - a node that cannot start must not stop the others
                        self.skipped[name] = f'{name} failed to start: {type(exc).__name__}: {exc}'
                        print(f'[depthmarks run] {self.skipped[name]}', file=sys.stderr)
                        continue
                    for pname in cfg.overrides.get(name, {}):
                        if not node.has_parameter(pname):
                            print(f'[depthmarks run] {name} has no parameter {pname!r}: ignored', file=sys.stderr)
                    self.nodes.append(node)
                    self.node_names.append(node.get_name())
                    executor.add_node(node)
                    for w in getattr(node, '_workers', []):
                        self.cpu_targets[f'{name} ({w._thread.name})'] = (os.getpid(), w._thread.native_id)
                for topic, type_name in NODES[name].outputs:
                    self.types[topic] = type_name
            if cfg.source == 'bag':
                from depthmarks_ros.pipeline.player import McapPlayer
                player = McapPlayer(cfg.bag, topics=SENSOR_TOPICS, loop=True, context=context)
                self.nodes.append(player)
                self.node_names.append(player.get_name())
                executor.add_node(player)
            self.types['/diagnostics'] = 'diagnostic_msgs/msg/DiagnosticArray'
            rec_node = rclpy.create_node('depthmarks_recorder', context=context)
            qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=20)
            clock = rec_node.get_clock()
            for topic, type_name in self.types.items():
                if recorder is not None:
                    recorder.channel(topic, type_name)

                period_ns = int(1e9 / cfg.record_rate) if cfg.record_rate > 0 else 0
                last_written = {}

                def cb(data, topic=topic, type_name=type_name):
                    now = clock.now().nanoseconds
                    stamp = cdr_stamp_ns(data) if type_name in STAMPED else None
                    stats.add(topic, data, stamp, now)
                    # decimate by stamp, so the topics of one instant are kept (or dropped) together
                    bucket = (stamp or now) // period_ns if period_ns else None
                    if recorder is not None and (bucket is None or last_written.get(topic) != bucket):
                        last_written[topic] = bucket
                        recorder.write(topic, data, now, stamp)
                rec_node.create_subscription(message_class(type_name), topic, cb, qos, raw=True)
            executor.add_node(rec_node)
            self.cpu_targets['whole process' if not cfg.multi_process else 'runner (recorder)'] = (os.getpid(), None)
            self._spin(executor, stats)
        finally:
            self._stop_processes()
            executor.shutdown()
            for node in self.nodes:
                if hasattr(node, 'shutdown'):
                    node.shutdown()
                node.destroy_node()
            if recorder is not None:
                recorder.close()
            rclpy.try_shutdown(context=context)
        return self._report(stats, time.monotonic() - t_wall, plan)

    def _spawn(self, name: str, pfile: str) -> None:
        import subprocess
        from depthmarks_ros.pipeline.registry import NODES
        log = open(os.path.join(self.cfg.output, f'{name}.log'), 'w')
        proc = subprocess.Popen([sys.executable, '-m', NODES[name].module, '--ros-args', '--params-file', pfile],
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        self.node_names.append(name)
        self.cpu_targets[name] = (proc.pid, None)

    def _stop_processes(self) -> None:
        import signal
        import subprocess
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.returncode not in (0, -2):
                self.skipped[name] = f'{name} exited with {proc.returncode} (see {name}.log)'

    def _spin(self, executor, stats) -> None:
        from depthmarks_ros.pipeline.cpu import CpuMeter
        start = time.monotonic()
        next_print = start + 1.0
        meter = CpuMeter(self.cpu_targets)
        steady_from = start + min(2.0, self.cfg.duration / 3)   # CPU shares skip start-up
        started = False
        key_topics = [t for t in ('stereo/depth', 'fusion/depth', 'face/landmarks', 'body/keypoints',
                                  'mono/depth', 'camera/image_raw') if t in self.types]
        while time.monotonic() - start < self.cfg.duration:
            executor.spin_once(timeout_sec=0.05)
            if not started and time.monotonic() >= steady_from:
                meter.start(time.monotonic())
                started = True
            if self.cfg.progress and time.monotonic() >= next_print:
                next_print += 1.0
                el = time.monotonic() - start
                parts = [f'{t} {self._rate(stats, t):4.1f} Hz' for t in key_topics]
                print(f'\r[depthmarks run {el:5.1f}/{self.cfg.duration:.0f} s] ' + ' | '.join(parts),
                      end='', file=sys.stderr, flush=True)
        if started:
            self.cpu_share = meter.stop(time.monotonic())
        if self.cfg.progress:
            print(file=sys.stderr)

    @staticmethod
    def _rate(stats, topic: str, window: float = 3.0) -> float:
        arr = [t for t in stats.arrivals.get(topic, []) if time.monotonic() - t <= window]
        if len(arr) < 2:
            return 0.0
        return (len(arr) - 1) / max(arr[-1] - arr[0], 1e-6)

    def _report(self, stats, wall: float, plan) -> dict:
        from depthmarks_ros.core.calibration import default_rig_path, load_rig
        from depthmarks_ros.pipeline.report import accuracy, node_counters, write_metrics, write_previews
        topics = {}
        for topic in sorted(stats.count):
            arr = stats.arrivals[topic]
            lat = np.array(stats.latency.get(topic, []) or [np.nan])
            third = len(lat) // 3
            # queue growth shows as latency rising over the run: last third minus first third
            trend = float(np.nanmedian(lat[-third:]) - np.nanmedian(lat[:third])) if third >= 3 else None
            steady = [t for t in arr if t - arr[0] > 2.0] if arr else []   # skip start-up
            rate = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else 0.0
            topics[topic] = {'messages': stats.count[topic], 'rate_hz': round(rate, 2),
                             'latency_ms_median': float(np.nanmedian(lat)) if np.isfinite(lat).any() else None,
                             'latency_ms_p95': float(np.nanpercentile(lat, 95)) if np.isfinite(lat).any() else None,
                             'latency_ms_trend': trend}
        previews = write_previews(os.path.join(self.cfg.output, 'previews'), stats.last, self.types)
        metrics = {
            'duration_s': self.cfg.duration, 'wall_s': round(wall, 2), 'source': self.cfg.source,
            'nodes': self.node_names, 'skipped': self.skipped,
            'topics': topics, 'accuracy_vs_ground_truth': accuracy(stats.last) if self.cfg.source == 'sim' else {},
            'previews': previews,
            'mode': 'multi-process' if self.cfg.multi_process else 'single-process',
            'executor': self.executor_name,
            'cpu_share': self.cpu_share,
            'node_counters': node_counters(stats.last.get('/diagnostics', [])),
            'recording': 'recording.mcap' if self.cfg.record else None,
            'recording_rate_hz': self.cfg.record_rate or 'all',
        }
        if self.cfg.source == 'sim':
            rig = load_rig(default_rig_path('sim_rig'))
            from depthmarks_ros.core.transforms import matrix_to_quaternion
            metrics['static_transforms'] = {
                s.frame_id: {'parent': rig.base_frame, 'translation': [float(x) for x in s.T_base_sensor[:3, 3]],
                             'rotation_xyzw': [float(x) for x in matrix_to_quaternion(s.T_base_sensor[:3, :3])]}
                for s in rig.sensors.values()}
        write_metrics(os.path.join(self.cfg.output, 'metrics.json'), metrics)
        return metrics
