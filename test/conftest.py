"""Test set-up: isolate DDS before rclpy is imported (loopback, own domain, own log dir)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.normpath(os.path.join(os.path.dirname(__file__), '..')))

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
