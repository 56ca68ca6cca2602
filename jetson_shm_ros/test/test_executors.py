"""make_executor(): the executor kinds, frames arriving under each, and a signal mid-spin."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid

from api_fixtures import spin_until
from conftest import project_segments
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.ros.executors import events_executor_class, executor_name, make_executor
from node_processes import default_signals, isolated_env, native_stacks
import pytest
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

FRAMES = 20
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'executor_peers.py')
DEADLINE_S = 60.0  # for the first frames to arrive (only a hang reaches it)
EXIT_TIMEOUT_S = 30.0  # from the signal to the exit (only a hang reaches it)


def test_each_kind_makes_its_executor(context):
    assert isinstance(make_executor('single', context), SingleThreadedExecutor)
    assert isinstance(make_executor('multi', context, num_threads=2), MultiThreadedExecutor)
    # auto: the EventsExecutor where rclpy has it, else the SingleThreadedExecutor.
    if events_executor_class() is None:  # a ROS 2 release before Jazzy
        assert isinstance(make_executor('auto', context), SingleThreadedExecutor)
        with pytest.raises(ValueError, match='EventsExecutor'):
            make_executor('events', context)
    else:
        assert executor_name(make_executor('auto', context)) == 'events'
        assert executor_name(make_executor('events', context)) == 'events'
    assert executor_name(make_executor('multi', context)) == 'multi'
    with pytest.raises(ValueError, match='not one of'):
        make_executor('fast', context)


@pytest.mark.parametrize('kind', ['auto', 'events', 'single', 'multi'])
def test_every_frame_arrives_verified_under_each_executor(context, shm_name, kind):
    if kind == 'events' and events_executor_class() is None:
        pytest.skip('this rclpy has no EventsExecutor (it arrived in Jazzy)')
    node = Node(f'jsr_test_executors_{os.getpid()}', context=context)
    try:
        got = []
        pub = ShmPublisher(node, 'frames', dtype='uint8', shape=[32], shm_name=shm_name,
                           slots=4, policy='reliable', required_readers=1)
        sub = ShmSubscription(node, 'frames', lambda frame, info: got.append(int(frame[0])))
        executor = make_executor(kind, context)
        executor.add_node(node)
        assert spin_until(executor, lambda: pub.subscription_count() == 1)
        for value in range(FRAMES):
            with pub.loan(timeout_s=5.0) as frame:
                frame[:] = value
            assert spin_until(executor, lambda: len(got) == value + 1), (kind, got,
                                                                         sub.summary())
        assert got == list(range(FRAMES))
        assert sub.counts['verified'] == FRAMES and sub.counts['missed'] == 0, sub.summary()
        executor.shutdown()
    finally:
        node.destroy_node()


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
@pytest.mark.parametrize('kind', ['events', 'single', 'multi'])
def test_a_signal_mid_spin_ends_both_processes_cleanly(tmp_path, kind, signum):
    """A user's nodes spun by each executor kind exit 0 on a signal, leaving nothing behind."""
    if kind == 'events' and events_executor_class() is None:
        pytest.skip('this rclpy has no EventsExecutor (it arrived in Jazzy)')
    env = isolated_env()
    namespace = f'jsr_test_{uuid.uuid4().hex[:10]}'
    segment = f'jetson_shm_ros.{namespace}.executor_publisher'
    logs = {role: tmp_path / f'{role}.log' for role in ('pub', 'sub')}
    started = {}
    try:
        for role in ('sub', 'pub'):
            with open(logs[role], 'w') as log:
                started[role] = subprocess.Popen(
                    [sys.executable, PEERS, role, kind, '--ros-args', '-r',
                     f'__ns:=/{namespace}'], env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=default_signals)
        deadline = time.monotonic() + DEADLINE_S
        frames = []
        while len(frames) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
            frames = re.findall(r'frame seq=(\d+)', logs['sub'].read_text())
        assert len(frames) >= 5, logs['sub'].read_text() + logs['pub'].read_text()
        assert any(name.startswith(segment) for name in os.listdir('/dev/shm'))
        for process in started.values():  # mid-spin: frames are still flowing
            process.send_signal(signum)
        for role, process in started.items():
            try:
                code = process.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # a hang: native and Python stacks into the log
                with open(logs[role], 'a') as log:
                    log.write(native_stacks(process.pid))
                process.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack
                process.wait(10)
                code = None
            assert code == 0, f'{kind} {role}: exit {code}\n{logs[role].read_text()}'
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for role in ('pub', 'sub'):
        text = logs[role].read_text()
        assert 'Traceback' not in text and 'interrupted' in text, f'{kind} {role}:\n{text}'
    assert not project_segments(segment), 'segment left behind'


@pytest.mark.parametrize('teardown', ['hang', 'slow'])
def test_only_a_teardown_stuck_in_rclpy_is_cut_short_after_a_signal(tmp_path, teardown):
    """
    A program whose rclpy destroy_node never returns after a signal still exits 0 (bounded).

    'hang': destroy_node blocks inside rclpy, as the Fast DDS deadlock does: the process ends
    with exit 0 and one [ERROR] line, the segment already gone. 'slow': the program's own
    cleanup takes longer than the bound: it is left alone and finishes.
    """
    env = isolated_env(JSR_TEST_TEARDOWN=teardown)
    namespace = f'jsr_test_{uuid.uuid4().hex[:10]}'
    segment = f'jetson_shm_ros.{namespace}.executor_publisher'
    logs = {role: tmp_path / f'{role}.log' for role in ('pub', 'sub')}
    started = {}
    try:
        for role in ('sub', 'pub'):
            with open(logs[role], 'w') as log:
                started[role] = subprocess.Popen(
                    [sys.executable, PEERS, role, 'single', '--ros-args', '-r',
                     f'__ns:=/{namespace}'], env=env if role == 'pub' else isolated_env(
                        ROS_DOMAIN_ID=env['ROS_DOMAIN_ID']),
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    preexec_fn=default_signals)
        deadline = time.monotonic() + DEADLINE_S
        while len(re.findall(r'frame seq=', logs['sub'].read_text())) < 3 and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        started['pub'].send_signal(signal.SIGINT)
        code = started['pub'].wait(EXIT_TIMEOUT_S)
        text = logs['pub'].read_text()
        assert code == 0, text
        assert 'interrupted' in text and 'Traceback' not in text, text
        assert not project_segments(segment), 'segment left behind'
        if teardown == 'hang':
            assert 'teardown did not finish within 10 s' in text, text
        else:
            assert 'cleanup done' in text and 'teardown did not finish' not in text, text
    finally:
        for process in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()
