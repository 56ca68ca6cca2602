"""
kill -9 in every phase, a segment unlinked by hand, a full /dev/shm: the survivor goes on.

Each producer or consumer that gets killed runs in a process of its own (crash_peers.py) and
tells the test which phase it is in, so the kill lands exactly there. In every case no frame of
the dead incarnation is counted as verified, the surviving side keeps working, and a new
producer is picked up.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

from conftest import SHM_DIR
import crash_peers
from jetson_shm_ros.core.frame_consumer import DROPPED, FrameConsumer, INVALID, VERIFIED
from jetson_shm_ros.core.frame_producer import FrameProducer
from node_processes import isolated_env, NodeProcess, summary
import pytest

ANSWER_TIMEOUT_S = 60.0


class CrashPeer:
    """A crash_peers.py process, driven one command (and one answer) at a time."""

    def __init__(self, role, *args):
        self.role = role
        self.popen = subprocess.Popen(
            [sys.executable, crash_peers.__file__, role, *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, bufsize=1)
        self.first = self.answer()

    def answer(self):
        ready, _, _ = select.select([self.popen.stdout], [], [], ANSWER_TIMEOUT_S)
        assert ready, 'the peer did not answer'
        line = self.popen.stdout.readline()
        assert line, f'the peer exited with {self.popen.wait()}'
        return json.loads(line)

    def ask(self, command, desc=None):
        text = command if desc is None else f'{command} {crash_peers.to_json(desc)}'
        self.popen.stdin.write(text + '\n')
        answer = self.answer()
        return crash_peers.from_json(json.dumps(answer)) if 'shm_name' in answer else answer

    def kill(self, signum=signal.SIGKILL):
        self.popen.send_signal(signum)
        if signum == signal.SIGKILL:
            self.popen.wait()

    def stop(self):
        """End the peer: a producer by closing its input (it then unlinks), a consumer by kill."""
        if self.popen.poll() is None and self.role == 'producer':
            self.popen.stdin.close()
            try:
                self.popen.wait(ANSWER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout):
            if not stream.closed:
                stream.close()


def _new_producer_is_picked_up(processes, shm_name, consumer):
    """Start a producer after the crash: it replaces the stale segment; its frames verify."""
    successor = processes.start(CrashPeer('producer', shm_name))
    assert consumer.handle(successor.ask('write')) == VERIFIED, consumer.summary()
    return successor


def test_producer_killed_before_its_first_write(processes, shm_name, consumer):
    producer = processes.start(CrashPeer('producer', shm_name))
    producer.kill()
    assert os.path.exists(SHM_DIR + shm_name), 'kill -9 leaves the segment behind'
    successor = _new_producer_is_picked_up(processes, shm_name, consumer)
    assert successor.first['ready'] != producer.first['ready'], 'a new incarnation'
    successor.stop()
    assert not os.path.exists(SHM_DIR + shm_name), 'the successor cleaned up after both'


def test_producer_killed_after_a_write(processes, shm_name, consumer):
    producer = processes.start(CrashPeer('producer', shm_name))
    first = producer.ask('write')
    assert consumer.handle(first) == VERIFIED
    last = producer.ask('write')
    producer.kill()
    # Whole as it is, the dead producer's last frame is not vouched for.
    assert consumer.handle(last) == DROPPED
    assert consumer.drop_reasons == {'producer_gone': 1}, consumer.drop_reasons
    successor = _new_producer_is_picked_up(processes, shm_name, consumer)
    # Its descriptors arriving late, after the new producer took over the name: invalid.
    assert consumer.handle(last) == INVALID and consumer.handle(first) == INVALID
    assert consumer.invalid_reasons == {'unknown_incarnation': 2}, consumer.invalid_reasons
    assert consumer.counts[VERIFIED] == 2, consumer.summary()
    successor.stop()


def test_producer_killed_during_a_write(processes, shm_name, consumer):
    producer = processes.start(CrashPeer('producer', shm_name))
    frames = [producer.ask('write'), producer.ask('write')]
    producer.popen.stdin.write('hang\n')
    assert producer.answer() == {'writing': frames[0].slot}
    producer.kill()  # slot 0 is half rewritten, its sequence odd, forever
    assert [consumer.handle(desc) for desc in frames] == [DROPPED, DROPPED], consumer.summary()
    assert consumer.drop_reasons == {'overwritten_before_read': 1, 'producer_gone': 1}
    _new_producer_is_picked_up(processes, shm_name, consumer).stop()
    assert consumer.counts[VERIFIED] == 1


def test_producer_killed_while_a_reliable_consumer_holds_a_slot(processes, shm_name):
    producer = processes.start(CrashPeer('producer', shm_name, 'reliable'))
    seen = []

    def kill_producer_while_holding(frame, desc):
        producer.kill()
        seen.append(int(frame[0]))

    consumer = FrameConsumer(process=kill_producer_while_holding)
    try:
        # Verified before the callback ran, while its producer lived, and claimed throughout:
        # the callback saw the whole frame. Frames still queued from that producer are not.
        stale = producer.ask('write')
        assert consumer.handle(producer.ask('write')) == VERIFIED
        assert seen and not consumer.drop_reasons
        consumer.process = None
        assert consumer.handle(stale) == DROPPED
        assert consumer.drop_reasons == {'producer_gone': 1}
        successor = _new_producer_is_picked_up(processes, shm_name, consumer)
        assert consumer.handle(successor.ask('write')) == VERIFIED
        successor.stop()
    finally:
        consumer.close()


def _reliable_producer_with_a_holding_consumer(processes, shm_name, release_timeout_s):
    producer = FrameProducer(shm_name, 2, 'uint32', crash_peers.FRAME, policy='reliable',
                             release_timeout_s=release_timeout_s)
    reader = processes.start(CrashPeer('consumer'))
    first, second = producer.try_write_pattern(), producer.try_write_pattern()
    assert reader.ask('handle', first) == {'result': VERIFIED}
    reader.popen.stdin.write(f'hold {crash_peers.to_json(second)}\n')
    assert reader.answer() == {'holding': second.slot}
    assert producer.try_write_pattern() is not None, 'slot 0 was released'
    assert producer.try_write_pattern() is None, 'slot 1 is held'
    return producer, reader


def test_consumer_killed_holding_a_slot_does_not_stall_a_reliable_producer(processes,
                                                                           shm_name):
    # A release timeout of an hour: only noticing the death can free the slot.
    producer, reader = _reliable_producer_with_a_holding_consumer(processes, shm_name, 3600.0)
    try:
        reader.kill()
        assert producer.try_write_pattern() is not None
        counters = producer.pool.counters
        assert {key: counters[key] for key in ('release_timeouts', 'evicted_readers',
                                               'reaped_readers')} == {
            'release_timeouts': 0, 'evicted_readers': 0, 'reaped_readers': 1}, counters
        survivor = processes.start(CrashPeer('consumer'))
        assert survivor.ask('handle', producer.try_write_pattern()) == {'result': VERIFIED}
    finally:
        producer.close()


def test_stuck_consumer_holding_a_slot_is_evicted_after_the_release_timeout(processes,
                                                                            shm_name):
    producer, reader = _reliable_producer_with_a_holding_consumer(processes, shm_name, 0.2)
    try:
        reader.kill(signal.SIGSTOP)  # alive, but never releases
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        while producer.try_write_pattern() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert producer.pool.counters['evicted_readers'] == 1, producer.pool.counters
        assert producer.try_write_pattern() is not None, 'the producer goes on'
    finally:
        reader.kill(signal.SIGCONT)
        producer.close()


def _verified(node):
    return summary(node.output().replace('status:', 'summary:'))['verified']


def _wait_for_more_verified(node, than, timeout=ANSWER_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _verified(node) <= than:
        time.sleep(0.1)
    assert _verified(node) > than, node.output()


def test_segment_unlinked_by_hand_under_running_nodes(processes, shm_name):
    env = isolated_env()
    consumer = processes.start(NodeProcess('consumer', {'status_period_s': 0.2}, env))
    params = {'shm_name': shm_name, 'shape': [1024], 'rate_hz': 100.0, 'wait_for_consumers': 1}
    producer = processes.start(NodeProcess('producer', params, env))
    consumer.wait_for(r'status: received=\d+ verified=[1-9]')
    os.unlink(SHM_DIR + shm_name)
    # Both keep their mapping of the nameless segment: the stream goes on.
    _wait_for_more_verified(consumer, _verified(consumer))
    assert producer.interrupt() == 0, producer.output()
    assert 'Traceback' not in producer.output()
    successor = processes.start(NodeProcess('producer', params, env))
    successor.wait_for('segment=' + shm_name)
    _wait_for_more_verified(consumer, _verified(consumer))
    assert successor.interrupt() == 0
    assert consumer.interrupt() == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts['invalid'] == 0, counts
    assert len([line for line in consumer.output().splitlines() if 'mapped ' in line]) == 2
    assert not os.path.exists(SHM_DIR + shm_name)


# Run in a private 16 MiB tmpfs on /dev/shm: another process keeps writing into fresh pages of
# its own segment while producers that do not fit the free space try to start.
TOUCHER = """
import mmap, os
fd = os.open('/dev/shm/toucher', os.O_CREAT | os.O_RDWR, 0o600)
while True:
    os.ftruncate(fd, 0)
    os.ftruncate(fd, 1 << 20)
    pages = mmap.mmap(fd, 1 << 20)
    for offset in range(0, 1 << 20, 4096):
        pages[offset] = 1
    pages.close()
