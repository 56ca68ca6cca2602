"""
Bad input gets one clear line: constructor arguments, and a node's command line.

Constructors are called directly (the behaviour is the library's); command lines go to the
installed node executables (the behaviour is the process's).
"""

import os
import subprocess
import warnings

from conftest import project_segments, SHM_DIR
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.core.errors import ArgumentError, OptionError, SegmentError
from jetson_shm_ros.nodes.command_line import read_command_line
from node_processes import executable, isolated_env, RUN_TIMEOUT_S
import numpy as np
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

TOPIC = 'bad_input'
GOOD_PUBLISHER = {'dtype': 'uint8', 'shape': [4, 4]}


@pytest.fixture
def node(context):
    node = Node(f'jsr_test_bad_input_{os.getpid()}', context=context)
    yield node
    node.destroy_node()


def _run(name: str, *argv: str) -> subprocess.CompletedProcess:
    """Run an installed node executable with `argv` as typed; keep what it printed."""
    return subprocess.run([executable(name), *argv], env=isolated_env(), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S)


def _endpoints(node: Node) -> tuple:
    return len(list(node.publishers)), len(list(node.subscriptions)), len(list(node.timers))


@pytest.mark.parametrize('argument, value, allowed', [
    ('slots', -2, 'an integer from 1 to 1024'),
    ('slots', 0, 'an integer from 1 to 1024'),
    ('slots', 2.5, 'an integer from 1 to 1024'),
    ('slots', '4', 'an integer from 1 to 1024'),
    ('slots', True, 'an integer from 1 to 1024'),
    ('dtype', 'complex64', "dtype='complex64' is not allowed"),
    ('shape', [4, 0], 'a list of up to'),
    ('shape', 16, 'a list of up to'),
    ('policy', 'sometimes', 'one of latest, reliable'),
    ('backend', 'tpu', 'one of auto, cpu, pinned, cuda_ipc'),
    ('mode', 'fast', 'one of zero_copy, copy'),
    ('encoding', 'rgb8', 'an encoding that agrees with dtype and shape'),
    ('shm_name', 'no_slash', "'' or a valid shared-memory name"),
    ('checksum', 'yes', 'true or false'),
    ('release_timeout_s', 0, 'a number from 0.001 to 100000'),
    ('required_readers', -1, 'an integer from 0 to'),
    ('qos_depth', -2, 'an integer from 1 to 1024'),
    ('qos_depth', 0, 'an integer from 1 to 1024'),
    ('diagnostics_period_s', -1.0, 'a number from 0 to 3600'),
    ('discovery_timeout_s', float('nan'), 'a finite number of seconds >= 0 or None'),
    ('topic', 'bad topic', 'a valid ROS topic name'),
    ('topic', '', 'a non-empty topic name'),
    ('callback_group', 'group', 'None or an rclpy CallbackGroup'),
])
def test_a_bad_publisher_argument_is_one_line_and_nothing_is_created(
        node, shm_name, argument, value, allowed):
    arguments = dict(GOOD_PUBLISHER, shm_name=shm_name, topic=TOPIC)
    arguments[argument] = value
    before = _endpoints(node)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # e.g. rclpy's UserWarning for a zero QoS depth
        with pytest.raises(ArgumentError) as error:
            ShmPublisher(node, arguments.pop('topic'), **arguments)
    text = str(error.value)
    assert '\n' not in text and text.startswith(f'bad_argument: ShmPublisher: {argument}='), text
    assert allowed in text, text
    assert _endpoints(node) == before
    assert not os.path.exists(SHM_DIR + shm_name)


@pytest.mark.parametrize('argument, value, allowed', [
    ('callback', None, 'callable'),
    ('queue_depth', 0, 'an integer from 1 to 1024'),
    ('queue_depth', -2, 'an integer from 1 to 1024'),
    ('verify', 1, 'true or false'),
    ('allow_group_access', 'no', 'true or false'),
    ('backend', 'tpu', 'one of auto, cpu, pinned, cuda_ipc'),
    ('mode', None, 'one of zero_copy, copy'),
    ('diagnostics_period_s', 'often', 'a number from 0 to 3600'),
    ('topic', '~/a//b', 'a valid ROS topic name'),
])
def test_a_bad_subscription_argument_is_one_line_and_nothing_is_created(
        node, argument, value, allowed):
    arguments = {'topic': TOPIC, 'callback': lambda frame, info: None}
    arguments[argument] = value
    before = _endpoints(node)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(ArgumentError) as error:
            ShmSubscription(node, arguments.pop('topic'), arguments.pop('callback'),
                            **arguments)
    text = str(error.value)
    assert '\n' not in text and \
        text.startswith(f'bad_argument: ShmSubscription: {argument}='), text
    assert allowed in text, text
    assert _endpoints(node) == before


