"""
The ROS-free peers (`python -m jetson_shm_ros.dds`) against the rclpy nodes, both directions.

Each pair runs as separate processes on an isolated ROS_DOMAIN_ID with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (the Cyclone peer then uses loopback and unicast
discovery, as rmw_cyclonedds_cpp does, and finds the nodes on whatever RMW this environment
selects: rmw_fastrtps_cpp, or rmw_cyclonedds_cpp under RMW_IMPLEMENTATION).
"""

import os
import signal
import subprocess
import sys
import tempfile
from typing import Dict

from conftest import SHM_DIR
from node_processes import expected_rmw, isolated_env, NodeProcess, reported_rmw, summary

FRAMES = 40
FRAME = {'shape': [256, 1024], 'dtype': 'uint32'}  # 1 MiB per frame
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DdsProcess(NodeProcess):
    """`python -m jetson_shm_ros.dds <role> --name value ...` in its own process."""

    def __init__(self, role: str, options: Dict[str, object], env: Dict[str, str]):
        self.name = 'dds ' + role
        self._log = tempfile.TemporaryFile(mode='w+')
        args = []
        for key, value in options.items():
            if isinstance(value, bool):
                args.append(f'--{key}' if value else f'--no-{key}')
            else:
                text = '[' + ','.join(map(str, value)) + ']' \
                    if isinstance(value, (list, tuple)) else str(value)
                args += [f'--{key}', text]
        self.popen = subprocess.Popen(
            [sys.executable, '-m', 'jetson_shm_ros.dds', role] + args, env=env, cwd=PACKAGE_DIR,
            stdout=self._log, stderr=subprocess.STDOUT)


def _assert_all_verified(consumer, frames=FRAMES):
    assert consumer.finish() == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts is not None, consumer.output()
    assert counts['received'] == frames and counts['verified'] == frames, counts
    assert counts['dropped'] == 0 and counts['invalid'] == 0, counts


def test_cyclone_producer_to_rclpy_consumer_verifies_every_frame(processes, shm_name):
    env = isolated_env()
    consumer = processes.start(NodeProcess(
        'consumer', {'frames': FRAMES, 'idle_timeout_s': 10.0}, env))
    producer = processes.start(DdsProcess('producer', dict(
        FRAME, shm_name=shm_name, frames=FRAMES, rate_hz=100.0, policy='reliable',
        wait_for_consumers=1), env))
    assert producer.finish() == 0, producer.output()
    _assert_all_verified(consumer)
    assert 'rmw=cyclonedds (ROS-free)' in producer.output()
    assert 'qos="reliable, keep_last(4), transient_local"' in producer.output()
    assert reported_rmw(consumer.output()) == expected_rmw(), consumer.output()
    print(f'rclpy consumer ran on {expected_rmw()}')
    assert not os.path.exists(SHM_DIR + shm_name)


def test_rclpy_producer_to_cyclone_consumer_verifies_every_frame(processes, shm_name):
    env = isolated_env()
    consumer = processes.start(DdsProcess(
        'consumer', {'frames': FRAMES, 'idle_timeout_s': 10.0}, env))
    producer = processes.start(NodeProcess('producer', dict(
        FRAME, shm_name=shm_name, frames=FRAMES, rate_hz=100.0, policy='reliable',
        wait_for_consumers=1), env))
    _assert_all_verified(consumer)
    assert producer.finish() == 0, producer.output()
    assert 'rmw=cyclonedds (ROS-free)' in consumer.output()
    assert 'qos="reliable, keep_last(16), transient_local"' in consumer.output()
    assert reported_rmw(producer.output()) == expected_rmw(), producer.output()
    print(f'rclpy producer ran on {expected_rmw()}')
    assert not os.path.exists(SHM_DIR + shm_name)


def test_signals_unlink_the_cyclone_producers_segment_and_print_the_summary(
        processes, shm_name):
    env = isolated_env()
    consumer = processes.start(DdsProcess('consumer', {}, env))
    producer = processes.start(DdsProcess('producer', {
        'shm_name': shm_name, 'shape': [1024], 'rate_hz': 50.0, 'wait_for_consumers': 1}, env))
    consumer.wait_for(r'mapped ' + shm_name)
    assert producer.interrupt(signal.SIGTERM) == 0, producer.output()
    assert not os.path.exists(SHM_DIR + shm_name), 'the producer must unlink on SIGTERM'
    assert consumer.interrupt(signal.SIGINT) == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts is not None and counts['verified'] > 0 and counts['invalid'] == 0, counts


def test_a_late_cyclone_consumer_never_counts_an_overwritten_slot(processes, shm_name):
    env = isolated_env()
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': [256, 1024], 'dtype': 'uint32', 'rate_hz': 200.0,
        'slots': 2, 'policy': 'latest'}, env))
    producer.wait_for('segment=' + shm_name)
    consumer = processes.start(DdsProcess('consumer', {'frames': 100}, env))
    assert consumer.finish() == 0, consumer.output()
    counts = summary(consumer.output())
    assert counts['received'] == 100 and counts['invalid'] == 0, counts
    assert counts['verified'] + counts['dropped'] == 100, counts
    assert producer.interrupt() == 0
    assert not os.path.exists(SHM_DIR + shm_name)


def test_a_bad_option_is_one_clear_startup_error(processes, shm_name):
    producer = processes.start(DdsProcess('producer', {
        'shm_name': shm_name, 'shape': [64], 'dtype': 'object'}, isolated_env()))
    assert producer.finish() == 2, producer.output()
    assert 'dtype' in producer.output() and 'Traceback' not in producer.output()
    assert not os.path.exists(SHM_DIR + shm_name)
