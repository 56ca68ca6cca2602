"""Hostile descriptors over the real topic, from an rclpy publisher, to a running consumer node."""

from collections import Counter
import os
import random
import time

from conftest import SHM_DIR
from hypothesis import given, settings, strategies as st
from jetson_shm_ros.core.descriptor import validate_static, WIRE_INTEGER_LIMITS
from jetson_shm_ros.core.errors import DescriptorError
from jetson_shm_ros.ros.conversion import from_msg, to_msg
from jetson_shm_ros.ros.middleware import descriptor_qos
from jetson_shm_ros_interfaces.msg import DataDescriptor
from node_processes import isolated_env, NodeProcess, summary
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message, serialize_message
from test_hostile_input import descriptor_changes, mutate, SETTINGS

TOPIC = 'jetson_shm/descriptors'
BATCHES, BATCH = 3, 100
SPIN_TIMEOUT_S = 60.0
# Deep enough that no hostile message is pushed out of a queue before the consumer reads it.
DEPTH = 1024


@pytest.fixture
def ros_env(monkeypatch):
    """Give this process and the node processes one private domain, loopback only."""
    env = isolated_env()
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
    node = rclpy.create_node(f'hostile_{random.randrange(10**6)}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    yield env, node, executor
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def _spin_until(executor, condition, timeout=SPIN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    return condition()


def _last_status(consumer):
    return summary(consumer.output().replace('status:', 'summary:'))


def _representable(desc):
    """Tell whether the message types can carry these values at all (a hostile peer's limit)."""
    return all(0 <= getattr(desc, name) < limit for name, limit in WIRE_INTEGER_LIMITS.items()) \
        and all(0 <= dim < 2**32 for dim in desc.shape)


def _static_reason(msg):
    """Return the reason the consumer must give without looking at memory, or None."""
    # What arrives is what the wire carries (a string ends at its first NUL, for one).
    received = deserialize_message(serialize_message(msg), DataDescriptor)
    try:
        validate_static(from_msg(received))
    except DescriptorError as error:
        return error.reason
    return None


def test_hostile_descriptors_over_the_topic_leave_the_consumer_node_running(
        processes, shm_name, ros_env):
    env, node, executor = ros_env
    consumer = processes.start(NodeProcess('consumer', {
        'queue_depth': DEPTH, 'status_period_s': 0.2}, env))
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': [64], 'rate_hz': 50.0, 'policy': 'latest',
        'wait_for_consumers': 1}, env))
    # The descriptor topic's QoS (transient-local): a volatile publisher would not match.
    qos = descriptor_qos(DEPTH)
    latest = []
    node.create_subscription(DataDescriptor, TOPIC, lambda msg: latest.append(msg), qos)
    hostile = node.create_publisher(DataDescriptor, TOPIC, qos)
    assert _spin_until(executor, lambda: latest and hostile.get_subscription_count() >= 2)
    consumer.wait_for(r'status: received=\d+ verified=[1-9]')
    sent, expected_reasons = 0, Counter()

    @settings(max_examples=BATCHES, **SETTINGS)
    @given(batch=st.lists(descriptor_changes(), min_size=BATCH, max_size=BATCH))
    def publish(batch):
        nonlocal sent
        good = from_msg(latest[-1])  # a real descriptor of the running producer
        for changes in batch:
            desc = mutate(good, changes)
            if not _representable(desc):
                continue  # negative or wider than its field: no peer can send it
            msg = to_msg(desc)
            hostile.publish(msg)
            sent += 1
            reason = _static_reason(msg)
            if reason:
                expected_reasons[reason] += 1

    publish()
    assert sent >= BATCHES * BATCH // 2, f'only {sent} hostile messages were representable'
    # The node keeps verifying the producer's frames after the burst.
    before = _last_status(consumer)['verified']
    assert _spin_until(executor, lambda: _last_status(consumer)['verified'] > before), \
        consumer.output()
    assert consumer.popen.poll() is None, consumer.output()
    assert producer.interrupt() == 0, producer.output()
    assert consumer.interrupt() == 1, 'invalid input makes the exit status say so'
    counts = summary(consumer.output())
    assert counts['received'] >= sent, (counts, sent)
    assert counts['invalid'] >= sum(expected_reasons.values()), (counts, expected_reasons)
    assert counts['verified'] > before, counts
    reasons = consumer.wait_for(r'summary: .*invalid_reasons=(\S+)').group(1)
    reported = dict(item.split(':') for item in reasons.split(','))
    for reason, count in expected_reasons.items():
        assert int(reported.get(reason, 0)) >= count, (reason, reported, expected_reasons)
    assert 'Traceback' not in consumer.output()
    assert not os.path.exists(SHM_DIR + shm_name)
