"""The producer node: fills shared-memory slots with a test pattern, through ShmPublisher."""

import time

from jetson_shm_ros.core.backend import BACKENDS, MODES
from jetson_shm_ros.core.errors import NoFreeSlot
from jetson_shm_ros.core.pool import POLICIES
from jetson_shm_ros.nodes.ros_common import run_node, startup_parameter
from jetson_shm_ros.ros.middleware import DEFAULT_TOPIC
from jetson_shm_ros.ros.publisher import ShmPublisher
from rcl_interfaces.msg import FloatingPointRange, IntegerRange
from rclpy.node import Node


class ProducerNode(Node):
    """Publishes one descriptor per test-pattern frame written into a slot of its segment."""

    def __init__(self, **kwargs):
        super().__init__('producer', **kwargs)
        self.finished = False
        self.exit_code = 0
        self.shm_publisher = None
        self._declare_parameters()
        param = self._param
        self._frames = param('frames')
        self._wait_for_consumers = param('wait_for_consumers')
        self._frame_id = param('frame_id')
        self.shm_publisher = ShmPublisher(
            self, param('topic'), dtype=param('dtype'), shape=param('shape'),
            slots=param('slots'), policy=param('policy'), backend=param('backend'),
            mode=param('mode'), encoding=param('encoding'),
            shm_name=param('shm_name') or self._default_shm_name(), checksum=param('checksum'),
            release_timeout_s=param('release_timeout_s'),
            required_readers=self._wait_for_consumers,
            diagnostics_period_s=param('diagnostics_period_s'))
        self.get_logger().info(f'rate={param("rate_hz")} Hz frames={self._frames or "endless"}')
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
        self.declare_parameter('encoding', '', startup_parameter(
            'ROS image encoding of the frames (rgb8, mono16, 32FC1, ...) or empty for a plain '
            'tensor; must agree with dtype and shape'))
        self.declare_parameter('diagnostics_period_s', 1.0, startup_parameter(
            'Seconds between /diagnostics reports; 0 = off', floating_point_range=[
                FloatingPointRange(from_value=0.0, to_value=3600.0, step=0.0)]))
        self.declare_parameter('frame_id', '', startup_parameter(
            'header.frame_id of every descriptor'))
        self.declare_parameter('status_period_s', 5.0, startup_parameter(
            'Seconds between status log lines', floating_point_range=[positive]))

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _default_shm_name(self) -> str:
        return '/jetson_shm_ros' + self.get_fully_qualified_name().replace('/', '.')

    def _on_timer(self) -> None:
        publisher = self.shm_publisher
        if self._frames and publisher.frames_published >= self._frames:
            self._drain()
            return
        if publisher.subscription_count() < self._wait_for_consumers:
            if not self._waiting_logged:
                self.get_logger().info(
                    f'waiting for {self._wait_for_consumers} subscription(s) on '
                    f'{publisher.topic}')
                self._waiting_logged = True
            return
        try:
            publisher.publish_test_pattern(frame_id=self._frame_id)
        except NoFreeSlot:
            pass  # reliable policy: a reader still holds the slot; counted, try next tick
        now = time.monotonic()
        if now - self._last_status >= self._status_period:
            self._last_status = now
            self.get_logger().info(self._status())

    def _drain(self) -> None:
        # Stay until consumers are done with the last frames, but never forever.
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + \
                self._param('release_timeout_s') * self._param('slots')
        if self.shm_publisher.frame_producer.all_released() or \
                time.monotonic() > self._drain_deadline:
            self.finished = True

    def _status(self) -> str:
        publisher = self.shm_publisher
        pool = publisher.frame_producer.pool
        # The graph can only be asked while the context lives (not after Ctrl-C).
        graph = f'subscriptions={publisher.subscription_count()} ' if self.context.ok() else ''
        return (f'published={publisher.frames_published} '
                f'waits={publisher.counters["no_free_slot"]} {graph}'
                f'readers={len(pool.readers())} ' +
                ' '.join(f'{key}={value}' for key, value in pool.counters.items()))

    def shutdown(self) -> None:
        """Let reliable subscribers get the last descriptors, then unlink the segment."""
        if self.shm_publisher is None or self.shm_publisher.closed:
            return
        try:
            # After Ctrl-C rclpy has already shut the context down: nobody to wait for.
            self.shm_publisher.wait_for_all_acked(1.0)
            self.get_logger().info('done: ' + self._status())
        finally:
            self.shm_publisher.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros producer`."""
    raise SystemExit(run_node(ProducerNode, args))


if __name__ == '__main__':
    main()
