"""What both nodes share: message conversion, the descriptor QoS, logging, and main()."""

import logging
from typing import Callable

from jetson_shm_ros.core.descriptor import Descriptor, from_wire, NS_PER_S, to_wire
from jetson_shm_ros.core.logs import get_logger, PACKAGE_LOGGER
from jetson_shm_ros.core.runner import run_guarded
from jetson_shm_ros_interfaces.msg import DataDescriptor
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
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


def startup_parameter(description: str, **ranges) -> ParameterDescriptor:
    """Describe a parameter that is read once at start-up (so it is read-only)."""
    return ParameterDescriptor(description=description, read_only=True, **ranges)


def describe_qos(qos: QoSProfile) -> str:
    """Return e.g. 'reliable, keep_last(4), volatile' for the start-up log line."""
    return (f'{qos.reliability.name.lower()}, {qos.history.name.lower()}({qos.depth}), '
            f'{qos.durability.name.lower()}')


def rmw_name() -> str:
    """Return the RMW implementation this process runs on."""
    return get_rmw_implementation_identifier()


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


class RosLogHandler(logging.Handler):
    """Forward the ROS-free core library's `logging` records to a node's logger."""

    def __init__(self, node: Node):
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record at the matching ROS severity."""
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(message)
        elif record.levelno >= logging.INFO:
            self._logger.info(message)
        else:
            self._logger.debug(message)


def route_core_logs(node: Node) -> RosLogHandler:
    """
    Send jetson_shm_ros.* log records to `node`'s logger; return the handler to remove.

    The core's loggers come from core.logs.get_logger(), so they reach the package logger even
    where `launch` installed its non-propagating logger class before they were created.
    """
    handler = RosLogHandler(node)
    package_logger = get_logger(PACKAGE_LOGGER)
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)
    package_logger.propagate = False  # the node's logger prints them; not the root logger too
    return handler


def unroute_core_logs(handler: RosLogHandler) -> None:
    """Undo route_core_logs() (another node of this process may still route its logs)."""
    logging.getLogger(PACKAGE_LOGGER).removeHandler(handler)


def _spin(node: Node) -> int:
    try:
        while rclpy.ok() and not node.finished:
            rclpy.spin_once(node, timeout_sec=0.1)
    except ExternalShutdownException:
        return 1
    return 0


def _stop(node: Node, interrupted: bool) -> int:
    node.shutdown()
    exit_code = node.exit_code
    node.destroy_node()
    return exit_code


def run_node(make_node: Callable[[], Node], args=None) -> int:
    """
    Init rclpy, spin the node until it is finished or interrupted, and always clean up.

    Ctrl-C and SIGTERM raise KeyboardInterrupt (core.runner) instead of letting rclpy's
    handler shut the context down first: cleanup then still has a working context to wait for
    acknowledgements and to log the summary.

    :return: the node's exit code (node.exit_code, 0 when it has none)
    """
    rclpy.init(args=args)
    try:
        return run_guarded(make_node, _spin, _stop)
    finally:
        rclpy.try_shutdown()
