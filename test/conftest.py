"""Test set-up: isolate DDS before rclpy is imported (loopback, own domain, own log dir)."""
import os
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
# child processes (node executables, `python -m ...` from any folder) import this checkout too, never
# a copy of the package installed in the venv (scripts/setup.sh installs one; 8 worktrees may share it)
os.environ['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)

from depthmarks_ros.testing.ros_harness import RosProbe, configure_ros_env  # noqa: E402

configure_ros_env()


@pytest.fixture(scope='session')
def rclpy_context():
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def probe(rclpy_context):
    p = RosProbe()
    yield p
    p.close()


# ------------------------------------------------------------------ shared scenes (testing/scenes.py)
@pytest.fixture(scope='module')
def sim():
    """The 320x240 simulated stereo frame: ``(rig, frame)`` (stereo core, node, learned node)."""
    from depthmarks_ros.testing.scenes import stereo_sim
    return stereo_sim()


@pytest.fixture(scope='module')
def fusion_scene():
    """``(rig, frame, sweep, sweep xyz, sparse LiDAR depth)`` of the fusion tests (core, cli, node)."""
    from depthmarks_ros.testing.scenes import fusion_scene
    return fusion_scene()


@pytest.fixture(scope='module')
def face_image():
    """A real face on a 640x480 RGB canvas, intrinsics ``scenes.FACE_K`` (face core, cli, node)."""
    from depthmarks_ros.testing.scenes import face_image
    return face_image()


@pytest.fixture(scope='module')
def one_torch_thread():
    """Run torch on one thread for a module: with its default pool (2 threads) on the shared,
    loaded 2-core machine the synthetic-task training test took > 300 s at load ~20 and timed out;
    on one thread it took 81 s at load ~33. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    from depthmarks_ros.core.threads import torch_threads
    with torch_threads(1):
        yield


_SHM_CLEANUP = pytest.StashKey()


def pytest_sessionfinish(session, exitstatus):
    """The tests kill processes on purpose (SIGKILL, the exit deadline's _exit): their Fast DDS segments
    stay in /dev/shm (17 MB a participant with our profile). Remove every zombie segment, one whose
    lock file no live process holds (ros/fastdds_shm.py); a segment in use stays. Whatever goes wrong
    here is reported in one line and never changes the run's exit status."""
    try:
        from depthmarks_ros.ros.fastdds_shm import remove_zombie_segments
        session.config.stash[_SHM_CLEANUP] = remove_zombie_segments().summary()
    except Exception as e:   # noqa: BLE001 - a clean-up must not fail the test run
        session.config.stash[_SHM_CLEANUP] = f'clean-up failed ({type(e).__name__}: {e}); nothing else changed'


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = config.stash.get(_SHM_CLEANUP, None)
    if line is not None:
        terminalreporter.write_line('/dev/shm: ' + line)
