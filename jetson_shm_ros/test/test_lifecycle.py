"""
A signal in every phase of start-up and teardown, for every node and both README examples.

Each process under test runs with JSR_TEST_PAUSE_AT=<phase> (process.signals.checkpoint): it
prints `JSR_PHASE <phase>` there and waits, so the signal lands exactly in that phase. A few
phases are reached by a log line instead (the producer waiting for consumers). The rule
(doc/lifecycle.md): once the library handles signals, SIGINT or SIGTERM ends the process with
its own exit code (0 here: nothing failed), no traceback, no segment left. How long each exit
took is printed, and appended to $JSR_LIFECYCLE_TIMES when set (make stress reports the
slowest); it is not asserted: the deadline below only stops a hang.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

from conftest import project_segments, SHM_DIR
from image_client import ImageClient, make_image
from node_processes import default_signals, isolated_env, NodeProcess
import pytest

EXIT_DEADLINE_S = 30.0
PHASE_TIMEOUT_S = 60.0
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'examples')


@pytest.fixture
def namespace():
    """Yield a namespace of its own for the examples (another test session may run them)."""
    yield f'jsr_test_{uuid.uuid4().hex[:10]}'


def _example_segments(namespace: str) -> list:
    return project_segments(f'jetson_shm_ros.{namespace}.camera_publisher')


class Example(NodeProcess):
    """A README example (plain rclpy code) in its own process, output kept like NodeProcess's."""

    def __init__(self, name: str, env: dict, namespace: str):
        """Start examples/<name>.py in `namespace` (its topics and segment name follow it)."""
        self.name = name
        self._log = tempfile.TemporaryFile(mode='w+')
        self.popen = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLES, name + '.py'), '--ros-args', '-r',
             f'__ns:=/{namespace}'], env=env, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=default_signals)


def _record(label: str, elapsed: float) -> None:
    print(f'{label}: exit after {elapsed:.3f} s')
    path = os.environ.get('JSR_LIFECYCLE_TIMES')
    if path:
        with open(path, 'a', encoding='utf-8') as times:
            times.write(f'{elapsed:.3f} {label}\n')


def _signal(process, signum, label: str) -> int:
    started = time.monotonic()
    process.popen.send_signal(signum)
    code = process.finish(EXIT_DEADLINE_S)
    _record(f'{label} {signum.name}', time.monotonic() - started)
    return code


def _phase_env(env: dict, phase: str) -> dict:
    return dict(env, JSR_TEST_PAUSE_AT=phase)


def _assert_clean(process, code: int, shm_name: str = '') -> None:
    output = process.output()
    assert code == 0, output
    assert 'Traceback' not in output, output
    if shm_name:
        assert not os.path.exists(SHM_DIR + shm_name), output


def _feeding_producer(processes, env, shm_name):
    """Start a producer that streams (another segment) for a consumer-side node to read."""
    return processes.start(NodeProcess('producer', {
        'shm_name': shm_name + '_in', 'shape': [8, 8, 3], 'encoding': 'rgb8',
        'rate_hz': 50.0}, env))


def _wait_then_signal(process, marker: str, signum, label: str) -> int:
    process.wait_for(marker, PHASE_TIMEOUT_S)
    return _signal(process, signum, label)


