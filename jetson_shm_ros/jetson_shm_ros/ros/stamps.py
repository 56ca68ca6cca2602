"""The node's clock in integer nanoseconds, without an rclpy Time object per frame."""

import time

from rclpy.clock import ClockType, JumpThreshold
from rclpy.node import Node


class NodeClock:
    """
    `node.get_clock().now().nanoseconds`, read once per frame by each endpoint.

    rclpy's Clock.now() builds a Time object (~6 us on the build machine, twice a frame: the
    producer's stamp and the subscriber's latency). A node's ROS clock reads the system clock
    (CLOCK_REALTIME, as time.time_ns()) until ROS time is activated (use_sim_time): a jump
    callback on clock change tells us at once, so sim time is always read through rclpy.
    """

    def __init__(self, node: Node):
        self._clock = node.get_clock()
        self._jump_handle = None
        self._system = False
        if self._clock.clock_type == ClockType.ROS_TIME:
            self._jump_handle = self._clock.create_jump_callback(
                JumpThreshold(min_forward=None, min_backward=None, on_clock_change=True),
                post_callback=self._on_clock_change)
            self._system = not self._clock.ros_time_is_active
        elif self._clock.clock_type == ClockType.SYSTEM_TIME:
            self._system = True

    def now_ns(self) -> int:
        """Return the node clock's current time in nanoseconds."""
        if self._system:
            return time.time_ns()
        return self._clock.now().nanoseconds

    def _on_clock_change(self, _jump) -> None:
        # Called by rcl whenever ROS time is activated or deactivated on this clock.
        self._system = not self._clock.ros_time_is_active

    def close(self) -> None:
        """Stop listening for clock changes (idempotent)."""
        handle, self._jump_handle = self._jump_handle, None
        if handle is not None:
            try:
                handle.unregister()
            except Exception:  # the clock went with its node (InvalidHandle): nothing to undo
                pass
