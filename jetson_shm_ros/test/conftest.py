"""Fixtures shared by the tests: unique segment names and a check that none is left behind."""

import os
import uuid

import pytest

SHM_DIR = '/dev/shm'
TEST_PREFIX = 'jsr_test_'


def project_segments(prefix: str = TEST_PREFIX) -> list:
    """Segments this test suite created (Fast DDS keeps its own files in /dev/shm too)."""
    return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(prefix))


def damage_file(path, damage: str) -> None:
    """Cut a file in half ('truncate') or overwrite 64 bytes in its middle (anything else)."""
    size = os.path.getsize(path)
    with open(path, 'r+b') as stream:
        if damage == 'truncate':
            stream.truncate(size // 2)
        else:
            stream.seek(size // 2)
            stream.write(b'\xff' * 64)


def pytest_report_header(config):
    """Name the RMW the ROS tests of this run use: they run under any, and say which."""
    try:
        from rclpy.utilities import get_rmw_implementation_identifier
    except ImportError as error:
        return f'rmw: none ({error})'
    chosen = os.environ.get('RMW_IMPLEMENTATION', '(unset: the default)')
    return f'rmw: {get_rmw_implementation_identifier()} (RMW_IMPLEMENTATION={chosen})'


@pytest.fixture
def shm_name():
    """Yield a fresh segment name and fail the test if the segment outlives it."""
    name = f'/{TEST_PREFIX}{os.getpid()}_{uuid.uuid4().hex[:10]}'
    yield name
    path = SHM_DIR + name
    if os.path.exists(path):
        os.unlink(path)
        pytest.fail(f'{path} was left behind')


class Processes:
    """Processes a test started; each is stopped at teardown, whether the test passed or not."""

    def __init__(self):
        self._started = []

    def start(self, process):
        """Track `process` (anything with stop()) and return it."""
        self._started.append(process)
        return process

    def stop_all(self) -> None:
        """Stop every tracked process."""
        for process in self._started:
            process.stop()


@pytest.fixture
def processes():
    """Yield a Processes tracker; everything started through it is stopped afterwards."""
    tracker = Processes()
    yield tracker
    tracker.stop_all()


@pytest.fixture
def context():
    """Give a test its own rclpy context on a domain of its own, as rclpy's own tests do."""
    # Imported here: the ROS-free tests never load rclpy.
    import random

    import rclpy

    ctx = rclpy.Context()
    # A domain of its own: other ROS 2 graphs on this host must not leak into the test.
    from node_processes import domain_range
    first, last = domain_range()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randrange(first, last + 1))
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture
def consumer():
    """Yield a ROS-free FrameConsumer on the CPU backend; it is closed afterwards."""
    # Imported here, like rclpy in `context`: conftest stays light for every test file.
    from jetson_shm_ros.core.frame_consumer import FrameConsumer

    stream = FrameConsumer()
    yield stream
    stream.close()
