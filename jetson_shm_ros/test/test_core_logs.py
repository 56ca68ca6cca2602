"""
Core log records still reach their handlers after `launch` installed its logger class.

`import launch` (launch/logging/__init__.py) calls `logging.setLoggerClass(LaunchLogger)`, and
every logger created after that has `propagate = False`. launch_testing's pytest plugin, `ros2
launch` and a user's own launcher import it before jetson_shm_ros creates its loggers. Each
check runs in a fresh interpreter that installs such a class first: a copy of what launch does
(always), and `import launch` itself where launch is installed.
"""

import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
from typing import Dict
import uuid

from conftest import SHM_DIR
from node_processes import isolated_env, NodeProcess, ros_args, summary
import pytest
from test_gpu import cupy as gpu_cupy, no_gpu_only

TEST_DIR = os.path.dirname(os.path.abspath(__file__))
PACKAGE_DIR = os.path.dirname(TEST_DIR)
FRAMES = 20
PYTEST_TIMEOUT_S = 120

# What launch.logging does on import (LaunchLogger: a subclass of the installed class that
# sets propagate = False in __init__), then a check that it took effect.
LAUNCH_LIKE = """
import logging


class NonPropagatingLogger(logging.getLoggerClass()):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.propagate = False


logging.setLoggerClass(NonPropagatingLogger)
"""
REAL_LAUNCH = 'import launch\n'
CHECK_INSTALLED = """
import logging
assert not logging.getLogger('jsr_logger_class_probe').propagate, 'the class propagates'
"""


def _launch_installed() -> bool:
    # Run from the package directory, launch/ (demo_launch.py) is a namespace package: no origin.
    spec = importlib.util.find_spec('launch')
    return spec is not None and spec.origin is not None


LOGGER_CLASSES = [
    pytest.param(LAUNCH_LIKE, id='launch-like'),
    pytest.param(REAL_LAUNCH, id='import-launch', marks=pytest.mark.skipif(
        not _launch_installed(),
        reason='launch is not installed (it comes with ROS 2 from apt); the launch-like '
               'case installs the same kind of logger class')),
]


class NodeUnderLoggerClass(NodeProcess):
    """A node's main() in a process that installed a logger class before importing the node."""

    def __init__(self, role: str, prelude: str, params: Dict[str, object],
                 env: Dict[str, str]):
        self.name = role
        self._log = tempfile.TemporaryFile(mode='w+')
        code = (prelude + CHECK_INSTALLED + 'import sys\n'
                f'from jetson_shm_ros.nodes.{role} import main\n'
                'sys.exit(main())\n')
        self.popen = subprocess.Popen([sys.executable, '-c', code] + ros_args(params), env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT)


@no_gpu_only
@pytest.mark.parametrize('prelude', LOGGER_CLASSES)
def test_the_gpu_fallback_warning_reaches_the_package_logger(prelude):
    test = os.path.join(TEST_DIR, 'test_gpu.py') + \
        '::test_without_gpu_auto_falls_back_to_cpu_with_one_log_line'
    args = ['-q', '-p', 'no:cacheprovider', '--rootdir', PACKAGE_DIR, test]
    code = (prelude + CHECK_INSTALLED +
            f'import sys\nimport pytest\nsys.exit(pytest.main({args!r}))\n')
    run = subprocess.run([sys.executable, '-c', code], cwd=PACKAGE_DIR, capture_output=True,
                         text=True, timeout=PYTEST_TIMEOUT_S)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert re.search(r'\b1 passed\b', output), output


@pytest.mark.parametrize('prelude', LOGGER_CLASSES)
def test_a_nodes_core_logs_reach_the_node_logger(processes, shm_name, prelude):
    env = isolated_env()
    consumer = processes.start(NodeUnderLoggerClass(
        'consumer', prelude, {'frames': FRAMES, 'idle_timeout_s': 10.0}, env))
    producer = processes.start(NodeUnderLoggerClass('producer', prelude, {
        'shm_name': shm_name, 'frames': FRAMES, 'shape': [64, 64, 3], 'rate_hz': 100.0,
        'policy': 'reliable', 'wait_for_consumers': 1}, env))
    assert producer.finish() == 0, producer.output()
    assert consumer.finish() == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts is not None and counts['verified'] == FRAMES, consumer.output()
    # 'mapped <segment>: ...' is logged by the core (jetson_shm_ros.stream), not by the node.
    assert re.search(r'\[consumer\]: mapped ' + re.escape(shm_name), consumer.output()), \
        consumer.output()
    if gpu_cupy is None:
        # Without a GPU the core's one fallback warning must come through the node's logger.
        assert '[producer]: no usable GPU' in producer.output(), producer.output()
    assert not os.path.exists(SHM_DIR + shm_name)


def test_get_logger_propagates_whatever_logger_class_is_installed():
    from jetson_shm_ros.core.logs import get_logger
    previous = logging.getLoggerClass()
    exec(LAUNCH_LIKE, {})
    try:
        name = f'jetson_shm_ros.test_logs_{uuid.uuid4().hex[:10]}'
        assert not logging.getLogger(name + '.plain').propagate
        assert get_logger(name).propagate
    finally:
        logging.setLoggerClass(previous)


def test_every_core_and_dds_module_gets_its_logger_from_core_logs():
    # A module that calls logging.getLogger() itself is silenced again where launch is imported.
    package = os.path.join(PACKAGE_DIR, 'jetson_shm_ros')
    offenders = []
    for folder in ('core', 'dds'):
        for root, _, files in os.walk(os.path.join(package, folder)):
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.endswith('.py') and path != os.path.join(package, 'core', 'logs.py'):
                    with open(path, encoding='utf-8') as source:
                        if 'logging.getLogger(' in source.read():
                            offenders.append(os.path.relpath(path, package))
    assert not offenders, f'use jetson_shm_ros.core.logs.get_logger() in {offenders}'
