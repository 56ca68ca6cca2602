"""The middleware facts of the descriptor topic: its QoS, and the RMW that carries it."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier

DEFAULT_TOPIC = 'jetson_shm/descriptors'


def descriptor_qos(depth: int) -> QoSProfile:
    """
    Build the QoS of the descriptor topic.

    Reliable so no frame is lost in transit, keep-last with a depth of the slot count (more
    descriptors than slots can never be valid at once), volatile so a late joiner starts with
    the next frame instead of a burst of stale ones.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def describe_qos(qos: QoSProfile) -> str:
    """Return e.g. 'reliable, keep_last(4), volatile' for the start-up log line."""
    return (f'{qos.reliability.name.lower()}, {qos.history.name.lower()}({qos.depth}), '
            f'{qos.durability.name.lower()}')


def rmw_name() -> str:
    """Return the RMW implementation this process runs on."""
    return get_rmw_implementation_identifier()
