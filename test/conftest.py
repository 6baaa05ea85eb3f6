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
