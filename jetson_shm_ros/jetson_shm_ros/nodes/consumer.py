"""The consumer node: verifies every frame it is told about, through ShmSubscription."""

from jetson_shm_ros.nodes.ros_common import gpu_resources, RoleNode, run_node
from jetson_shm_ros.process.role_options import CONSUMER_NODE_OPTIONS
from jetson_shm_ros.process.roles import ConsumerRole, fields
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.subscription import ShmSubscription

# How often the frame limit and the idle timeout are looked at between status lines.
_POLL_PERIOD_S = 0.1


class ConsumerNode(RoleNode):
    """Validates, verifies and releases each frame; its behaviour is process.roles'."""

    def __init__(self, **kwargs):
        super().__init__('consumer', **kwargs)
        self.shm_subscription = None
        options = declare_options(self, CONSUMER_NODE_OPTIONS)
        # Checking the checksum is the whole job here: the callback has nothing left to do.
        self.shm_subscription = ShmSubscription(
            self, options['topic'], lambda frame, info: None,
            backend=options['backend'], mode=options['mode'], verify=options['verify'],
            queue_depth=options['queue_depth'],
            allow_group_access=options['allow_group_access'],
            diagnostics_period_s=options['diagnostics_period_s'])
        subscription = self.shm_subscription
        self.role = ConsumerRole(options, self.get_logger(), subscription.topic,
                                 counts=lambda: subscription.counts,
                                 summary=lambda: ' '.join(filter(None, [
                                     subscription.summary(),
                                     fields(gpu_resources(subscription.backend))])))
        self.get_logger().info(self.role.startup_line())
        self._timer = self.create_timer(_POLL_PERIOD_S, self.role.tick)

    def shutdown(self) -> None:
        """Log the summary line, unpin and unmap."""
        if self.shm_subscription is None or self.shm_subscription.closed:
            return
        try:
            self.role.finish()
        finally:
            self.shm_subscription.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros consumer`."""
    raise SystemExit(run_node(ConsumerNode, args))


if __name__ == '__main__':
    main()
