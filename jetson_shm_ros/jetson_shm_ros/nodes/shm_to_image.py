"""shm_to_image: shared-memory frames in, sensor_msgs/Image out, at most max_rate_hz."""

import array
import time

from jetson_shm_ros.core.image_layout import image_fields, ImageError
from jetson_shm_ros.nodes.bridge_common import (
    counts_line, image_publisher_qos, ns_to_stamp, Refusals)
from jetson_shm_ros.nodes.ros_common import run_node
from jetson_shm_ros.process.role_options import SHM_TO_IMAGE_NODE_OPTIONS
from jetson_shm_ros.ros.middleware import describe_qos, rmw_name
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

IMAGE_TOPIC = 'image'


class ShmToImageNode(Node):
    """Publishes received frames as Images; frames beyond max_rate_hz are skipped."""

    def __init__(self, **kwargs):
        super().__init__('shm_to_image', **kwargs)
        self.finished = False
        self.exit_code = 0
        self._subscription = None
        options = declare_options(self, SHM_TO_IMAGE_NODE_OPTIONS)
        self._encoding = options['encoding']
        rate = options['max_rate_hz']
        self._period_s = 1.0 / rate if rate > 0 else 0.0
        self._next_allowed = 0.0
        self.counts = {'frames': 0, 'published': 0, 'skipped': 0}
        self.refusals = Refusals(self, 'a frame')
        qos = image_publisher_qos(options['image_queue_depth'])
        self._publisher = self.create_publisher(
            Image, IMAGE_TOPIC, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._subscription = ShmSubscription(
            self, options['topic'], self._on_frame, backend=options['backend'],
            verify=options['verify'], queue_depth=options['queue_depth'],
            diagnostics_period_s=options['diagnostics_period_s'])
        self.refusals.start_diagnostics(options['diagnostics_period_s'],
                                        self._publisher.topic_name)
        self.get_logger().info(
            f'rmw={rmw_name()} descriptor topic={options["topic"]} '
            f'image topic={self._publisher.topic_name} image qos="{describe_qos(qos)}" '
            f'(reliable matches rviz2, rqt and ros2 bag as well as best-effort readers; keep '
            f'last so a slow reader loses old images instead of slowing us) '
            f'max_rate_hz={rate or "unlimited"} encoding={self._encoding or "from descriptor"} '
            f'backend={options["backend"]}')
        self._status_timer = self.create_timer(options['status_period_s'], self._on_status)

    def _on_frame(self, frame, info) -> None:
        self.counts['frames'] += 1
        now = time.monotonic()
        if now < self._next_allowed:
            self.counts['skipped'] += 1  # the slot is released as soon as we return
            return
        encoding = info.encoding or self._encoding
        if not encoding:
            self.refusals.refuse('no_encoding', f'{info.shm_name} sends plain {info.dtype}'
                                 f'{list(info.shape)} frames: set the encoding parameter, '
                                 f'e.g. encoding:=mono8')
            return
        host = frame if isinstance(frame, np.ndarray) else frame.get()  # GPU: one copy
        try:
            fields = image_fields(host, encoding)
        except ImageError as error:
            self.refusals.refuse(error.reason, error.detail)
            return
        msg = Image(encoding=fields.encoding, height=fields.height, width=fields.width,
                    step=fields.step, is_bigendian=fields.is_bigendian)
        msg.header.stamp = ns_to_stamp(info.stamp_ns)
        msg.header.frame_id = info.frame_id
        data = array.array('B')
        data.frombytes(fields.data)  # the one copy out of the slot
        msg.data = data
        self._publisher.publish(msg)
        self.counts['published'] += 1
        if self._period_s:
            # Keep the cadence while on time; after a gap, start counting from now.
            late = now - self._next_allowed >= self._period_s
            self._next_allowed = (now if late else self._next_allowed) + self._period_s

    def _counts(self) -> str:
        return counts_line(self.counts, self.refusals)

    def _on_status(self) -> None:
        self.get_logger().info('status: ' + self._counts())

    def shutdown(self) -> None:
        """Log the summary line and unmap the segments."""
        if self._subscription is None:
            return
        try:
            self.get_logger().info('summary: ' + self._counts() + ' ' +
                                   self._subscription.summary())
        finally:
            self._subscription.close()
            self._subscription = None


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros shm_to_image`."""
    raise SystemExit(run_node(ShmToImageNode, args))


if __name__ == '__main__':
    main()
