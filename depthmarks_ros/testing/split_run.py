"""Run package nodes on two test hosts (network namespaces) and probe their outputs.

Used by ``test/test_multihost.py`` and ``benchmarks/bench_multihost.py``: one place that knows
how to place nodes on hosts, pick the DDS set-up and read the probe's figures.

A placement maps host ``'a'`` / ``'b'`` to the nodes it runs, each ``(node, params)``; the probe
(:mod:`depthmarks_ros.testing.topic_probe`) runs on ``probe_host``. ``discovery``:
``'subnet'`` (multicast on the link, ``ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET``) or ``'server'``
(a Fast DDS Discovery Server on host a, ``ROS_DISCOVERY_SERVER`` on every process).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from depthmarks_ros.core.calibration import package_config_dir
from depthmarks_ros.pipeline.graph import NODES
from depthmarks_ros.pipeline.publication import NETWORK_PROFILE, PROFILES_ENV
from depthmarks_ros.testing.netns import NetnsPair
from depthmarks_ros.testing.ros_harness import NodeProcess, run_dir

Placement = Dict[str, List[Tuple[str, dict]]]


def discovery_server_command(address: str, port: int = 11811):
    """(argv, env) that start `fastdds discovery` on ``address:port``, or (None, None) when the
    tool is not installed. The PyPI wheels' tool needs their libraries on LD_LIBRARY_PATH."""
    venv = os.path.dirname(os.path.dirname(sys.executable))
    exe = shutil.which('fastdds', path=os.path.join(venv, 'bin')) or shutil.which('fastdds')
    if exe is None:
        return None, None
    libs = [os.path.join(venv, 'lib'),
            os.path.join(venv, 'lib', f'python{sys.version_info[0]}.{sys.version_info[1]}', 'site-packages',
                         'ros_fastdds.libs'), os.environ.get('LD_LIBRARY_PATH', '')]
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join(p for p in libs if p),
               PATH=os.path.dirname(exe) + os.pathsep + os.environ.get('PATH', ''))
    return [exe, 'discovery', '-i', '0', '-l', address, '-p', str(port)], env


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def run_split(placement: Placement, topics: Sequence[Tuple[str, str]], probe_host: str = 'b',
              discovery: str = 'subnet', duration: float = 5.0, ground_truth: str = 'sim/depth_gt',
              disparity_truth: str = 'sim/disparity_gt', profile: str = NETWORK_PROFILE, wait: float = 40.0) -> dict:
    """Start the nodes, probe ``topics`` ((name, type) pairs) for ``duration`` s after the first
    message, stop everything. Returns the probe's JSON plus ``_veth_tx`` (bytes each host sent on
    the link), ``_codes`` (exit codes, node -> code) and ``_logs`` (node -> tail of its output)."""
    config = package_config_dir()
    if discovery not in ('subnet', 'server'):
        raise ValueError(f'discovery must be subnet or server (got {discovery!r})')
    with NetnsPair() as net:
        env = {PROFILES_ENV: os.path.join(config, profile),
               'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
        server: Optional[subprocess.Popen] = None
        if discovery == 'server':
            cmd, senv = discovery_server_command(net.addresses['a'])
            if cmd is None:
                raise RuntimeError('the fastdds discovery tool is not installed')
            server = net.popen('a', cmd, env=senv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)     # the tool is a script around the server
            env['ROS_DISCOVERY_SERVER'] = f'{net.addresses["a"]}:11811'
        tx0 = {h: net.tx_bytes(h) for h in 'ab'}
        nodes: List[Tuple[str, NodeProcess]] = []
        for host, entries in placement.items():
            for node, params in entries:
                pfile = os.path.join(config, NODES[node].params_file)   # as the launch files use them
                nodes.append((f'{host}:{node}', NodeProcess(node, params=params, params_file=pfile, env=env,
                                                            wrap=net.wrap(host))))
        out = os.path.join(tempfile.mkdtemp(prefix='split_', dir=run_dir()), 'probe.json')
        try:
            for _, n in nodes:
                n.start()
            cmd = [sys.executable, '-m', 'depthmarks_ros.testing.topic_probe', '--duration', str(duration),
                   '--wait', str(wait), '--out', out]
            if ground_truth:
                cmd += ['--ground-truth', ground_truth]
            if disparity_truth:
                cmd += ['--disparity-truth', disparity_truth]
            for name, typ in topics:
                cmd += ['--topic', f'{name}:{typ}']
            probe_env = dict(nodes[0][1].env) if nodes else dict(os.environ, **env)
            r = subprocess.run([*net.wrap(probe_host), *cmd], env=probe_env, timeout=wait + duration + 60,
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f'probe failed: {r.stdout[-2000:]}{r.stderr[-2000:]}')
            codes = {name: n.stop() for name, n in nodes}
        finally:
            for _, n in nodes:
                n.stop()
            if server is not None:
                _stop_group(server)
        with open(out) as f:
            result = json.load(f)
        result['_veth_tx'] = {h: net.tx_bytes(h) - tx0[h] for h in 'ab'}
        result['_codes'] = codes
        result['_logs'] = {name: n.output[-2000:] for name, n in nodes}
        return result
