"""
launch_testing: `ros2 launch jetson_shm_ros demo_launch.py` streams and verifies every frame.

Runs where launch_testing and launch_ros are installed (a ROS 2 installation from apt); where
they are not (the PyPI wheels), the module is skipped with the reason, and
test_launch_parse.py still checks the launch file.
"""

import os
import random
import unittest
import uuid

import pytest

REASON = ('launch_testing/launch_ros are not installed (they come with ROS 2 from apt, e.g. '
          'ros-$ROS_DISTRO-launch-testing-ros); the launch file is checked by '
          'test_launch_parse.py instead')
launch = pytest.importorskip('launch', reason=REASON)
launch_actions = pytest.importorskip('launch.actions', reason=REASON)
launch_sources = pytest.importorskip('launch.launch_description_sources', reason=REASON)
launch_testing = pytest.importorskip('launch_testing', reason=REASON)
launch_testing_actions = pytest.importorskip('launch_testing.actions', reason=REASON)
launch_testing_asserts = pytest.importorskip('launch_testing.asserts', reason=REASON)
pytest.importorskip('launch_ros', reason=REASON)
packages = pytest.importorskip('ament_index_python.packages', reason=REASON)

FRAMES = 40
SUMMARY_TIMEOUT_S = 60.0
SHM_NAME = f'/jsr_test_launch_{os.getpid()}_{uuid.uuid4().hex[:10]}'


def _rmw() -> str:
    """Cyclone DDS where its RMW is installed (the launch default), else this process's RMW."""
    try:
        packages.get_resource('rmw_typesupport', 'rmw_cyclonedds_cpp')
        return 'rmw_cyclonedds_cpp'
    except LookupError:
        return os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


@pytest.mark.launch_test
def generate_test_description():
    """Include the installed demo_launch.py with a small, fast, isolated stream."""
    share = packages.get_package_share_directory('jetson_shm_ros')
    demo = launch_actions.IncludeLaunchDescription(
        launch_sources.PythonLaunchDescriptionSource(
            os.path.join(share, 'launch', 'demo_launch.py')),
        launch_arguments={
            'rmw': _rmw(), 'frames': str(FRAMES), 'shape': '[64,1024]', 'dtype': 'uint32',
            'rate_hz': '100.0', 'slots': '4', 'policy': 'reliable', 'backend': 'cpu',
            'shm_name': SHM_NAME, 'namespace': 'jsr_launch_test'}.items())
    return launch.LaunchDescription([
        launch_actions.SetEnvironmentVariable(
            'ROS_DOMAIN_ID', str(random.SystemRandom().randrange(100, 200))),
        launch_actions.SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
        demo,
        launch_testing_actions.ReadyToTest(),
    ]), {}


class TestDemo(unittest.TestCase):
    """While the launch runs."""

    def test_consumer_verifies_every_frame(self, proc_output):
        proc_output.assertWaitFor(
            f'summary: received={FRAMES} verified={FRAMES} dropped=0 invalid=0',
            timeout=SUMMARY_TIMEOUT_S)


@launch_testing.post_shutdown_test()
class TestDemoAfterShutdown(unittest.TestCase):
    """After both nodes exited."""

    def test_nodes_exit_cleanly(self, proc_info):
        launch_testing_asserts.assertExitCodes(proc_info)

    def test_no_segment_is_left(self):
        self.assertFalse(os.path.exists('/dev/shm' + SHM_NAME), SHM_NAME + ' was left behind')
