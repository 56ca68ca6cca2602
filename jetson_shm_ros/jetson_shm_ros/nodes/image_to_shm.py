"""image_to_shm: sensor_msgs/Image in, shared-memory frames and their descriptors out."""

from typing import Optional

from jetson_shm_ros.core.backend import select_backend
from jetson_shm_ros.core.descriptor import validate_shm_name
from jetson_shm_ros.core.errors import NoFreeSlot, ShmRosError
from jetson_shm_ros.core.image_layout import image_layout, image_view, ImageError, ImageLayout
from jetson_shm_ros.nodes.bridge_common import (
    counts_line, image_subscription_qos, Refusals, stamp_to_ns)
from jetson_shm_ros.nodes.ros_common import run_node
from jetson_shm_ros.process.role_options import IMAGE_TO_SHM_NODE_OPTIONS
from jetson_shm_ros.ros.middleware import describe_qos, rmw_name
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.publisher import ShmPublisher
import numpy as np
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

IMAGE_TOPIC = 'image_raw'
# Longest wait for the old segment's subscribers to match a re-created publisher.
_MATCH_TIMEOUT_S = 2.0


class ImageToShmNode(Node):
    """Writes each received Image into a slot (one copy) and publishes its descriptor."""

    def __init__(self, **kwargs):
        super().__init__('image_to_shm', **kwargs)
        self.finished = False
        self.exit_code = 0
        self._options = options = declare_options(self, IMAGE_TO_SHM_NODE_OPTIONS)
        # The segment waits for the first image; a bad value must not: check the rest now.
        select_backend(options['backend'], options['mode']).close()
        if options['shm_name']:
            validate_shm_name(options['shm_name'])
        self._publisher: Optional[ShmPublisher] = None
        self._layout: Optional[ImageLayout] = None
        self.counts = {'images': 0, 'published': 0, 'no_free_slot': 0, 'segments': 0}
        self.refusals = Refusals(self, 'an image')
        qos = image_subscription_qos(options['image_queue_depth'])
        self._subscription = self.create_subscription(
            Image, IMAGE_TOPIC, self._on_image, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.refusals.start_diagnostics(options['diagnostics_period_s'],
                                        self._subscription.topic_name)
        # `qos` now holds what is in force: qos_overrides.* parameters were applied to it.
        why = ('sensor data: best effort matches every camera driver and never slows it'
               if qos.reliability == ReliabilityPolicy.BEST_EFFORT else
               'reliable, as overridden: only a reliable camera driver matches')
        self.get_logger().info(
            f'rmw={rmw_name()} image topic={self._subscription.topic_name} '
            f'image qos="{describe_qos(qos)}" ({why}) descriptor topic={options["topic"]} '
            f'segment={options["shm_name"] or "from node and topic"} (made at the first image) '
            f'backend={options["backend"]} mode={options["mode"]} policy={options["policy"]} '
            f'slots={options["slots"]}')
        self._status_timer = self.create_timer(options['status_period_s'], self._on_status)

    def _on_image(self, msg: Image) -> None:
        self.counts['images'] += 1
        try:
            view = image_view(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian,
                              msg.data)
        except ImageError as error:
            self.refusals.refuse(error.reason, error.detail)
            return
        layout = image_layout(msg.encoding, msg.height, msg.width)
        if layout != self._layout and not self._open(layout):
            return
        stamp_ns, frame_id = stamp_to_ns(msg.header.stamp), msg.header.frame_id
        try:
            if self._publisher.backend.name == 'cpu':
                with self._publisher.loan(stamp_ns=stamp_ns, frame_id=frame_id) as frame:
                    frame[...] = view  # the one copy also packs the rows and swaps the bytes
            else:
                # The backend's own copy (pinned: the CPU writes the mapping; cuda_ipc: one
                # host-to-device copy) takes packed native data: packing copies only when the
                # image is padded or big-endian.
                self._publisher.publish(np.ascontiguousarray(view, dtype=layout.dtype),
                                        stamp_ns=stamp_ns, frame_id=frame_id)
        except NoFreeSlot:
            self.counts['no_free_slot'] += 1
            return
        self.counts['published'] += 1

    def _open(self, layout: ImageLayout) -> bool:
        """Create the segment for this size and encoding (a new incarnation when it changed)."""
        matched = 0
        if self._publisher is not None:
            self.get_logger().info(
                f'image changed from {self._layout.encoding} {list(self._layout.shape)} to '
                f'{layout.encoding} {list(layout.shape)}: re-creating {self._publisher.shm_name}')
            matched = self._publisher.subscription_count()
            self._close_publisher()
        options = self._options
        try:
            self._publisher = ShmPublisher(
                self, options['topic'], dtype=layout.dtype, shape=list(layout.shape),
                encoding=layout.encoding, shm_name=options['shm_name'], slots=options['slots'],
                policy=options['policy'], backend=options['backend'], mode=options['mode'],
                checksum=options['checksum'],
                diagnostics_period_s=options['diagnostics_period_s'])
        except ShmRosError as error:  # e.g. /dev/shm too small for this image: skip it
            self.refusals.refuse(error.reason, f'no segment for {layout.encoding} '
                                 f'{list(layout.shape)}: {error.detail}')
            return False
        # The new publisher is a new DDS writer: what goes out before the old one's subscribers
        # matched it reaches them only while it is still in its history (doc/late-joiners.md).
        self._publisher.wait_for_subscriptions(matched, _MATCH_TIMEOUT_S)
        self._layout = layout
        self.counts['segments'] += 1
        self.get_logger().info(
            f'segment {self._publisher.shm_name}: {layout.encoding} {list(layout.shape)} '
            f'{layout.dtype} ({layout.nbytes} B) backend={self._publisher.backend.name} '
            f'mode={self._publisher.backend.mode}')
        return True

    def _close_publisher(self) -> None:
        publisher, self._publisher, self._layout = self._publisher, None, None
        if publisher is not None:
            publisher.close()

    def _counts(self) -> str:
        return counts_line(self.counts, self.refusals)

    def _on_status(self) -> None:
        self.get_logger().info('status: ' + self._counts())

    def shutdown(self) -> None:
        """Log the summary line and unlink the segment."""
        try:
            self.get_logger().info('summary: ' + self._counts())
        finally:
            self._close_publisher()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros image_to_shm`."""
    raise SystemExit(run_node(ImageToShmNode, args))


if __name__ == '__main__':
    main()