def test_destroy_node_works_after_any_failed_constructor(context, shm_name):
    node = Node(f'jsr_test_bad_input_destroy_{os.getpid()}', context=context)
    good = ShmPublisher(node, TOPIC, shm_name=shm_name, **GOOD_PUBLISHER)
    before = _endpoints(node)
    failures = []
    for make in (
            lambda: ShmPublisher(node, TOPIC, slots=-2, shm_name=shm_name + '_a',
                                 **GOOD_PUBLISHER),
            # Fails after its publisher was created: the segment name is in use.
            lambda: ShmPublisher(node, 'other', shm_name=shm_name, **GOOD_PUBLISHER),
            lambda: ShmSubscription(node, TOPIC, lambda frame, info: None, queue_depth=0)):
        with pytest.raises((ArgumentError, SegmentError)) as error:
            make()
        failures.append(error.value.reason)
    assert failures == ['bad_argument', 'in_use', 'bad_argument']
    assert _endpoints(node) == before, 'a failed constructor left an endpoint behind'
    good.publish(np.zeros((4, 4), np.uint8))  # the one that worked still works
    node.destroy_node()  # no AttributeError from the half-made endpoints
    assert good.closed and project_segments(shm_name[1:]) == []


def test_read_command_line_last_override_wins_whatever_the_types():
    def overrides(*argv):
        return {p.name: (p.type_, p.value) for p in read_command_line(['producer', *argv])}

    assert overrides('--ros-args', '-p', 'rate_hz:=7', '-p', 'rate_hz:=5.0') == \
        {'rate_hz': (Parameter.Type.DOUBLE, 5.0)}
    assert overrides('--ros-args', '-p', 'rate_hz:=5.0', '--param', 'rate_hz:=7') == \
        {'rate_hz': (Parameter.Type.INTEGER, 7)}
    assert overrides('--ros-args', '-p', 'shape:=[2,3]', '--', '--ros-args',
                     '-p', 'shape:=4x4') == {'shape': (Parameter.Type.STRING, '4x4')}
    # Set once: left to rclpy as it is; a node-qualified name is rcl's too.
    assert overrides('--ros-args', '-p', 'rate_hz:=7', '-p', 'producer:frames:=1',
                     '-p', 'producer:frames:=2') == {}


@pytest.mark.parametrize('argv, words', [
    (['--rate_hz', '0'], "unexpected argument(s) '--rate_hz 0': node options are ROS "
     'parameters, e.g. --ros-args -p rate_hz:=0'),
    (['--ros-args', '-p', 'frames:=1', '--', 'extra'], "unexpected argument(s) 'extra'"),
    (['--ros-args', '-p', 'shape:=[1024,1024'], '-p shape:=[1024,1024 is not allowed: the '
     'value of shape is not valid YAML'),
    (['--ros-args', '-p', 'shape'], '-p shape is not a parameter override'),
])
def test_read_command_line_refuses_with_one_line(argv, words):
    with pytest.raises(OptionError) as error:
        read_command_line(['producer', *argv])
    assert words in str(error.value) and '\n' not in str(error.value), str(error.value)


def test_read_command_line_skips_the_program_name_even_when_it_looks_like_an_option():
    # `python -c CODE --ros-args ...` has sys.argv == ['-c', '--ros-args', ...].
    assert read_command_line(['-c', '--ros-args', '-p', 'frames:=1']) == []
    with pytest.raises(OptionError, match="unexpected argument.s. '-c'"):
        read_command_line(['-c', '--ros-args', '-p', 'frames:=1'], with_program=False)


@pytest.mark.parametrize('argv, words', [
    (['--ros-args', '-p', 'shape:=[1024,1024'],
     '[FATAL] bad command line: -p shape:=[1024,1024 is not allowed'),
    (['--rate_hz', '0'], '[FATAL] bad command line: unexpected argument(s) '),
    (['--ros-args', '-r', 'foo'], '[FATAL] bad command line: Failed to parse ROS arguments: '
     "Couldn't parse remap rule: '-r foo'"),
])
def test_a_bad_command_line_ends_start_up_with_one_fatal_line(shm_name, argv, words):
    done = _run('producer', *argv)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert output.startswith(words) and output.count('\n') == 1, output
    assert 'Traceback' not in output


@pytest.mark.parametrize('first, last', [(7, '5.0'), ('5.0', 7)])
def test_the_last_of_two_overrides_wins_in_a_node(shm_name, first, last):
    done = _run('producer', '--ros-args', '-p', f'shm_name:={shm_name}', '-p', 'shape:=[16]',
                '-p', 'frames:=1', '-p', f'rate_hz:={first}', '-p', f'rate_hz:={last}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert f'rate={float(last)} Hz frames=1' in done.stdout + done.stderr
