"""
SIGINT and SIGTERM in every phase end the installed nodes promptly, with the segment unlinked.

Phases: the moment the process starts, the moment its segment appears (start-up not finished),
start-up done, and a reliable producer blocked on a consumer that stopped releasing. Streaming
is covered by test_end_to_end.test_signals_unlink_the_segment_and_print_the_summary. The
deadlines are generous (a loaded machine); each test prints how long the exit took.
"""

import os
import signal
import time

from conftest import SHM_DIR
from node_processes import isolated_env, NodeProcess
import pytest

EXIT_DEADLINE_S = 30.0
SIGNALS = [signal.SIGINT, signal.SIGTERM]


def _signal_and_time(node, signum):
    started = time.monotonic()
    node.popen.send_signal(signum)
    code = node.finish(EXIT_DEADLINE_S)
    elapsed = time.monotonic() - started
    print(f'{node.name} {signum.name}: exit {code} after {elapsed:.2f} s')
    return code


def _wait_for_path(path, node, timeout=EXIT_DEADLINE_S):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline and node.popen.poll() is None, node.output()
        time.sleep(0.001)


@pytest.mark.parametrize('signum', SIGNALS)
def test_signal_at_process_start(processes, shm_name, signum):
    # Before Python runs: the default action (terminate) or the early handler; either way the
    # process ends and there is no segment yet, or it is removed.
    producer = processes.start(NodeProcess('producer', {'shm_name': shm_name}, isolated_env()))
    _signal_and_time(producer, signum)
    assert not os.path.exists(SHM_DIR + shm_name), producer.output()


@pytest.mark.parametrize('signum', SIGNALS)
def test_signal_when_the_segment_appears_during_startup(processes, shm_name, signum):
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': [1024, 1024]}, isolated_env()))
    _wait_for_path(SHM_DIR + shm_name, producer)
    assert _signal_and_time(producer, signum) == 0, producer.output()
    assert not os.path.exists(SHM_DIR + shm_name), producer.output()
    assert 'Traceback' not in producer.output()


@pytest.mark.parametrize('signum', SIGNALS)
@pytest.mark.parametrize('name', ['producer', 'consumer'])
def test_signal_right_after_startup(processes, shm_name, name, signum):
    node = processes.start(NodeProcess(name, {'shm_name': shm_name} if name == 'producer'
                                       else {}, isolated_env()))
    node.wait_for('rmw=')
    assert _signal_and_time(node, signum) == 0, node.output()
    assert not os.path.exists(SHM_DIR + shm_name)
    assert 'Traceback' not in node.output()


@pytest.mark.parametrize('signum', SIGNALS)
def test_signal_to_a_blocked_reliable_producer(processes, shm_name, signum):
    env = isolated_env()
    consumer = processes.start(NodeProcess('consumer', {}, env))
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': [1024], 'rate_hz': 200.0, 'policy': 'reliable',
        'wait_for_consumers': 1, 'release_timeout_s': 3600.0, 'status_period_s': 0.2}, env))
    consumer.wait_for('mapped ' + shm_name)
    consumer.popen.send_signal(signal.SIGSTOP)  # alive, registered, never releases again
    try:
        producer.wait_for(r'published=\d+ waits=[1-9]')
        assert _signal_and_time(producer, signum) == 0, producer.output()
        assert not os.path.exists(SHM_DIR + shm_name), 'unlinked although a reader holds it'
        assert 'Traceback' not in producer.output()
    finally:
        consumer.popen.send_signal(signal.SIGCONT)
    assert _signal_and_time(consumer, signum) == 0, consumer.output()


def test_a_middleware_that_hangs_in_teardown_cannot_keep_a_node_alive(processes, shm_name):
    # The hook holds the producer where the middleware's teardown begins (its segment already
    # unlinked), as the Fast DDS deadlock of doc/lifecycle.md does; nothing signals it.
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': [64], 'frames': 3, 'rate_hz': 50.0},
        isolated_env(JSR_TEST_PAUSE_AT='middleware_teardown')))
    assert producer.finish() == 0, producer.output()
    output = producer.output()
    assert 'JSR_PHASE middleware_teardown' in output, output
    assert 'teardown did not finish within' in output, output
    assert 'done: published=3' in output, output
    assert not os.path.exists(SHM_DIR + shm_name), output
