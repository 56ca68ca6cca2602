"""The producer node: fills shared-memory slots with a test pattern, through ShmPublisher."""

from typing import Mapping, Optional

from jetson_shm_ros.core.errors import NoFreeSlot
from jetson_shm_ros.nodes.ros_common import gpu_resources, RoleNode, run_node
from jetson_shm_ros.process.role_options import PRODUCER_NODE_OPTIONS
from jetson_shm_ros.process.roles import ProducerRole
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.publisher import ShmPublisher


class ProducerNode(RoleNode):
    """Publishes one descriptor per test-pattern frame; its behaviour is process.roles'."""

    def __init__(self, **kwargs):
        super().__init__('producer', **kwargs)
        self.shm_publisher = None
        options = declare_options(self, PRODUCER_NODE_OPTIONS)
        self.shm_publisher = ShmPublisher(
            self, options['topic'], dtype=options['dtype'], shape=options['shape'],
            slots=options['slots'], policy=options['policy'], backend=options['backend'],
            mode=options['mode'], encoding=options['encoding'],
            shm_name=options['shm_name'] or self._default_shm_name(),
            checksum=options['checksum'], release_timeout_s=options['release_timeout_s'],
            required_readers=options['wait_for_consumers'],
            diagnostics_period_s=options['diagnostics_period_s'])
        self.role = ProducerRole(
            options, self.get_logger(), self.shm_publisher.topic,
            subscriptions=self._matched_subscriptions, write_frame=self._write_frame,
            all_released=self.shm_publisher.frame_producer.all_released,
            details=self._details)
        self.get_logger().info(self.role.startup_line())
        self._timer = self.create_timer(self.role.period_s, self.role.tick)

    def _default_shm_name(self) -> str:
        return '/jetson_shm_ros' + self.get_fully_qualified_name().replace('/', '.')

    def _matched_subscriptions(self) -> Optional[int]:
        # The graph can only be asked while the context lives (not after an external shutdown).
        return self.shm_publisher.subscription_count() if self.context.ok() else None

    def _write_frame(self) -> bool:
        try:
            self.shm_publisher.publish_test_pattern(frame_id=self.role.options['frame_id'])
        except NoFreeSlot:
            return False  # reliable policy: a reader still holds the slot; try next tick
        return True

    def _details(self) -> Mapping[str, int]:
        pool = self.shm_publisher.frame_producer.pool
        return dict(readers=len(pool.readers()), **pool.counters,
                    **gpu_resources(self.shm_publisher.backend))

    def shutdown(self) -> None:
        """Let reliable subscribers get the last descriptors, then unlink the segment."""
        if self.shm_publisher is None or self.shm_publisher.closed:
            return
        try:
            # Ctrl-C keeps the context up (process.runner), so reliable readers get the last ones.
            self.shm_publisher.wait_for_all_acked(1.0)
            self.get_logger().info(self.role.done_line())
        finally:
            self.shm_publisher.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros producer`."""
    raise SystemExit(run_node(ProducerNode, args))


if __name__ == '__main__':
    main()
