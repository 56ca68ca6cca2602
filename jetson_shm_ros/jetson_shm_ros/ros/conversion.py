"""DataDescriptor message <-> core descriptor, through the core's one wire field map."""

from jetson_shm_ros.core.descriptor import Descriptor, from_wire, NS_PER_S, to_wire
from jetson_shm_ros_interfaces.msg import DataDescriptor


def to_msg(desc: Descriptor) -> DataDescriptor:
    """Convert a core descriptor into the ROS message."""
    msg = DataDescriptor(**to_wire(desc))
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(desc.stamp_ns, NS_PER_S)
    msg.header.frame_id = desc.frame_id
    return msg


def from_msg(msg: DataDescriptor) -> Descriptor:
    """Convert a received ROS message into a core descriptor (validated later)."""
    stamp = msg.header.stamp
    return from_wire(msg, stamp.sec, stamp.nanosec, msg.header.frame_id)
