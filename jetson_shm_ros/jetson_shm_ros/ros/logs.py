"""Route the ROS-free core's `logging` records to a node's rclpy logger."""

import logging
from typing import Dict

from jetson_shm_ros.core.logs import get_logger, PACKAGE_LOGGER
from rclpy.node import Node


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


# One handler per node however many endpoints it has: node id -> [handler, endpoints using it].
_routes: Dict[int, list] = {}


def route_core_logs(node: Node) -> RosLogHandler:
    """
    Send jetson_shm_ros.* log records to `node`'s logger; return the handler to remove.

    The core's loggers come from core.logs.get_logger(), so they reach the package logger even
    where `launch` installed its non-propagating logger class before they were created.
    """
    route = _routes.get(id(node))
    if route is not None:
        route[1] += 1
        return route[0]
    handler = RosLogHandler(node)
    package_logger = get_logger(PACKAGE_LOGGER)
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)
    package_logger.propagate = False  # the node's logger prints them; not the root logger too
    _routes[id(node)] = [handler, 1]
    return handler


def unroute_core_logs(handler: RosLogHandler) -> None:
    """Undo route_core_logs() (the handler goes when its node's last endpoint closes)."""
    for key, route in list(_routes.items()):
        if route[0] is handler:
            route[1] -= 1
            if route[1] == 0:
                del _routes[key]
                logging.getLogger(PACKAGE_LOGGER).removeHandler(handler)
