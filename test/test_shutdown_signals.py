"""Every node executable exits 0, quickly and without a traceback, when its process group is stopped
the way `ros2 launch` stops it without a terminal (systemd, CI, `</dev/null`): SIGINT to the whole
group, then a second SIGINT 50 ms later; and on SIGTERM. The nodes run while frames flow (sim_rig
feeds stereo, fusion, face and body; video_source plays an image folder), started through the
installed executables (PREFIX/bin, this checkout first on PYTHONPATH: test/conftest.py)."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from depthmarks_ros.testing.scenes import SETUP_HINT, package_executables

NODES = [n for n in package_executables() if n != 'depthmarks']
CRASH_MARKS = ('Traceback', 'terminate called', 'KeyboardInterrupt', 'error_already_set', 'Fatal Python error')


def _image_folder(path):
    import cv2
    os.makedirs(path, exist_ok=True)
    for i in range(3):
        img = np.full((120, 160, 3), 40 * i, np.uint8)
        cv2.imwrite(os.path.join(path, f'{i:03d}.png'), img)
    return path


def _start_group(namespace, folder, log_dir):
    """All node executables in one new process group (as launch runs them), in ``namespace``; each
    one's output in ``log_dir``."""
    procs, pgid = {}, None
    for name in NODES:
        exe = os.path.join(sys.prefix, 'bin', name)
        assert os.access(exe, os.X_OK), f'{exe} missing: {SETUP_HINT}'
        args = [exe, '--ros-args', '-r', f'__ns:={namespace}']
        if name == 'sim_rig':
            args += ['-p', 'rate:=5.0', '-p', 'lidar_rate:=5.0']
        if name == 'video_source':
            args += ['-p', f'source:={folder}', '-p', 'loop:=true', '-p', 'fps:=5.0',
                     '-r', 'camera/image_raw:=video/image_raw', '-r', 'camera/camera_info:=video/camera_info']
        log = os.path.join(log_dir, f'{namespace.strip("/")}_{name}.log')
        env = dict(os.environ, PYTHONFAULTHANDLER='1')
        with open(log, 'wb') as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    process_group=0 if pgid is None else pgid)
        pgid = proc.pid if pgid is None else pgid
        procs[name] = (proc, log)
    return procs, pgid


def _wait_for_nodes(probe, wanted, timeout):
    """Until every node has sent /diagnostics: constructed and spinning (a node's name shows in the
    graph as soon as its constructor starts, before models and calibration are loaded)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    got = probe.subscribe(DiagnosticArray, '/diagnostics', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    return probe.spin_until(lambda: wanted <= {s.hardware_id for m in list(got) for s in m.status}, timeout)


@pytest.mark.dds
@pytest.mark.slow
def test_group_sigint_twice_and_sigterm_stop_every_node_cleanly(probe, tmp_path):
    folder = _image_folder(str(tmp_path / 'frames'))
    groups = {ns: _start_group(ns, folder, str(tmp_path)) for ns in ('/twice', '/term')}
    try:
        wanted = {f'{ns}/{n}' for ns in groups for n in NODES}
        assert _wait_for_nodes(probe, wanted, timeout=150), 'not every node came up'
        probe.spin_for(2.0)   # frames flowing through every node
        for _ns, (procs, _) in groups.items():
            for name, (proc, log) in procs.items():
                assert proc.poll() is None, f'{name} died before the signal:\n{open(log).read()[-2000:]}'
        os.killpg(groups['/term'][1], signal.SIGTERM)
        os.killpg(groups['/twice'][1], signal.SIGINT)
        time.sleep(0.05)
        os.killpg(groups['/twice'][1], signal.SIGINT)
        # about 1 s on an idle machine; 20 s leaves room for a frame in progress on a machine loaded
        # 10x (the workers finish their frame, up to 6 s, and the exit deadline ends a process 8.5 s
        # after its signal: ros/node_base.py WORKERS_JOIN_S, EXIT_DEADLINE_S)
        t0 = time.monotonic()
        failures = []
        for ns, (procs, _) in groups.items():
            for name, (proc, log) in procs.items():
                try:
                    rc = proc.wait(timeout=max(1.0, 20.0 - (time.monotonic() - t0)))
                except subprocess.TimeoutExpired:
                    rc = 'still running 20 s after the signal'
                    proc.send_signal(signal.SIGSEGV)   # faulthandler: every thread's Python stack into the log
                    proc.wait(5)
                out = open(log, errors='replace').read()
                marks = [m for m in CRASH_MARKS if m in out]
                if rc != 0 or marks:
                    failures.append(f'{ns}/{name}: exit {rc} {marks}\n{out[-1500:]}')
        assert not failures, '\n'.join(failures)
    finally:
        for procs, pgid in groups.values():
            for proc, _log in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
