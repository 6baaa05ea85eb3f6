"""How a node process ends (ros/executors.py StopSignals, ros/exit_deadline.py, ros/node_base.run_nodes).

- Asked to stop, it exits 0 however many SIGINTs follow, even one that lands while the interpreter
  finalizes: Python puts the default action back on a signal whose handler is a Python function
  when it finalizes, so a late SIGINT (the second SIGINT of a group stop, which `ros2 launch` without
  a terminal sends) killed the finished process with -2.
- Once its nodes have stopped, the rest of its exit is bounded: a teardown stuck in native code with
  the GIL held (as Fast DDS's participant destruction was seen to hang) still ends the process, with
  its exit code, within the deadline."""
import os
import signal
import subprocess
import sys
import time

import pytest

from depthmarks_ros.testing.scenes import package_executables

TINY = '''
import sys
from rclpy.node import Node
from depthmarks_ros.ros.node_base import run_nodes

HANG = {hang!r}
RAISE = {fail!r}

class Tiny(Node):
    def __init__(self):
        super().__init__('tiny_stop')
        self.create_timer(0.01, self.tick)
        print('spinning', flush=True)

    def tick(self):
        if RAISE:
            raise RuntimeError('a callback failed')

    def destroy_node(self):
        if HANG:   # a teardown stuck in native code holding the GIL: no Python thread or handler runs
            import ctypes
            ctypes.PyDLL(None).sleep(60)
        return super().destroy_node()

sys.exit(run_nodes([Tiny], exit_deadline_s={deadline!r}))
'''
MESSAGE = 'the DDS teardown and interpreter exit did not finish'


def _start(hang=False, deadline=None, fail=False):
    proc = subprocess.Popen([sys.executable, '-c', TINY.format(hang=hang, deadline=deadline, fail=fail)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONFAULTHANDLER='1'))
    assert proc.stdout.readline().strip() == b'spinning'
    return proc


def _finish(proc, timeout):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return 'still running', proc.stdout.read().decode(errors='replace')
    return proc.returncode, proc.stdout.read().decode(errors='replace')


@pytest.mark.dds
@pytest.mark.parametrize('sig_first', [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_node_process_exits_0_under_a_rain_of_sigints(sig_first):
    from depthmarks_ros.ros.node_base import EXIT_DEADLINE_S
    for _ in range(3):   # the window is a few ms at the end of each process: three processes
        proc = _start(deadline=EXIT_DEADLINE_S)
        proc.send_signal(sig_first)
        sent, t_end = 1, time.monotonic() + 20.0
        while proc.poll() is None and time.monotonic() < t_end:
            try:
                proc.send_signal(signal.SIGINT)   # until the very end of the process, finalization included
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(0.0005)
        rc, out = _finish(proc, 5)
        assert rc == 0 and 'Traceback' not in out and 'KeyboardInterrupt' not in out, \
            f'exit {rc} after {sent} signals:\n{out[-1500:]}'
        assert MESSAGE not in out, 'a clean exit took the deadline: ' + out[-1500:]


@pytest.mark.dds
def test_a_teardown_hung_with_the_gil_held_ends_at_the_deadline_with_exit_0():
    proc = _start(hang=True, deadline=0.5)
    proc.send_signal(signal.SIGINT)
    rc, out = _finish(proc, 30)     # without the deadline: 60 s in the hung teardown
    assert rc == 0 and MESSAGE in out and 'exiting 0 without them' in out, f'exit {rc}:\n{out[-1500:]}'
    assert 'in destroy_node' in out    # the thread dump says where it was stuck


@pytest.mark.dds
def test_a_process_a_callback_failed_keeps_exit_1_through_a_hung_teardown():
    proc = _start(hang=True, deadline=0.5, fail=True)   # the timer's callback raises: the loop ends
    rc, out = _finish(proc, 30)
    assert rc == 1 and 'exiting 1 without them' in out and 'a callback failed' in out, f'exit {rc}:\n{out[-1500:]}'


@pytest.mark.parametrize('name', [n for n in package_executables() if n != 'depthmarks'] + ['depthmarks_container'])
def test_every_node_executable_bounds_its_exit(name, monkeypatch):
    """Each node's main (its console script) and the container pass the exit deadline to run_node(s)."""
    import importlib
    from depthmarks_ros.ros import node_base
    seen = []
    if name == 'depthmarks_container':
        monkeypatch.setattr(node_base, 'run_nodes', lambda classes, args, **kw: seen.append(kw) or 0)
        importlib.import_module('depthmarks_ros.pipeline.container').main(['stereo', '--ros-args'])
    else:
        module = importlib.import_module(f'depthmarks_ros.nodes.{name}')
        monkeypatch.setattr(module, 'run_node', lambda cls, args, **kw: seen.append(kw) or 0)
        module.main([])
    assert seen == [{'exit_deadline_s': node_base.EXIT_DEADLINE_S}]


def _run_child(child: str, timeout: float = 30):
    """(exit code, stdout+stderr) of ``python -c child``."""
    proc = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return _finish(proc, timeout)


def test_the_deadline_keeps_the_exit_code_and_says_why():
    child = ('import ctypes, sys\n'
             'from depthmarks_ros.ros.exit_deadline import arm_exit_deadline\n'
             'assert arm_exit_deadline(0.3, "deadline line", code=3)\n'
             'ctypes.PyDLL(None).sleep(60)\n')
    rc, out = _run_child(child)
    # the thread dump and the line come from separate native threads: their order may flip under load
    assert rc == 3 and 'deadline line' in out, f'exit {rc}:\n{out}'
    from depthmarks_ros.ros.exit_deadline import arm_exit_deadline
    with pytest.raises(ValueError):
        arm_exit_deadline(0, 'never armed')


def test_the_message_outlives_python_a_hang_after_finalization_still_says_why():
    """A hang in a C exit handler (after Python has freed its objects) still gets the whole line."""
    child = ('import ctypes\n'
             'from depthmarks_ros.ros.exit_deadline import arm_exit_deadline\n'
             'libc = ctypes.CDLL(None)\n'
             'assert libc.__cxa_atexit(ctypes.cast(libc.pause, ctypes.c_void_p), None, None) == 0\n'
             'assert arm_exit_deadline(1.0, "deadline line after finalization", code=4)\n')
    rc, out = _run_child(child)
    assert rc == 4 and 'deadline line after finalization' in out, f'exit {rc}:\n{out}'
