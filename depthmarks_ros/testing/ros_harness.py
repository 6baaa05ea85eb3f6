"""Helpers to test nodes over real DDS: an isolated environment, node processes, a probe node.

Every test run must stay on loopback and in its own DDS domain: call
:func:`configure_ros_env` before rclpy is imported (test/conftest.py does). The files of a run (ROS
logs, node output, generated parameter / profile / RViz files) go into one folder, :func:`run_dir`,
removed when the process exits; the domain's lock file stays (:func:`reserve_domain_id`).
"""
from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence



_DOMAIN_LOCK = None
_RUN_DIR: Optional[str] = None


def run_dir() -> str:
    """This process's folder for the files of a test or benchmark run (ROS_LOG_DIR, node output,
    probe results): one per process, removed with everything in it when the process exits."""
    global _RUN_DIR
    if _RUN_DIR is None:
        _RUN_DIR = tempfile.mkdtemp(prefix='depthmarks_run_')
        atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
    return _RUN_DIR


def reserve_domain_id(first: int = 1, last: int = 100) -> int:
    """A ROS_DOMAIN_ID no other test run on this machine holds (an flock held for the process life).

    The lock files, ``$TMPDIR/depthmarks_ros_domain_<id>.lock``, stay after the run: every run on the
    machine must find the same files to lock (at most one per id, reused by later runs); removing one
    while another run holds it would let a third run take the same id."""
    global _DOMAIN_LOCK
    import fcntl
    start = random.Random(os.getpid() ^ time.time_ns()).randint(first, last)
    ids = list(range(start, last + 1)) + list(range(first, start))
    for domain in ids:
        path = os.path.join(tempfile.gettempdir(), f'depthmarks_ros_domain_{domain}.lock')
        try:   # never truncates, follows a link or blocks; another user's lock file: try the next id
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):   # a FIFO or device planted under the name
                raise OSError(path)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _DOMAIN_LOCK = fd   # held (open) for the process life
        return domain
    raise RuntimeError('no free ROS_DOMAIN_ID between %d and %d' % (first, last))


def configure_ros_env(domain_id: Optional[int] = None, log_dir: Optional[str] = None,
                      use_profile: bool = True) -> Dict[str, str]:
    """Set ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, a per-run ROS_DOMAIN_ID, ROS_LOG_DIR (by default in
    :func:`run_dir`) and ROS_HOME in :func:`run_dir` (where graph.content_file writes the launch files'
    generated files). Without ``domain_id`` the id is reserved by a lock file in the temporary folder
    (:func:`reserve_domain_id`), which stays after the run.

    Returns the variables set. Child processes inherit them.
    """
    if domain_id is None:
        domain_id = reserve_domain_id()
    env = {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_LOG_DIR': log_dir or os.path.join(run_dir(), 'ros_log'),
        'ROS_HOME': os.path.join(run_dir(), 'ros_home'),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'PYTHONUNBUFFERED': '1',
    }
    if use_profile:
        from depthmarks_ros.pipeline.publication import PROFILES_ENV, loopback_profile   # ROS-free (no rclpy)
        env[PROFILES_ENV] = loopback_profile()
    os.environ.update(env)
    return env


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_param_text(v) for v in value) + ']'
    if isinstance(value, str) and value == '':
        return '""'
    return str(value)


def ros_args(params: Optional[Dict[str, Any]] = None, remaps: Optional[Dict[str, str]] = None,
             params_file: Optional[str] = None, name: Optional[str] = None) -> List[str]:
    """`--ros-args` command-line words for parameters, a params file and remappings."""
    args = ['--ros-args']
    if name:
        args += ['-r', f'__node:={name}']
    if params_file:
        args += ['--params-file', params_file]
    for k, v in (params or {}).items():
        args += ['-p', f'{k}:={_param_text(v)}']
    for a, b in (remaps or {}).items():
        args += ['-r', f'{a}:={b}']
    return args


class NodeProcess:
    """A package node run as its own process (``python -m depthmarks_ros.nodes.<name>``).

    Use as a context manager; :meth:`stop` sends SIGINT (as `ros2 launch` does) and returns the
    exit code. Output (stdout+stderr) is kept in a file in ``log_dir`` (by default :func:`run_dir`,
    removed when the test run ends): :attr:`output`, :attr:`log_path`.
    """

    def __init__(self, node: str, params: Optional[Dict[str, Any]] = None,
                 remaps: Optional[Dict[str, str]] = None, params_file: Optional[str] = None,
                 extra_args: Sequence[str] = (), env: Optional[Dict[str, str]] = None,
                 wrap: Sequence[str] = (), module: Optional[str] = None, log_dir: Optional[str] = None):
        # wrap: a command prefix, e.g. testing.netns.NetnsPair.wrap(host) to run it in a namespace;
        # module: another entry point than the node's (e.g. pipeline.container; extra_args name its nodes)
        self.cmd = ([*wrap, sys.executable, '-m', module or f'depthmarks_ros.nodes.{node}', *extra_args]
                    + ros_args(params, remaps, params_file))
        self.env = dict(os.environ, **(env or {}))
        repo = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..'))
        self.env['PYTHONPATH'] = os.pathsep.join(p for p in (repo, self.env.get('PYTHONPATH')) if p)
        fd, self.log_path = tempfile.mkstemp(prefix=f'{node}_', suffix='.log', dir=log_dir or run_dir())
        os.close(fd)
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None

    def start(self) -> 'NodeProcess':
        with open(self.log_path, 'ab') as log:   # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def output(self) -> str:
        with open(self.log_path, 'r', errors='replace') as f:
            return f.read()

    def __enter__(self) -> 'NodeProcess':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_PARTICIPANT = (
    'import os, time\n'
    'from depthmarks_ros.testing.ros_harness import reserve_domain_id\n'
    'os.environ["ROS_DOMAIN_ID"] = str(reserve_domain_id())\n'
    'import rclpy\n'
    'from depthmarks_ros.ros.fastdds_shm import segments_of\n'
    'rclpy.init()\n'
    'node = rclpy.create_node("shm_zombie_%d" % os.getpid())\n'
    'print(" ".join(sorted(segments_of())), flush=True)\n'
    'time.sleep(120)\n')


