"""The nodes in one process with parameter overrides: declarations, wiring, bad messages."""

import os
import time

from conftest import SHM_DIR
from jetson_shm_ros.nodes.consumer import ConsumerNode
from jetson_shm_ros.nodes.producer import ProducerNode
from jetson_shm_ros.ros.middleware import descriptor_qos
from jetson_shm_ros_interfaces.msg import DataDescriptor
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

SPIN_TIMEOUT_S = 30.0


def _overrides(**values):
    return [Parameter(key, value=value) for key, value in values.items()]


def _make(node_class, context, namespace='', **params):
    return node_class(context=context, namespace=namespace,
                      parameter_overrides=_overrides(**params))


def test_every_parameter_is_declared_with_a_description(context, shm_name):
    producer = _make(ProducerNode, context, shm_name=shm_name, shape=[8])
    consumer = _make(ConsumerNode, context)
    try:
        for node in (producer, consumer):
            names = node._parameters.keys() - {'use_sim_time'}
            assert len(names) >= 8
            for name in names:
                descriptor = node.describe_parameter(name)
                assert descriptor.description, f'{node.get_name()}.{name} has no description'
                assert descriptor.read_only, f'{node.get_name()}.{name} is read at start-up only'
    finally:
        producer.shutdown()
        producer.destroy_node()
        consumer.shutdown()
        consumer.destroy_node()
    assert not os.path.exists(SHM_DIR + shm_name)


def test_overrides_shape_the_segment_and_the_default_name_follows_the_namespace(context):
    namespace = f'jsr_test_ns{os.getpid()}'
    producer = _make(ProducerNode, context, namespace=namespace, slots=3, dtype='float32',
                     shape=[2, 5])
    expected = f'/jetson_shm_ros.{namespace}.producer'
    try:
        pool = producer.shm_publisher.frame_producer.pool
        assert pool.name == expected and pool.slot_count == 3
        frames = producer.shm_publisher.frame_producer
        assert frames.dtype == '<f4' and frames.nbytes == 40
        assert producer.shm_publisher.topic == f'/{namespace}/jetson_shm/descriptors'
        assert os.path.exists(SHM_DIR + expected)
    finally:
        producer.shutdown()
        producer.destroy_node()
    assert not os.path.exists(SHM_DIR + expected)


@pytest.mark.parametrize('param, value', [('slots', 0), ('rate_hz', -1.0), ('frames', -1)])
def test_out_of_range_parameters_are_refused(context, shm_name, param, value):
    with pytest.raises(Exception) as error:
        _make(ProducerNode, context, shm_name=shm_name, **{param: value})
    assert param in str(error.value)
    assert not os.path.exists(SHM_DIR + shm_name)


def _tear_down(executor, *nodes):
    executor.shutdown()
    for node in nodes:
        node.shutdown()
        node.destroy_node()


def _spin_until(executor, condition):
    deadline = time.monotonic() + SPIN_TIMEOUT_S
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()


def test_producer_to_consumer_in_one_executor(context, shm_name):
    frames = 25
    consumer = _make(ConsumerNode, context, frames=frames)
    producer = _make(ProducerNode, context, shm_name=shm_name, frames=frames, shape=[64, 64],
                     dtype='uint16', rate_hz=200.0, policy='reliable', wait_for_consumers=1)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(consumer)
    executor.add_node(producer)
    try:
        assert _spin_until(executor, lambda: consumer.finished and producer.finished)
        counts = consumer.shm_subscription.counts
        assert counts['verified'] == frames and counts['invalid'] == 0, counts
    finally:
        _tear_down(executor, producer, consumer)
    assert consumer.exit_code == 0
    assert not os.path.exists(SHM_DIR + shm_name)


def test_consumer_survives_hostile_descriptors(context, shm_name):
    """Garbage on the topic is counted and logged; the node keeps working."""
    producer = _make(ProducerNode, context, shm_name=shm_name, shape=[16], rate_hz=1000.0)
    consumer = _make(ConsumerNode, context)
    # With the descriptor topic's QoS (transient-local): a volatile publisher does not match.
    hostile = producer.create_publisher(DataDescriptor, 'jetson_shm/descriptors',
                                        descriptor_qos(10))
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(consumer)
    executor.add_node(producer)
    bad = []
    for shm, offset, dtype in [('/etc/passwd', 0, '<u4'), ('/../x', 0, '<u4'),
                               (shm_name, 2**63, '<u4'), (shm_name, 4096, 'O')]:
        msg = DataDescriptor(shm_name=shm, offset=offset, nbytes=64, dtype=dtype, shape=[16],
                             sequence=2, slot=0)
        bad.append(msg)
    try:
        assert _spin_until(executor, lambda: consumer.shm_subscription.counts['verified'] >= 3)
        for msg in bad:
            hostile.publish(msg)
        counts = consumer.shm_subscription.counts
        assert _spin_until(executor, lambda: counts['invalid'] >= len(bad))
        before = counts['verified']
        assert _spin_until(executor, lambda: counts['verified'] > before + 2)
    finally:
        _tear_down(executor, producer, consumer)
    assert consumer.exit_code == 1, 'invalid input makes the exit status say so'
    assert not os.path.exists(SHM_DIR + shm_name)
