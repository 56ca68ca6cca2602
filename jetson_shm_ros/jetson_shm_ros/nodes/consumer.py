"""The consumer node: maps the producer's segment and verifies every frame it is told about."""

import time

from jetson_shm_ros.core.backend import BACKENDS, MODES, select_backend
from jetson_shm_ros.core.frames import FrameConsumer
from jetson_shm_ros.nodes.ros_common import (
    DEFAULT_TOPIC, describe_qos, descriptor_qos, from_msg, gpu_resources, rmw_name,
    route_core_logs, run_node, startup_parameter, unroute_core_logs)
from jetson_shm_ros_interfaces.msg import DataDescriptor
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions


class ConsumerNode(Node):
    """Validates, verifies and releases each frame; logs counters and a summary on exit."""

    def __init__(self, **kwargs):
        super().__init__('consumer', **kwargs)
        self._log_handler = route_core_logs(self)
        self.finished = False
        self.exit_code = 0
        self._stream = None
        self._declare_parameters()
        param = self.get_parameter
        self._frames = param('frames').value
        self._idle_timeout = param('idle_timeout_s').value
        backend = select_backend(param('backend').value, param('mode').value)
        self._stream = FrameConsumer(backend,
                                     allow_group_access=param('allow_group_access').value)
        qos = descriptor_qos(param('queue_depth').value)
        self._subscription = self.create_subscription(
            DataDescriptor, param('topic').value, self._on_descriptor, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.get_logger().info(
            f'rmw={rmw_name()} backend={backend.name} mode={backend.mode} '
            f'device="{backend.device}" pointer={backend.pointer_source} '
            f'policy=from-producer qos="{describe_qos(qos)}" '
            f'topic={self._subscription.topic_name} frames={self._frames or "endless"}')
        self._last_descriptor = None
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
        self.declare_parameter('status_period_s', 5.0, startup_parameter(
            'Seconds between status log lines', floating_point_range=[positive]))

    def _on_descriptor(self, msg: DataDescriptor) -> None:
        self._stream.handle(from_msg(msg))
        self._last_descriptor = time.monotonic()
        if self._frames and self._stream.counts['received'] >= self._frames:
            self.finished = True

    def _on_status(self) -> None:
        if self._idle_timeout and self._last_descriptor is not None and \
                time.monotonic() - self._last_descriptor > self._idle_timeout:
            self.get_logger().warning(
                f'no descriptor for {self._idle_timeout} s: the producer seems gone; exiting')
            self.finished = True
        now, received = time.monotonic(), self._stream.counts['received']
        rate = (received - self._last_status[1]) / max(now - self._last_status[0], 1e-9)
        self._last_status = (now, received)
        self.get_logger().info(f'status: {self._stream.summary()} rate={rate:.1f}/s'
                               + gpu_resources(self._stream.backend))

    def shutdown(self) -> None:
        """Log the summary line, unpin and unmap."""
        if self._stream is None:
            return
        self.get_logger().info('summary: ' + self._stream.summary())
        if self._stream.counts['invalid']:
            self.exit_code = 1
        self._stream.close()
        self._stream = None
        unroute_core_logs(self._log_handler)


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros consumer`."""
    raise SystemExit(run_node(ConsumerNode, args))


if __name__ == '__main__':
    main()
