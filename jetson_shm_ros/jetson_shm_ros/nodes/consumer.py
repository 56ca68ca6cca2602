"""The consumer node: verifies every frame it is told about, through ShmSubscription."""

import time

from jetson_shm_ros.core.backend import BACKENDS, MODES
from jetson_shm_ros.nodes.ros_common import run_node, startup_parameter
from jetson_shm_ros.ros.middleware import DEFAULT_TOPIC
from jetson_shm_ros.ros.subscription import ShmSubscription
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.node import Node


class ConsumerNode(Node):
    """Validates, verifies and releases each frame; logs counters and a summary on exit."""

    def __init__(self, **kwargs):
        super().__init__('consumer', **kwargs)
        self.exit_code = 0
        self.shm_subscription = None
        self._done = False
        self._declare_parameters()
        param = self.get_parameter
        self._frames = param('frames').value
        self._idle_timeout = param('idle_timeout_s').value
        # Checking the checksum is the whole job here: the callback has nothing left to do.
        self.shm_subscription = ShmSubscription(
            self, param('topic').value, lambda frame, info: None,
            backend=param('backend').value, mode=param('mode').value,
            verify=param('verify').value, queue_depth=param('queue_depth').value,
            allow_group_access=param('allow_group_access').value,
            diagnostics_period_s=param('diagnostics_period_s').value)
        self.get_logger().info(f'policy=from-producer frames={self._frames or "endless"}')
        self._last_received = (time.monotonic(), 0)
        self._last_status = (time.monotonic(), 0)
        self._status_timer = self.create_timer(param('status_period_s').value, self._on_status)

    def _declare_parameters(self) -> None:
        positive = FloatingPointRange(from_value=0.001, to_value=100000.0, step=0.0)
        self.declare_parameter('topic', DEFAULT_TOPIC, startup_parameter('Descriptor topic'))
        self.declare_parameter('frames', 0, startup_parameter(
            'Descriptors to handle before exiting; 0 = endless', integer_range=[
                IntegerRange(from_value=0, to_value=2**62, step=1)]))
        self.declare_parameter('idle_timeout_s', 0.0, startup_parameter(
            'Exit when no descriptor arrived for this long after the first one; 0 = never',
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=100000.0,
                                                     step=0.0)]))
        self.declare_parameter('queue_depth', 16, startup_parameter(
            "Descriptor queue depth; keep it at least the producer's slot count",
            integer_range=[IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('backend', 'auto', startup_parameter(f'One of {list(BACKENDS)}'))
        self.declare_parameter('mode', 'zero_copy', startup_parameter(
            f'zero_copy: compute on the mapped slot; copy: copy it to device memory first. '
            f'One of {list(MODES)}'))
        self.declare_parameter('allow_group_access', False, startup_parameter(
            "Accept segments that the owner's group may write (default: owner only)"))
        self.declare_parameter('verify', True, startup_parameter(
            'Check each payload checksum (when the producer sends one) before accepting it'))
        self.declare_parameter('diagnostics_period_s', 1.0, startup_parameter(
            'Seconds between /diagnostics reports; 0 = off', floating_point_range=[
                FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)]))
        self.declare_parameter('status_period_s', 5.0, startup_parameter(
            'Seconds between status log lines', floating_point_range=[positive]))

    @property
    def finished(self) -> bool:
        """Tell whether `frames` descriptors were handled or the producer went quiet."""
        if self._done:
            return True
        received = self.shm_subscription.counts['received']
        now = time.monotonic()
        if received != self._last_received[1]:
            self._last_received = (now, received)
        elif self._idle_timeout and received and \
                now - self._last_received[0] > self._idle_timeout:
            self.get_logger().warning(
                f'no descriptor for {self._idle_timeout} s: the producer seems gone; exiting')
            self._done = True
        if self._frames and received >= self._frames:
            self._done = True
        return self._done

    def _on_status(self) -> None:
        now, received = time.monotonic(), self.shm_subscription.counts['received']
        rate = (received - self._last_status[1]) / max(now - self._last_status[0], 1e-9)
        self._last_status = (now, received)
        self.get_logger().info(f'status: {self.shm_subscription.summary()} rate={rate:.1f}/s')

    def shutdown(self) -> None:
        """Log the summary line, unpin and unmap."""
        if self.shm_subscription is None or self.shm_subscription.closed:
            return
        self.get_logger().info('summary: ' + self.shm_subscription.summary())
        if self.shm_subscription.counts['invalid']:
            self.exit_code = 1
        self.shm_subscription.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros consumer`."""
    raise SystemExit(run_node(ConsumerNode, args))


if __name__ == '__main__':
    main()
