"""make_executor(): the executor kinds, and frames arriving under each of them."""

import os

from api_fixtures import spin_until
from jetson_shm_ros import ShmPublisher, ShmSubscription
from jetson_shm_ros.ros.executors import events_executor_class, executor_name, make_executor
import pytest
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

FRAMES = 20


def test_each_kind_makes_its_executor(context):
    assert isinstance(make_executor('single', context), SingleThreadedExecutor)
    assert isinstance(make_executor('multi', context, num_threads=2), MultiThreadedExecutor)
    # The endpoints own a guard condition, which the EventsExecutor refuses: auto is single.
    assert isinstance(make_executor('auto', context), SingleThreadedExecutor)
    if events_executor_class() is None:  # a ROS 2 release before Jazzy
        with pytest.raises(ValueError, match='EventsExecutor'):
            make_executor('events', context)
    else:
        assert executor_name(make_executor('events', context)) == 'events'
    assert executor_name(make_executor('multi', context)) == 'multi'
    with pytest.raises(ValueError, match='not one of'):
        make_executor('fast', context)


@pytest.mark.parametrize('kind', ['auto', 'single', 'multi'])
def test_every_frame_arrives_verified_under_each_executor(context, shm_name, kind):
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
