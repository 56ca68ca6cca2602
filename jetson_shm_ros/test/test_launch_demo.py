"""
launch_testing: `ros2 launch jetson_shm_ros demo_launch.py` streams and verifies every frame.

Runs where launch_testing and launch_ros are installed (a ROS 2 installation from apt); where
they are not (the PyPI wheels), the module is skipped with the reason, and
test_launch_parse.py still checks the launch file.
"""

import os
import random
import re
import unittest
import uuid

from node_processes import domain_range
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
    """
    Return the RMW to launch with: the one under test.

    RMW_IMPLEMENTATION when it is set (the suite runs under Fast DDS and under Cyclone DDS),
    else the launch file's default (Cyclone DDS) where it is installed, else rclpy's default.
    """
    if os.environ.get('RMW_IMPLEMENTATION'):
        return os.environ['RMW_IMPLEMENTATION']
    try:
        packages.get_resource('rmw_typesupport', 'rmw_cyclonedds_cpp')
        return 'rmw_cyclonedds_cpp'
    except LookupError:
        from rclpy.utilities import get_rmw_implementation_identifier
        return get_rmw_implementation_identifier()


RMW = _rmw()
_ANSI = re.compile(r'\x1b\[[0-9;]*m')  # emulate_tty=True: rcutils colours its lines


def _text(proc_output) -> str:
    """Everything both nodes printed, without colour codes."""
    return _ANSI.sub('', ''.join(event.text.decode(errors='replace') for event in proc_output))


@pytest.mark.launch_test
def generate_test_description():
    """Include the installed demo_launch.py with a small, fast, isolated stream."""
    print(f'test_launch_demo: demo_launch.py rmw:={RMW} frames:={FRAMES} shm_name:={SHM_NAME}')
    share = packages.get_package_share_directory('jetson_shm_ros')
    demo = launch_actions.IncludeLaunchDescription(
        launch_sources.PythonLaunchDescriptionSource(
            os.path.join(share, 'launch', 'demo_launch.py')),
        launch_arguments={
            'rmw': RMW, 'frames': str(FRAMES), 'shape': '[64,1024]', 'dtype': 'uint32',
            'rate_hz': '100.0', 'slots': '4', 'policy': 'reliable', 'backend': 'cpu',
            'shm_name': SHM_NAME, 'namespace': 'jsr_launch_test'}.items())
    return launch.LaunchDescription([
        launch_actions.SetEnvironmentVariable(
            'ROS_DOMAIN_ID', str(random.SystemRandom().randint(*domain_range()))),
        launch_actions.SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
        demo,
        launch_testing_actions.ReadyToTest(),
    ]), {}


class TestDemo(unittest.TestCase):
    """While the launch runs."""

    def test_consumer_prints_its_summary(self, proc_output):
        proc_output.assertWaitFor('summary: received=', timeout=SUMMARY_TIMEOUT_S)


@launch_testing.post_shutdown_test()
class TestDemoAfterShutdown(unittest.TestCase):
    """After both nodes exited: what they printed, how they exited, what they left."""

    def test_both_nodes_ran_and_exited_with_0(self, proc_info):
        names = sorted(proc_info.process_names())
        self.assertEqual(len(names), 2, names)
        self.assertTrue(names[0].startswith('consumer') and names[1].startswith('producer'),
                        names)
        launch_testing_asserts.assertExitCodes(proc_info)

    def test_each_node_ran_on_the_rmw_asked_for(self, proc_output):
        text = _text(proc_output)
        for node in ('producer', 'consumer'):
            # '[<ns>.producer]: ... rmw=<name> ...' (the node's start-up line, whatever its words)
            reported = re.findall(r'\[(?:\S+\.)?' + node + r'\]: [^\n]*?\brmw=(\S+)', text)
            self.assertEqual(reported, [RMW], f'{node} with rmw:={RMW}:\n{text}')
        print(f'test_launch_demo: both nodes ran on {RMW}')

    def test_consumer_verified_every_frame(self, proc_output):
        text = _text(proc_output)
        lines = re.findall(r'\[(?:\S+\.)?consumer\]: summary: (.*)', text)
        self.assertEqual(len(lines), 1, text)
        counts = {key: int(value) for key, value in re.findall(r'(\w+)=(\d+)', lines[0])}
        self.assertEqual(counts.get('verified'), FRAMES, lines[0])
        self.assertEqual(counts.get('invalid'), 0, lines[0])
        print(f'test_launch_demo: consumer summary: {lines[0]}')

    def test_no_segment_is_left(self):
        self.assertFalse(os.path.exists('/dev/shm' + SHM_NAME), SHM_NAME + ' was left behind')
