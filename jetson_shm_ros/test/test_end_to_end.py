"""The installed producer and consumer executables as separate processes, over a real RMW."""

import os
import signal

from conftest import SHM_DIR
from node_processes import expected_rmw, isolated_env, NodeProcess, reported_rmw, summary
import pytest


def _start(processes, name, params, env):
    return processes.start(NodeProcess(name, params, env))


FRAME = [256, 1024]  # 1 MiB of uint32 per frame


def test_reliable_stream_verifies_every_frame_and_leaves_no_segment(processes, shm_name):
    env = isolated_env()
    frames = 60
    consumers = [_start(processes, 'consumer', {'frames': frames, 'idle_timeout_s': 10.0}, env)
                 for _ in range(2)]
    producer = _start(processes, 'producer', {
        'shm_name': shm_name, 'frames': frames, 'shape': FRAME, 'dtype': 'uint32',
        'rate_hz': 100.0, 'policy': 'reliable', 'wait_for_consumers': 2}, env)
    assert producer.finish() == 0, producer.output()
    for consumer in consumers:
        assert consumer.finish() == 0, consumer.output()
        counts = summary(consumer.output())
        assert counts is not None, consumer.output()
        assert counts['received'] == frames and counts['verified'] == frames, counts
        assert counts['invalid'] == 0 and counts['dropped'] == 0, counts
    assert reported_rmw(producer.output()) == expected_rmw(), producer.output()
    print(f'producer and consumers ran on {expected_rmw()}')
    assert 'policy=reliable' in producer.output()
    assert 'qos="reliable, keep_last(4), transient_local"' in producer.output()
    assert not os.path.exists(SHM_DIR + shm_name)


def test_late_consumer_joins_a_reliable_stream_without_stalling_it(processes, shm_name):
    # Fast DDS also hands a late reader the writer's history, so the registration rule itself
    # is pinned down by test_pool's late-joiner test; this one checks the running system.
    env = isolated_env()
    fast_status = {'status_period_s': 0.2}
    early = _start(processes, 'consumer', fast_status, env)
    producer = _start(processes, 'producer', {
        'shm_name': shm_name, 'shape': FRAME, 'dtype': 'uint32', 'rate_hz': 100.0,
        'policy': 'reliable', 'wait_for_consumers': 1, 'release_timeout_s': 60.0}, env)
    early.wait_for(r'status: received=[1-9]')
    late = _start(processes, 'consumer', fast_status, env)
    # Progress well past the late joiner's first frames proves the producer never stalled.
    late.wait_for(r'status: received=([3-9]\d|\d{3,}) verified=[1-9]')
    assert producer.interrupt() == 0, producer.output()
    assert early.interrupt() == 0 and late.interrupt() == 0
    # The late joiner was never waited for on frames it was not sent: no stall, no eviction.
    assert 'release_timeouts=0 evicted_readers=0' in producer.output(), producer.output()
    for consumer in (early, late):
        counts = summary(consumer.output())
        assert counts['invalid'] == 0, counts
        assert counts['verified'] + counts['dropped'] == counts['received'], counts
    assert not os.path.exists(SHM_DIR + shm_name)


def test_latest_stream_never_reports_a_bad_frame(processes, shm_name):
    env = isolated_env()
    consumer = _start(processes, 'consumer', {'idle_timeout_s': 2.0, 'status_period_s': 0.5}, env)
    producer = _start(processes, 'producer', {
        'shm_name': shm_name, 'frames': 100, 'shape': FRAME, 'dtype': 'uint32',
        'rate_hz': 500.0, 'slots': 2, 'policy': 'latest', 'wait_for_consumers': 1}, env)
    assert producer.finish() == 0, producer.output()
    assert consumer.finish() == 0, consumer.output()
    counts = summary(consumer.output())
    assert 0 < counts['received'] <= 100, counts
    assert counts['invalid'] == 0, counts
    assert counts['verified'] + counts['dropped'] == counts['received'], counts
    assert not os.path.exists(SHM_DIR + shm_name)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_signals_unlink_the_segment_and_print_the_summary(processes, shm_name, signum):
    env = isolated_env()
    consumer = _start(processes, 'consumer', {}, env)
    producer = _start(processes, 'producer', {
        'shm_name': shm_name, 'shape': FRAME, 'rate_hz': 50.0, 'wait_for_consumers': 1}, env)
    consumer.wait_for(r'mapped ' + shm_name)
    assert os.path.exists(SHM_DIR + shm_name)
    assert producer.interrupt(signum) == 0, producer.output()
    assert not os.path.exists(SHM_DIR + shm_name), 'the producer must unlink on ' + signum.name
    assert consumer.interrupt(signum) == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts is not None and counts['verified'] > 0 and counts['invalid'] == 0, counts
    for node in (producer, consumer):
        # Cleanup runs before the context goes away: no errors from late logging or waiting.
        assert 'Traceback' not in node.output() and 'context is invalid' not in node.output()


def test_restart_after_sigkill_removes_the_stale_segment(processes, shm_name):
    env = isolated_env()
    params = {'shm_name': shm_name, 'shape': [1024], 'rate_hz': 100.0}
    crashed = _start(processes, 'producer', params, env)
    crashed.wait_for('segment=' + shm_name)
    crashed.interrupt(signal.SIGKILL)
    assert os.path.exists(SHM_DIR + shm_name), 'SIGKILL leaves the segment behind'
    consumer = _start(processes, 'consumer', {'frames': 20, 'idle_timeout_s': 10.0}, env)
    restarted = _start(processes, 'producer',
                       dict(params, frames=20, wait_for_consumers=1, policy='reliable'), env)
    restarted.wait_for('removing stale segment /dev/shm' + shm_name)
    assert restarted.finish() == 0, restarted.output()
    assert consumer.finish() == 0, consumer.output()
    assert summary(consumer.output())['verified'] == 20
    assert not os.path.exists(SHM_DIR + shm_name)


def test_second_producer_on_a_live_segment_fails_clearly(processes, shm_name):
    env = isolated_env()
    first = _start(processes, 'producer', {'shm_name': shm_name, 'shape': [64]}, env)
    first.wait_for('segment=' + shm_name)
    second = _start(processes, 'producer', {'shm_name': shm_name, 'shape': [64]}, env)
    assert second.finish() == 2
    assert 'in use by running producer pid' in second.output()
    assert 'Traceback' not in second.output()
    assert first.interrupt() == 0
    assert not os.path.exists(SHM_DIR + shm_name)


@pytest.mark.parametrize('param, value, words', [
    ('policy', 'sometimes', 'policy'), ('dtype', 'object', 'dtype'),
    ('backend', 'pinned', 'backend'), ('shm_name', 'no_slash', 'shared-memory name')])
def test_bad_parameters_are_one_clear_startup_error(processes, shm_name, param, value, words):
    params = {'shm_name': shm_name, 'shape': [64]}
    params[param] = value
    producer = _start(processes, 'producer', params, isolated_env())
    assert producer.finish() == 2, producer.output()
    assert words in producer.output() and 'Traceback' not in producer.output()
    assert not os.path.exists(SHM_DIR + shm_name)