"""
STARVED_PRODUCERS = """
import os, subprocess, sys, time
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.slot_pool import SlotPool
toucher = subprocess.Popen([sys.executable, '-c', sys.argv[1]])
filler = os.open('/dev/shm/filler', os.O_CREAT | os.O_RDWR, 0o600)
os.posix_fallocate(filler, 0, 8 << 20)  # about 7 MiB left
refused = 0
for attempt in range(200):
    try:
        SlotPool.create(f'/jsr_room_{attempt}', 3, 4 << 20)  # 12 MiB: fits the tmpfs, not its room
    except SegmentError as error:
        refused += error.reason == 'no_space'
time.sleep(0.2)
print('refused', refused, 'toucher', toucher.poll())
toucher.kill()
"""


def _private_tmpfs_or_skip() -> None:
    if os.geteuid() != 0:
        pytest.skip('needs root to mount a small tmpfs on /dev/shm in a private mount '
                    'namespace (unshare -m)')
    probe = subprocess.run(['unshare', '-m', 'true'], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f'unshare -m is not allowed here: {probe.stderr.strip()}')


def test_a_producer_without_room_never_fills_dev_shm_under_another_process():
    # A failing posix_fallocate fills a tmpfs before it gives up. Before the free space was
    # checked first, the other process died of SIGBUS within about ten attempts here.
    _private_tmpfs_or_skip()
    run = subprocess.run(
        ['unshare', '-m', 'sh', '-c',
         'mount -t tmpfs -o size=16M tmpfs /dev/shm && exec "$0" "$@"',
         sys.executable, '-c', STARVED_PRODUCERS, TOUCHER],
        capture_output=True, text=True, timeout=120, env=isolated_env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert 'refused 200 toucher None' in run.stdout, run.stdout + run.stderr


def test_full_dev_shm_at_startup_is_one_clear_error(processes, shm_name):
    _private_tmpfs_or_skip()
    env = isolated_env()
    consumer = processes.start(NodeProcess('consumer', {'status_period_s': 0.2}, env))
    params = {'shm_name': shm_name, 'shape': [64, 1024, 1024], 'rate_hz': 100.0}  # 4 x 64 MiB
    tiny = ['unshare', '-m', 'sh', '-c',
            'mount -t tmpfs -o size=16M tmpfs /dev/shm && exec "$0" "$@"']
    starved = processes.start(NodeProcess('producer', params, env, prefix=tiny))
    assert starved.finish() == 2, starved.output()
    assert 'no_space' in starved.output() and 'is /dev/shm large enough?' in starved.output()
    assert 'Traceback' not in starved.output()
    # The consumer never noticed; the next producer, with room, is picked up.
    producer = processes.start(NodeProcess('producer', dict(params, shape=[1024]), env))
    consumer.wait_for(r'status: received=\d+ verified=[1-9]')
    assert producer.interrupt() == 0 and consumer.interrupt() == 0
    assert not os.path.exists(SHM_DIR + shm_name)


FAILING_NODE = """
import rclpy
from jetson_shm_ros.nodes.ros_common import RoleNode, run_node


class FailingNode(RoleNode):
    def __init__(self, **kwargs):
        super().__init__('failing_node', **kwargs)
        self.create_publisher(__import__('std_msgs.msg').msg.String, 'x', 1)
        raise RuntimeError('no room for the segment')

    def destroy_node(self):
        print('destroy_node', flush=True)
        return super().destroy_node()


shutdown = rclpy.try_shutdown
rclpy.try_shutdown = lambda *a, **k: (print('try_shutdown', flush=True), shutdown(*a, **k))
raise SystemExit(run_node(FailingNode, []))
"""


def test_a_node_whose_constructor_fails_is_destroyed_before_rclpy_shuts_down():
    # Left to rclpy.try_shutdown, the half-made node is destroyed from the context's weak list
    # as an orphan: a start-up failure once crashed there (SIGSEGV, nodes.ros_common).
    result = subprocess.run([sys.executable, '-c', FAILING_NODE], env=isolated_env(),
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert '[FATAL] no room for the segment' in output and 'Traceback' not in output, output
    markers = ('destroy_node', 'try_shutdown')
    lines = [line for line in result.stdout.splitlines() if line in markers]
    assert lines == ['destroy_node', 'try_shutdown'], output
