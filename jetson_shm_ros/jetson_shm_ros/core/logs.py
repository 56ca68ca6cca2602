"""
Loggers of the core library that reach their parent whatever logger class is installed.

`import launch` (done by `ros2 launch`, by launch_testing's pytest plugin, by a user's own
launcher) calls `logging.setLoggerClass()` with a class whose loggers do not propagate. A core
logger created after that would keep its records from every handler on the package logger:
the handler that sends them to a node's logger, a test's handler, `logging.basicConfig()`'s.
So every core and dds module gets its logger here, and it always propagates.
"""

import logging

PACKAGE_LOGGER = 'jetson_shm_ros'


def get_logger(name: str) -> logging.Logger:
    """
    Return `logging.getLogger(name)`, made to propagate to its parent.

    :param name: e.g. 'jetson_shm_ros.pool' (a child of PACKAGE_LOGGER) or a peer's own name
    :return: the logger, shared with everyone who asks `logging` for the same name
    """
    logger = logging.getLogger(name)
    logger.propagate = True
    return logger


# The package logger forwards to the root logger like any plain logger, until a node routes it
# to its own logger (ros/logs.route_core_logs() turns propagation off again). Done once, here,
# so that a module imported later (core.gpu_backend is imported on demand) does not undo routing.
get_logger(PACKAGE_LOGGER)
