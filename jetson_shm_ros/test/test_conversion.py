"""DataDescriptor <-> core descriptor, the publisher's reused message, the endpoints' clock."""

from dataclasses import replace
import time

from jetson_shm_ros.core.descriptor import Descriptor, MEMORY_CUDA_IPC
from jetson_shm_ros.ros.conversion import from_msg, MessageCache, to_msg
from jetson_shm_ros.ros.stamps import NodeClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from rclpy.time import Time


def _frame(index: int, **changes) -> Descriptor:
    desc = Descriptor(shm_name='/jsr_test_conv', incarnation=0x1234567, slot=index % 3,
                      sequence=2 * index + 2, offset=4096 * (index % 3), nbytes=4096,
                      dtype='uint8', shape=[64, 64], checksum=index * 7919,
                      checksum_valid=True, stamp_ns=1_700_000_000_000_000_000 + index * 33,
                      frame_id=f'cam{index % 2}', encoding='mono8')
    return replace(desc, **changes)


def test_a_round_trip_keeps_every_field():
    desc = _frame(5, memory_kind=MEMORY_CUDA_IPC, cuda_ipc_handle=bytes(range(64)),
                  cuda_event_handle=bytes(range(64, 128)))
    assert from_msg(to_msg(desc)) == desc


def test_the_reused_message_serializes_like_a_fresh_one_frame_after_frame():
    cache = MessageCache()
    frames = [_frame(index) for index in range(6)]
    # A stream field that changes (a producer re-created its segment) rebuilds the message.
    frames += [_frame(6, incarnation=0x7654321), _frame(7, shape=[32, 128]),
               _frame(8, checksum_valid=False, checksum=0), _frame(9)]
    messages = []
    for desc in frames:
        msg = cache.to_msg(desc)
        assert serialize_message(msg) == serialize_message(to_msg(desc))
        assert from_msg(msg) == desc
        messages.append(msg)
    # One message refilled while the stream stays the same, a new one when it changes.
    assert all(msg is messages[0] for msg in messages[:6])
    assert len({id(msg) for msg in messages}) == 5


def test_the_endpoints_clock_follows_use_sim_time(context):
    node = Node('jsr_test_clock', context=context)
    clock = NodeClock(node)
    try:
        before = time.time_ns()
        assert before <= clock.now_ns() <= time.time_ns()
        node.set_parameters([Parameter('use_sim_time', value=True)])
        # ROS time active and no /clock message yet: rclpy's clock says 0, and so do we.
        assert clock.now_ns() == node.get_clock().now().nanoseconds == 0
        node.get_clock().set_ros_time_override(Time(seconds=42, clock_type=ClockType.ROS_TIME))
        assert clock.now_ns() == 42 * 10**9
        node.set_parameters([Parameter('use_sim_time', value=False)])
        before = time.time_ns()
        assert before <= clock.now_ns() <= time.time_ns()
    finally:
        clock.close()
        clock.close()  # idempotent
        node.destroy_node()
