"""launch_pytest tests: run under `colcon test` on a real ROS 2 install; skipped cleanly where the
launch system is not installed (PyPI-only machines)."""
import pytest

launch_pytest = pytest.importorskip('launch_pytest')
launch = pytest.importorskip('launch')
launch_ros = pytest.importorskip('launch_ros')


def _plugin_predates_pytest_8_4() -> bool:
    """launch_pytest up to 3.7 reads a fixture attribute that pytest 8.4 removed (ros2/launch#947):
    its collection then fails with AttributeError instead of running the test."""
    import inspect
    import launch_pytest.plugin
    return ('_pytestfixturefunction' in inspect.getsource(launch_pytest.plugin)
            and not hasattr(pytest.fixture(lambda: None), '_pytestfixturefunction'))


if _plugin_predates_pytest_8_4():
    pytest.skip(f'this launch_pytest does not support pytest {pytest.__version__} (ros2/launch#947): '
                'run colcon test with the system pytest', allow_module_level=True)

from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402


@launch_pytest.fixture
def generate_test_description():
    from ament_index_python.packages import get_package_share_directory
    import os
    path = os.path.join(get_package_share_directory('depthmarks_ros'), 'launch', 'full_pipeline.launch.py')
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(path),
                                 launch_arguments={'face': 'false', 'body': 'false'}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=generate_test_description)
def test_full_pipeline_publishes_fused_depth():
    import rclpy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('launch_test_probe')
    got = []
    node.create_subscription(Image, 'fusion/depth', got.append, 10)
    import time
    end = time.time() + 60
    while time.time() < end and not got:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()
    assert got and got[0].encoding == '32FC1'
