"""The middleware facts of the descriptor topic: its QoS, and the RMW that carries it."""

import os
import time

from jetson_shm_ros.process import signals
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions, QoSPolicyKind
from rclpy.utilities import get_rmw_implementation_identifier


# How often wait_for_discovery() asks the middleware again.
_MATCH_POLL_S = 0.01


def descriptor_qos(depth: int) -> QoSProfile:
    """
    Build the QoS of the descriptor topic.

    Reliable so no frame is lost in transit; keep-last with a depth of the slot count (more
    descriptors than slots can never be valid at once); transient-local so that descriptors
    published before the subscription's side of the match completed still reach it (discovery
    is not symmetric: a publisher may count a subscription as matched, and send, before that
    subscription knows the publisher; a volatile reader then silently misses those frames).
    A late joiner therefore gets the last `depth` descriptors at once; the ones whose slot was
    rewritten meanwhile are recognised by their sequence and dropped before any byte is read
    (doc/late-joiners.md). A volatile subscription still matches, without that history.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def descriptor_qos_overrides() -> QoSOverridingOptions:
    """
    Let users override the descriptor QoS by parameter: history, depth, reliability, durability.

    e.g. `-p qos_overrides./frames.subscription.durability:=volatile` lets a subscription match
    a volatile publisher of descriptors (an older jetson_shm_ros, or one written by hand).
    """
    return QoSOverridingOptions(policy_kinds=(
        QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY,
        QoSPolicyKind.DURABILITY))


def wait_for_discovery(node, publisher, timeout_s: float) -> bool:
    """
    Wait until the subscriptions that already run on the publisher's topic matched it.

    A new publisher knows nobody yet: discovery of a subscription that has been running for a
    long time still takes ~0.1-1.5 s. The wait ends as soon as at least one subscription
    matched and every subscription the graph knows on the topic did (one with an incompatible
    QoS never matches: it ends the wait only at the deadline), or after `timeout_s` when
    nobody is there. It also ends at once when the context is shut down or the process was
    asked to stop (process.signals). Matching happens in the middleware's threads: no
    executor is needed.

    :param node: the publisher's node (its graph)
    :param publisher: an rclpy Publisher
    :param timeout_s: the longest wait
    :return: whether a subscription matched
    """
    deadline = time.monotonic() + timeout_s
    topic = publisher.topic_name
    while True:
        matched = publisher.get_subscription_count()
        if matched and matched >= node.count_subscribers(topic):
            return True
        if time.monotonic() >= deadline or not node.context.ok() or signals.received():
            return bool(matched)
        time.sleep(_MATCH_POLL_S)


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