# (node, phase, parameters, needs a producer, signal). One signal per case keeps the matrix
# affordable under `make stress`; both signals run through the same handler, and each node
# gets both across its phases.
NODE_CASES = [
    ('producer', 'before_init', {}, False, signal.SIGINT),
    ('producer', 'segment_created', {'shape': [1024, 1024]}, False, signal.SIGTERM),
    ('producer', 'first_loan', {}, False, signal.SIGINT),
    ('producer', 'log:waiting for 1 subscription', {'wait_for_consumers': 1}, False,
     signal.SIGTERM),
    ('producer', 'teardown', {'frames': 3}, False, signal.SIGINT),
    ('consumer', 'before_init', {}, False, signal.SIGTERM),
    ('consumer', 'endpoint_created', {}, False, signal.SIGINT),
    ('consumer', 'first_descriptor', {}, True, signal.SIGTERM),
    ('consumer', 'teardown', {'frames': 3}, True, signal.SIGINT),
    ('image_filter', 'before_init', {}, False, signal.SIGINT),
    ('image_filter', 'endpoint_created', {}, False, signal.SIGTERM),
    ('image_filter', 'first_descriptor', {}, True, signal.SIGINT),
    ('image_filter', 'segment_created', {}, True, signal.SIGTERM),
    ('image_filter', 'wait_for_subscriptions', {'wait_for_consumers': 1}, True, signal.SIGINT),
    ('shm_to_image', 'before_init', {}, False, signal.SIGTERM),
    ('shm_to_image', 'endpoint_created', {}, False, signal.SIGINT),
    ('shm_to_image', 'first_descriptor', {}, True, signal.SIGTERM),
    ('image_to_shm', 'before_init', {}, False, signal.SIGINT),
]


@pytest.mark.parametrize('name, phase, params, fed, signum', NODE_CASES,
                         ids=[f'{case[0]}-{case[1]}' for case in NODE_CASES])
def test_a_signal_in_a_start_up_phase(processes, shm_name, name, phase, params, fed, signum):
    env = isolated_env()
    if fed:
        _feeding_producer(processes, env, shm_name)
    own = {'shm_name': shm_name} if name in ('producer', 'image_filter', 'image_to_shm') else {}
    if name == 'image_filter':  # the feeding producer's topic
        own['input_topic'] = 'jetson_shm/descriptors'
    marker = phase[4:] if phase.startswith('log:') else f'JSR_PHASE {phase}'
    node_env = env if phase.startswith('log:') else _phase_env(env, phase)
    node = processes.start(NodeProcess(name, dict(own, **params), node_env))
    code = _wait_then_signal(node, marker, signum, f'{name} {phase}')
    _assert_clean(node, code, own.get('shm_name', ''))


@pytest.mark.parametrize('name, params, fed', [
    ('image_filter', {}, True), ('shm_to_image', {}, True)])
def test_a_second_signal_during_teardown_changes_nothing(
        processes, shm_name, name, params, fed):
    # These nodes run until stopped: the first signal starts teardown, which pauses; the
    # second lands in it and must neither cut it short nor change the exit code.
    env = isolated_env()
    if fed:
        _feeding_producer(processes, env, shm_name)
    own = {'shm_name': shm_name} if name != 'shm_to_image' else {}
    if name == 'image_filter':
        own['input_topic'] = 'jetson_shm/descriptors'
    node = processes.start(NodeProcess(name, dict(own, **params), _phase_env(env, 'teardown')))
    node.wait_for('rmw=', PHASE_TIMEOUT_S)
    node.popen.send_signal(signal.SIGINT)
    code = _wait_then_signal(node, 'JSR_PHASE teardown', signal.SIGTERM, f'{name} teardown')
    _assert_clean(node, code, own.get('shm_name', ''))


@pytest.mark.parametrize('phase', ['segment_created', 'teardown'])
def test_image_to_shm_signalled_as_its_segment_is_created_and_in_teardown(
        processes, shm_name, phase):
    # Its segment is made at the first image: the test sends images until the phase is reached
    # (for teardown: until the segment exists, then a first signal starts teardown).
    env = isolated_env()
    node = processes.start(NodeProcess('image_to_shm', {'shm_name': shm_name},
                                       _phase_env(env, phase)))
    node.wait_for('rmw=', PHASE_TIMEOUT_S)
    client = ImageClient(int(env['ROS_DOMAIN_ID']))
    reached = 'JSR_PHASE segment_created' if phase == 'segment_created' else 'segment /'
    try:
        image = make_image('mono8', 4, 4, 4, bytes(16), frame_id='cam', stamp_ns=1)
        assert client.round_trip_until(image, lambda: reached in node.output(),
                                       PHASE_TIMEOUT_S, resend_every=0.2), node.output()
        if phase == 'teardown':
            node.popen.send_signal(signal.SIGINT)
            node.wait_for('JSR_PHASE teardown', PHASE_TIMEOUT_S)
        code = _signal(node, signal.SIGTERM, f'image_to_shm {phase}')
    finally:
        client.close()
    _assert_clean(node, code, shm_name)


