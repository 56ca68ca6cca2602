"""The middleware facts of the descriptor topic: its QoS, and the RMW that carries it."""

import os

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import get_rmw_implementation_identifier


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


RMW_PACKAGES = {
    'rmw_cyclonedds_cpp': 'ros-{distro}-rmw-cyclonedds-cpp',
    'rmw_fastrtps_cpp': 'ros-{distro}-rmw-fastrtps-cpp',
    'rmw_connextdds': 'ros-{distro}-rmw-connextdds',
    'rmw_zenoh_cpp': 'ros-{distro}-rmw-zenoh-cpp',
}


def rmw_problem(rmw: str):
    """
    Tell why `rmw` cannot be used, in one sentence; None when it is installed.

    :param rmw: an RMW implementation name, e.g. rmw_cyclonedds_cpp
    """
    from ament_index_python.packages import get_resource

    try:
        get_resource('rmw_typesupport', rmw)
        return None
    except LookupError:
        pass
    distro = os.environ.get('ROS_DISTRO', '<distro>')
    apt = RMW_PACKAGES.get(rmw, 'ros-{distro}-' + rmw.replace('_', '-')).format(distro=distro)
    return (f'The RMW implementation {rmw!r} chosen by rmw:={rmw} is not installed: install it '
            f'with `sudo apt install {apt}` (then source /opt/ros/{distro}/setup.bash again), '
            f'or choose an installed one such as rmw:=rmw_fastrtps_cpp.')
