"""The public rclpy API: ShmPublisher and ShmSubscription in users' own nodes."""

import os
import subprocess
import sys

from api_fixtures import spin_until
from conftest import SHM_DIR
from jetson_shm_ros import FrameInfo, ShmPublisher, ShmSubscription
from jetson_shm_ros.core.errors import (
    ArgumentError, ArrayMismatch, NoFreeSlot, ShmRosError)
from jetson_shm_ros.ros.conversion import to_msg
import numpy as np
import pytest
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

TOPIC = 'frames'


@pytest.fixture
def node(context):
    node = Node(f'jsr_test_api_{os.getpid()}', context=context)
    yield node
    node.destroy_node()


class Received:
    """A callback that keeps a copy of every frame with its info."""

    def __init__(self):
        self.frames = []

    def __call__(self, frame, info: FrameInfo) -> None:
        self.frames.append((np.array(frame, copy=True), info))


def _executor(context, *nodes, threads=None):
    executor = SingleThreadedExecutor(context=context) if threads is None else \
        MultiThreadedExecutor(num_threads=threads, context=context)
    for each in nodes:
        executor.add_node(each)
    return executor


def test_a_loaned_frame_arrives_verified_with_its_info(context, node, shm_name):
    received = Received()
    pub = ShmPublisher(node, TOPIC, dtype='uint8', shape=[4, 6, 3], encoding='rgb8',
                       shm_name=shm_name, policy='reliable')
    ShmSubscription(node, TOPIC, received)
    executor = _executor(context, node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    image = np.random.default_rng().integers(0, 256, (4, 6, 3), dtype=np.uint8)
    with pub.loan(stamp_ns=1_700_000_000_123_456_789, frame_id='camera') as frame:
        assert isinstance(frame, np.ndarray) and frame.shape == (4, 6, 3)
        frame[...] = image
    assert spin_until(executor, lambda: received.frames)
    frame, info = received.frames[0]
    assert np.array_equal(frame, image)
    assert (info.encoding, info.shape, info.dtype) == ('rgb8', (4, 6, 3), '|u1')
    assert (info.stamp_ns, info.frame_id, info.verified) == (1_700_000_000_123_456_789,
                                                             'camera', True)
    assert (info.header.stamp.sec, info.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert info.shm_name == shm_name and info.sequence == 2
    pub.close()
    assert not os.path.exists(SHM_DIR + shm_name)


def test_an_exception_inside_the_loan_publishes_nothing_and_frees_the_slot(
        context, node, shm_name):
    received = Received()
    pub = ShmPublisher(node, TOPIC, dtype='float32', shape=[8], shm_name=shm_name, slots=1,
                       policy='reliable')
    sub = ShmSubscription(node, TOPIC, received)
    executor = _executor(context, node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    with pytest.raises(ZeroDivisionError):
        with pub.loan() as frame:
            frame[:4] = 7.0
            1 / 0
    assert pub.frames_published == 0 and pub.counters['aborted'] == 1
    # The one slot is free again: the next loan gets it at once, even under 'reliable'.
    with pub.loan() as frame:
        frame[...] = np.arange(8, dtype=np.float32)
    assert spin_until(executor, lambda: received.frames)
    assert np.array_equal(received.frames[0][0], np.arange(8, dtype=np.float32))
    assert sub.counts['received'] == 1 and sub.counts['verified'] == 1
    pub.close()


def test_publish_copies_a_numpy_array_and_refuses_a_mismatch(context, node, shm_name):
    received = Received()
    pub = ShmPublisher(node, TOPIC, dtype='uint16', shape=[3, 5], shm_name=shm_name,
                       policy='reliable')
    ShmSubscription(node, TOPIC, received)
    executor = _executor(context, node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    source = np.arange(15, dtype=np.uint16).reshape(3, 5)
    pub.publish(source, frame_id='map')
    source[...] = 0  # the frame was copied: changing the source later changes nothing
    assert spin_until(executor, lambda: received.frames)
    assert np.array_equal(received.frames[0][0], np.arange(15).reshape(3, 5))
    for wrong, reason in ((np.zeros((5, 3), np.uint16), 'shape_mismatch'),
                          (np.zeros((3, 5), np.int16), 'dtype_mismatch')):
        with pytest.raises(ArrayMismatch) as error:
            pub.publish(wrong)
        assert error.value.reason == reason
    assert pub.frames_published == 1
    pub.close()


def test_reliable_without_a_free_slot_raises_no_free_slot_after_the_timeout(
        context, node, shm_name):
    held = []
    pub = ShmPublisher(node, TOPIC, dtype='uint8', shape=[16], shm_name=shm_name, slots=2,
                       policy='reliable', required_readers=1, release_timeout_s=60.0)
    # A reader that never gets to release: its descriptors are not spun yet.
    sub = ShmSubscription(node, TOPIC, lambda frame, info: held.append(info.sequence))
    executor = _executor(context, node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    pub.publish(np.zeros(16, np.uint8))
    assert spin_until(executor, lambda: len(held) == 1)  # registers the reader
    pub.publish(np.ones(16, np.uint8))
    pub.publish(np.full(16, 2, np.uint8))   # slot 0 was released by the first callback
    with pytest.raises(NoFreeSlot) as error:
        pub.publish(np.full(16, 3, np.uint8), timeout_s=0.05)
    assert error.value.reason == 'no_free_slot' and isinstance(error.value, ShmRosError)
    assert pub.counters['no_free_slot'] == 1 and pub.frames_published == 3
    assert spin_until(executor, lambda: len(held) == 3)
    pub.publish(np.full(16, 3, np.uint8))  # releases came: slots are free again
    assert spin_until(executor, lambda: len(held) == 4)
    assert sub.counts['verified'] == 4 and sub.counts['invalid'] == 0
    pub.close()


def test_a_callback_exception_propagates_and_is_not_an_invalid_descriptor(
        context, node, shm_name):
    calls = []

    def failing(frame, info):
        calls.append(info.sequence)
        raise RuntimeError('user bug')

    pub = ShmPublisher(node, TOPIC, dtype='uint8', shape=[32], shm_name=shm_name, slots=1,
                       policy='reliable', required_readers=1, release_timeout_s=60.0)
    sub = ShmSubscription(node, TOPIC, failing)
    executor = _executor(context, node)
    assert spin_until(executor, lambda: pub.subscription_count() == 1)
    pub.publish(np.ones(32, np.uint8))
    with pytest.raises(RuntimeError, match='user bug'):
        spin_until(executor, lambda: calls)
    assert sub.callback_errors == 1 and sub.counts['invalid'] == 0
    assert sub.counts['verified'] == 1
    # The slot was released despite the exception: the only slot can be written again.
    pub.publish(np.ones(32, np.uint8), timeout_s=5.0)
    pub.close()


def test_invalid_descriptors_never_reach_the_callback(context, node, shm_name):
    received = Received()
    pub = ShmPublisher(node, TOPIC, dtype='uint8', shape=[64], shm_name=shm_name, slots=16)
    sub = ShmSubscription(node, 'other_topic', received)
    with pub.loan() as frame:
        frame[...] = 5
    good = to_msg(pub.frame_producer.commit(pub.frame_producer.begin(), 0, ''))
    hostile = []
    for change in ({'checksum': good.checksum + 1}, {'offset': 2**63}, {'shm_name': '/../x'},
                   {'encoding': 'rgb8'}, {'dtype': 'O'}, {'incarnation': good.incarnation ^ 1}):
        msg = to_msg(pub.frame_producer.commit(pub.frame_producer.begin(), 0, ''))
        for key, value in change.items():
            setattr(msg, key, value)
        hostile.append(msg)
    for msg in hostile:
        assert sub.handle_descriptor(msg) == 'invalid'
    assert not received.frames
    assert sub.counts['invalid'] == len(hostile)
    assert set(sub.invalid_reasons) == {'checksum_mismatch', 'out_of_slot', 'bad_name',
                                        'encoding_mismatch', 'bad_dtype', 'unknown_incarnation'}
    pub.close()


def test_a_filter_node_with_both_endpoints_under_a_multithreaded_executor(context, shm_name):
    """Source -> filter (sub + pub in one node) -> sink, all in one process."""
    source_node = Node('jsr_test_source', context=context)
    filter_node = Node('jsr_test_filter', context=context)
    sink_node = Node('jsr_test_sink', context=context)
    source = ShmPublisher(source_node, 'raw', dtype='int32', shape=[100], shm_name=shm_name,
                          policy='reliable', required_readers=1)
    doubled = ShmPublisher(filter_node, 'doubled', dtype='int32', shape=[100],
                           shm_name=shm_name + '_out', policy='reliable', required_readers=1)

    def double(frame, info):
        with doubled.loan(stamp_ns=info.stamp_ns, frame_id=info.frame_id,
                          timeout_s=5.0) as out:
            np.multiply(frame, 2, out=out)

    ShmSubscription(filter_node, 'raw', double)
    results = Received()
    sink = ShmSubscription(sink_node, 'doubled', results)
    executor = _executor(context, source_node, filter_node, sink_node, threads=4)
    try:
        assert spin_until(executor, lambda: source.subscription_count() == 1 and
                          doubled.subscription_count() == 1)
        for value in range(20):
            source.publish(np.full(100, value, np.int32), timeout_s=5.0)
            assert spin_until(executor, lambda: len(results.frames) == value + 1)
        assert [int(frame[0]) for frame, _ in results.frames] == [2 * v for v in range(20)]
        assert sink.counts['verified'] == 20 and sink.counts['invalid'] == 0
    finally:
        executor.shutdown()
        for each in (source_node, filter_node, sink_node):
            each.destroy_node()
    assert not os.path.exists(SHM_DIR + shm_name)
    assert not os.path.exists(SHM_DIR + shm_name + '_out')


def test_close_context_manager_and_node_destruction_unlink_the_segment(context, shm_name):
    owner = Node('jsr_test_owner', context=context)
    with ShmPublisher(owner, 'a', dtype='uint8', shape=[8], shm_name=shm_name) as pub:
        assert os.path.exists(SHM_DIR + shm_name)
    assert pub.closed and not os.path.exists(SHM_DIR + shm_name)
    ShmPublisher(owner, 'b', dtype='uint8', shape=[8], shm_name=shm_name + 'b')
    assert os.path.exists(SHM_DIR + shm_name + 'b')
    owner.destroy_node()
    assert not os.path.exists(SHM_DIR + shm_name + 'b')


def test_the_default_segment_name_follows_node_and_topic(context):
    owner = Node('jsr_test_named', namespace=f'jsr_test_ns{os.getpid()}', context=context)
    try:
        pub = ShmPublisher(owner, 'camera/image', dtype='uint8', shape=[8])
        assert pub.shm_name == (f'/jetson_shm_ros.jsr_test_ns{os.getpid()}.jsr_test_named.'
                                f'jsr_test_ns{os.getpid()}.camera.image')
        assert os.path.exists(SHM_DIR + pub.shm_name)
    finally:
        owner.destroy_node()


def test_an_encoding_must_agree_with_dtype_and_shape(node, shm_name):
    for dtype, shape, encoding in [('uint8', [4, 4], 'rgb8'), ('uint16', [4, 4, 3], 'rgb8'),
                                   ('float32', [4, 4, 2], '32FC1'), ('uint8', [4, 4], 'nv12')]:
        with pytest.raises(ArgumentError) as error:
            ShmPublisher(node, TOPIC, dtype=dtype, shape=shape, encoding=encoding,
                         shm_name=shm_name)
        assert f"encoding='{encoding}' is not allowed" in str(error.value)
        assert not os.path.exists(SHM_DIR + shm_name)


def test_importing_the_package_does_not_import_rclpy():
    code = ('import sys, jetson_shm_ros, jetson_shm_ros.core.frame_consumer, jetson_shm_ros.dds; '
            'assert "rclpy" not in sys.modules, "rclpy was imported"')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
