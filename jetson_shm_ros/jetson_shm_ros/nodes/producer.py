"""The producer node: fills shared-memory slots and publishes a DataDescriptor for each."""

import time

from jetson_shm_ros.core.backend import BACKENDS, MODES, select_backend
from jetson_shm_ros.core.frames import FrameProducer
from jetson_shm_ros.core.pool import POLICIES
from jetson_shm_ros.nodes.ros_common import (
    DEFAULT_TOPIC, describe_qos, descriptor_qos, gpu_resources, rmw_name, route_core_logs,
    run_node, startup_parameter, to_msg, unroute_core_logs)
from jetson_shm_ros_interfaces.msg import DataDescriptor
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions


class ProducerNode(Node):
    """Publishes one descriptor per frame written into a slot of its own segment."""

    def __init__(self, **kwargs):
        super().__init__('producer', **kwargs)
        self._log_handler = route_core_logs(self)
        self.finished = False
        self.exit_code = 0
        self._stream = None
        self._declare_parameters()
        param = self._param
        self._frames = param('frames')
        self._wait_for_consumers = param('wait_for_consumers')
        self._frame_id = param('frame_id')
        shm_name = param('shm_name') or self._default_shm_name()

        backend = select_backend(param('backend'), param('mode'))
        self._stream = FrameProducer(
            shm_name, param('slots'), param('dtype'), param('shape'), policy=param('policy'),
            checksum=param('checksum'), backend=backend,
            release_timeout_s=param('release_timeout_s'),
            required_readers=self._wait_for_consumers)
        qos = descriptor_qos(param('slots'))
        self._publisher = self.create_publisher(
            DataDescriptor, param('topic'), qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.get_logger().info(
            f'rmw={rmw_name()} backend={backend.name} mode={backend.mode} '
            f'device="{backend.device}" pointer={backend.pointer_source} '
            f'policy={param("policy")} qos="{describe_qos(qos)}" '
            f'topic={self._publisher.topic_name} segment={shm_name} '
            f'frame={self._stream.dtype}{self._stream.shape} ({self._stream.nbytes} B) '
            f'slots={param("slots")} rate={param("rate_hz")} Hz '
            f'frames={self._frames or "endless"}')
        self._waiting_logged = False
        self._drain_deadline = None
        self._status_period = param('status_period_s')
        self._last_status = time.monotonic()
        self._timer = self.create_timer(1.0 / param('rate_hz'), self._on_timer)

    def _declare_parameters(self) -> None:
        positive = FloatingPointRange(from_value=0.001, to_value=100000.0, step=0.0)
        self.declare_parameter('topic', DEFAULT_TOPIC, startup_parameter(
            'Descriptor topic (relative names follow the node namespace; remapping works too)'))
        self.declare_parameter('shm_name', '', startup_parameter(
            'POSIX shared-memory name, e.g. /jetson_shm_ros.camera; empty: derived from the '
            'node name'))
        self.declare_parameter('slots', 4, startup_parameter(
            'Slots in the segment = frames in flight', integer_range=[
                IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('dtype', 'uint8', startup_parameter(
            'Element type, e.g. uint8, float32'))
        self.declare_parameter('shape', [1080, 1920, 3], startup_parameter(
            'Frame shape in elements'))
        self.declare_parameter('rate_hz', 30.0, startup_parameter(
            'Frames per second', floating_point_range=[positive]))
        self.declare_parameter('frames', 0, startup_parameter(
            'Frames to send before exiting; 0 = endless', integer_range=[
                IntegerRange(from_value=0, to_value=2**62, step=1)]))
        self.declare_parameter('policy', 'latest', startup_parameter(
            'latest: never block, slow consumers drop frames; reliable: reuse a slot only '
            f'after every consumer released it. One of {list(POLICIES)}'))
        self.declare_parameter('checksum', True, startup_parameter(
            'Publish the payload checksum so consumers can verify every byte'))
        self.declare_parameter('backend', 'auto', startup_parameter(f'One of {list(BACKENDS)}'))
        self.declare_parameter('mode', 'zero_copy', startup_parameter(f'One of {list(MODES)}'))
        self.declare_parameter('wait_for_consumers', 0, startup_parameter(
            'Do not publish before this many subscriptions matched; reliable policy: also '
            'wait for this many consumers before reusing a slot', integer_range=[
                IntegerRange(from_value=0, to_value=16, step=1)]))
        self.declare_parameter('release_timeout_s', 1.0, startup_parameter(
            'Reliable policy: longest wait for a consumer to release a slot before it is '
            'evicted (logged)', floating_point_range=[positive]))
        self.declare_parameter('frame_id', '', startup_parameter(
            'header.frame_id of every descriptor'))
        self.declare_parameter('status_period_s', 5.0, startup_parameter(
            'Seconds between status log lines', floating_point_range=[positive]))

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _default_shm_name(self) -> str:
        return '/jetson_shm_ros' + self.get_fully_qualified_name().replace('/', '.')

    def _on_timer(self) -> None:
        stream = self._stream
        if self._frames and stream.frames_published >= self._frames:
            self._drain()
            return
        if self._publisher.get_subscription_count() < self._wait_for_consumers:
            if not self._waiting_logged:
                self.get_logger().info(
                    f'waiting for {self._wait_for_consumers} subscription(s) on '
                    f'{self._publisher.topic_name}')
                self._waiting_logged = True
            return
        desc = stream.try_write_pattern(self.get_clock().now().nanoseconds, self._frame_id)
        if desc is not None:
            self._publisher.publish(to_msg(desc))
        now = time.monotonic()
        if now - self._last_status >= self._status_period:
            self._last_status = now
            self.get_logger().info(self._status())

    def _drain(self) -> None:
        # Stay until consumers are done with the last frames, but never forever.
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + \
                self._param('release_timeout_s') * self._param('slots')
        if self._stream.all_released() or time.monotonic() > self._drain_deadline:
            self.finished = True

    def _status(self) -> str:
        stream = self._stream
        # The graph can only be asked while the context lives (not after Ctrl-C).
        graph = f'subscriptions={self._publisher.get_subscription_count()} ' \
            if self.context.ok() else ''
        return (f'published={stream.frames_published} waits={stream.waits} {graph}'
                f'readers={len(stream.pool.readers())} ' +
                ' '.join(f'{key}={value}' for key, value in stream.pool.counters.items()) +
                gpu_resources(stream.backend))

    def shutdown(self) -> None:
        """Let reliable subscribers get the last descriptors, then unlink the segment."""
        if self._stream is None:
            return
        try:
            # After Ctrl-C rclpy has already shut the context down: nobody to wait for.
            if self.context.ok():
                self._publisher.wait_for_all_acked(Duration(seconds=1.0))
            self.get_logger().info('done: ' + self._status())
        finally:
            self._stream.close()
            self._stream = None
            unroute_core_logs(self._log_handler)


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros producer`."""
    raise SystemExit(run_node(ProducerNode, args))


if __name__ == '__main__':
    main()