def killed_participant_segments() -> List[str]:
    """Make zombie Fast DDS segments (ros/fastdds_shm.py): a child process (this process's environment:
    profile) starts a participant and is killed with SIGKILL. Returns the names of the segments it left
    in /dev/shm, their files back-dated past ``MIN_AGE_S`` so a clean-up judges them at once.

    The child takes a domain of its own (:func:`reserve_domain_id`, free while it lives), so no live
    participant (this process's included) ever opens its segment and no Fast DDS watchdog removes it.
    Another test run's clean-up ending meanwhile may remove them: a test checks that they are gone
    after a clean-up, not which clean-up removed them."""
    from depthmarks_ros.ros.fastdds_shm import MIN_AGE_S, SHM_DIR
    proc = subprocess.Popen([sys.executable, '-c', _PARTICIPANT], stdout=subprocess.PIPE, text=True)
    try:
        names = proc.stdout.readline().split()
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
    then = time.time() - 2 * MIN_AGE_S
    for name in names:
        for path in (os.path.join(SHM_DIR, name), os.path.join(SHM_DIR, name + '_el')):
            try:
                os.utime(path, (then, then), follow_symlinks=False)
            except OSError:
                pass
    return names


class RosProbe:
    """An in-process node for tests: publish inputs, collect outputs, spin until a condition.

    rclpy must be initialised (the ``rclpy_context`` fixture does it).
    """

    def __init__(self, name: str = 'probe'):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.node = rclpy.create_node(f'{name}_{os.getpid()}_{random.randint(0, 99999)}')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._extra_nodes = []

    def add_node(self, node) -> None:
        """Spin another in-process node (e.g. the node under test) with the probe."""
        self.executor.add_node(node)
        self._extra_nodes.append(node)

    def subscribe(self, msg_type, topic: str, qos=None) -> List[Any]:
        """Collect every message on ``topic`` into the returned list (best effort by default)."""
        from rclpy.qos import qos_profile_sensor_data
        received: List[Any] = []

        def cb(msg):
            with self._lock:
                received.append(msg)
        self.node.create_subscription(msg_type, topic, cb, qos if qos is not None else qos_profile_sensor_data)
        return received

    def publisher(self, msg_type, topic: str, qos=None):
        from rclpy.qos import qos_profile_sensor_data
        return self.node.create_publisher(msg_type, topic, qos if qos is not None else qos_profile_sensor_data)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def spin_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return condition()

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> bool:
        return self.spin_until(lambda: publisher.get_subscription_count() >= count, timeout)

    def wait_for_publishers(self, topic: str, count: int = 1, timeout: float = 10.0) -> bool:
        return self.spin_until(lambda: self.node.count_publishers(topic) >= count, timeout)

    def param_service(self, node_name: str, timeout: float = 10.0) -> 'ParamService':
        """The parameter service of node ``node_name``, as `ros2 param get/set` uses it."""
        return ParamService(self, node_name, timeout)

    def close(self) -> None:
        for n in self._extra_nodes:
            self.executor.remove_node(n)
            if hasattr(n, 'shutdown'):
                n.shutdown()
            n.destroy_node()
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown()


class ParamService:
    """A node's parameter service called from a :class:`RosProbe` (the probe spins for the answer):
    ``get(names)`` -> plain Python values, ``set(name=value, ...)`` -> one SetParametersResult per
    parameter, in order, as `ros2 param set` sends them."""

    def __init__(self, probe: RosProbe, node_name: str, timeout: float = 10.0):
        from rclpy.parameter_client import AsyncParameterClient
        self.probe, self.timeout = probe, timeout
        self.client = AsyncParameterClient(probe.node, node_name)
        assert self.client.wait_for_services(timeout), f'no parameter service of {node_name}'

    def _call(self, future):
        assert self.probe.spin_until(future.done, self.timeout), 'parameter service did not answer'
        return future.result()

    def get(self, names: Sequence[str]) -> list:
        from rclpy.parameter import parameter_value_to_python
        values = self._call(self.client.get_parameters(list(names))).values
        from depthmarks_ros.ros.node_base import plain_value
        return [plain_value(parameter_value_to_python(v)) for v in values]

    def set(self, **values) -> list:
        from rclpy.parameter import Parameter
        return self._call(self.client.set_parameters([Parameter(k, value=v) for k, v in values.items()])).results

    def set_atomically(self, **values):
        """SetParametersAtomically: one result for all (all applied or none)."""
        from rclpy.parameter import Parameter
        return self._call(self.client.set_parameters_atomically(
            [Parameter(k, value=v) for k, v in values.items()])).result