EXAMPLE_PHASES = ['segment_created', 'first_loan', 'teardown']


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize('phase', EXAMPLE_PHASES)
def test_camera_publisher_example_in_every_phase(processes, namespace, phase, signum):
    publisher = processes.start(Example('camera_publisher', _phase_env(isolated_env(), phase),
                                        namespace))
    if phase == 'teardown':  # the first signal starts teardown; this one lands in it
        publisher.wait_for('shm publisher:', PHASE_TIMEOUT_S)
        publisher.popen.send_signal(signal.SIGINT)
    code = _wait_then_signal(publisher, f'JSR_PHASE {phase}', signum,
                             f'camera_publisher {phase}')
    _assert_clean(publisher, code)
    assert not _example_segments(namespace), publisher.output()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize('phase', ['endpoint_created', 'first_descriptor', 'teardown'])
def test_frame_subscriber_example_in_every_phase(processes, namespace, phase, signum):
    env = isolated_env()
    if phase == 'first_descriptor':
        processes.start(Example('camera_publisher', env, namespace))
    subscriber = processes.start(Example('frame_subscriber', _phase_env(env, phase), namespace))
    if phase == 'teardown':
        subscriber.wait_for('shm subscription:', PHASE_TIMEOUT_S)
        subscriber.popen.send_signal(signal.SIGINT)
    code = _wait_then_signal(subscriber, f'JSR_PHASE {phase}', signum,
                             f'frame_subscriber {phase}')
    _assert_clean(subscriber, code)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_an_example_signalled_as_it_starts_leaves_nothing(processes, namespace, signum):
    # Before its first ShmPublisher exists the library handles no signal (doc/lifecycle.md):
    # Python's or rclpy's own handling applies, and there is nothing of ours to leave behind.
    publisher = processes.start(Example('camera_publisher', isolated_env(), namespace))
    _signal(publisher, signum, 'camera_publisher at start')
    assert not _example_segments(namespace), publisher.output()


def test_writes_and_descriptors_after_the_context_shut_down_are_counted(shm_name):
    # In one process: the context goes away (another thread, a launch shutdown); the endpoints
    # must not raise RCLError at the next write or descriptor, and destroy_node still cleans up.
    import numpy as np
    import rclpy
    from jetson_shm_ros import ShmPublisher, ShmSubscription
    from jetson_shm_ros_interfaces.msg import DataDescriptor

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(isolated_env()['ROS_DOMAIN_ID']))
    node = rclpy.create_node('after_shutdown', context=context)
    publisher = ShmPublisher(node, 'frames', dtype='uint8', shape=[4], shm_name=shm_name,
                             backend='cpu')
    subscription = ShmSubscription(node, 'frames', lambda frame, info: None, backend='cpu')
    with publisher.loan() as frame:
        frame[...] = 1
    assert publisher.frames_published == 1
    rclpy.try_shutdown(context=context)
    with publisher.loan() as frame:
        frame[...] = 2
    publisher.publish(np.full(4, 3, dtype=np.uint8))
    publisher.publish_test_pattern()
    subscription._on_descriptor(DataDescriptor())
    assert publisher.counters['after_shutdown'] == 3, publisher.counters
    assert publisher.frames_published == 1
    assert subscription.after_shutdown == 1 and subscription.counts['received'] == 0
    node.destroy_node()
    assert publisher.closed and subscription.closed
    assert not os.path.exists(SHM_DIR + shm_name)
