"""image_to_shm: sensor_msgs/Image in, shared-memory frames and their descriptors out."""

from typing import Optional

from jetson_shm_ros.core.backend import BACKENDS, MODES, select_backend
from jetson_shm_ros.core.descriptor import validate_shm_name
from jetson_shm_ros.core.errors import NoFreeSlot, ShmRosError
from jetson_shm_ros.core.image_layout import image_layout, image_view, ImageError, ImageLayout
from jetson_shm_ros.core.pool import POLICIES
from jetson_shm_ros.nodes.bridge_common import (
    image_subscription_qos, NumberParameters, Refusals, stamp_to_ns)
from jetson_shm_ros.nodes.ros_common import run_node, startup_parameter
from jetson_shm_ros.ros.middleware import DEFAULT_TOPIC, describe_qos, rmw_name
from jetson_shm_ros.ros.publisher import ShmPublisher
import numpy as np
from rcl_interfaces.msg import IntegerRange
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image

IMAGE_TOPIC = 'image_raw'


class ImageToShmNode(Node):
    """Writes each received Image into a slot (one copy) and publishes its descriptor."""

    def __init__(self, **kwargs):
        super().__init__('image_to_shm', **kwargs)
        self.finished = False
        self.exit_code = 0
        self._numbers = NumberParameters(self)
        self._declare_parameters()
        param = self._param
        # The segment waits for the first image; a bad value must not: check them now.
        if param('policy') not in POLICIES:
            raise ValueError(f'policy {param("policy")!r} is not one of {list(POLICIES)}')
        select_backend(param('backend'), param('mode')).close()
        if param('shm_name'):
            validate_shm_name(param('shm_name'))
        self._diagnostics_period_s = self._numbers.value('diagnostics_period_s')
        self._publisher: Optional[ShmPublisher] = None
        self._layout: Optional[ImageLayout] = None
        self.counts = {'images': 0, 'published': 0, 'no_free_slot': 0, 'segments': 0}
        self.refusals = Refusals(self, 'an image')
        qos = image_subscription_qos(param('image_queue_depth'))
        self._subscription = self.create_subscription(
            Image, IMAGE_TOPIC, self._on_image, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self.get_logger().info(
            f'rmw={rmw_name()} image topic={self._subscription.topic_name} '
            f'image qos="{describe_qos(qos)}" (sensor data: best effort matches every camera '
            f'driver and never slows it) descriptor topic={param("topic")} '
            f'segment={param("shm_name") or "from node and topic"} (made at the first image) '
            f'backend={param("backend")} '
            f'mode={param("mode")} policy={param("policy")} slots={param("slots")}')
        self._status_timer = self.create_timer(self._numbers.value('status_period_s'),
                                               self._on_status)

    def _declare_parameters(self) -> None:
        self.declare_parameter('topic', DEFAULT_TOPIC, startup_parameter(
            'Descriptor topic (the Image input is the topic image_raw: remap it)'))
        self.declare_parameter('shm_name', '', startup_parameter(
            'POSIX shared-memory name; empty: derived from the node name'))
        self.declare_parameter('slots', 4, startup_parameter(
            'Slots in the segment = images in flight', integer_range=[
                IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('policy', 'latest', startup_parameter(
            'latest: never wait for consumers (a camera cannot wait); reliable: reuse a slot '
            f'only after every consumer released it. One of {list(POLICIES)}'))
        self.declare_parameter('backend', 'auto', startup_parameter(f'One of {list(BACKENDS)}'))
        self.declare_parameter('mode', 'zero_copy', startup_parameter(f'One of {list(MODES)}'))
        self.declare_parameter('checksum', True, startup_parameter(
            'Publish the payload checksum so consumers can verify every byte'))
        self.declare_parameter('image_queue_depth', 5, startup_parameter(
            'Depth of the Image subscription (keep last)', integer_range=[
                IntegerRange(from_value=1, to_value=1000, step=1)]))
        self._numbers.declare('diagnostics_period_s', 1.0,
                              'Seconds between /diagnostics reports; 0 = off', 0.0, 3600.0)
        self._numbers.declare('status_period_s', 5.0, 'Seconds between status log lines',
                              0.001, 100000.0)

    def _param(self, name: str):
        return self.get_parameter(name).value

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
        try:
            with self._publisher.loan(stamp_ns=stamp_to_ns(msg.header.stamp),
                                      frame_id=msg.header.frame_id) as frame:
                _copy_into(frame, view, layout.dtype)
        except NoFreeSlot:
            self.counts['no_free_slot'] += 1
            return
        self.counts['published'] += 1

    def _open(self, layout: ImageLayout) -> bool:
        """Create the segment for this size and encoding (a new incarnation when it changed)."""
        if self._publisher is not None:
            self.get_logger().info(
                f'image changed from {self._layout.encoding} {list(self._layout.shape)} to '
                f'{layout.encoding} {list(layout.shape)}: re-creating {self._publisher.shm_name}')
            self._close_publisher()
        param = self._param
        try:
            self._publisher = ShmPublisher(
                self, param('topic'), dtype=layout.dtype, shape=list(layout.shape),
                encoding=layout.encoding, shm_name=param('shm_name'), slots=param('slots'),
                policy=param('policy'), backend=param('backend'), mode=param('mode'),
                checksum=param('checksum'),
                diagnostics_period_s=self._diagnostics_period_s)
        except ShmRosError as error:  # e.g. /dev/shm too small for this image: skip it
            self.refusals.refuse(error.reason, f'no segment for {layout.encoding} '
                                 f'{list(layout.shape)}: {error.detail}')
            return False
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
        return ' '.join(f'{key}={value}' for key, value in self.counts.items()) + ' ' + \
            self.refusals.counts()

    def _on_status(self) -> None:
        self.get_logger().info('status: ' + self._counts())

    def shutdown(self) -> None:
        """Log the summary line and unlink the segment."""
        try:
            self.get_logger().info('summary: ' + self._counts())
        finally:
            self._close_publisher()


def _copy_into(frame, view: np.ndarray, dtype: str) -> None:
    """Copy an image view into a slot: packs padded rows and swaps big-endian data."""
    if isinstance(frame, np.ndarray):
        frame[...] = view  # one copy does both
    else:  # a CuPy array in device or pinned memory: one host-to-device copy of packed data
        frame.set(np.ascontiguousarray(view, dtype=dtype))


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros image_to_shm`."""
    raise SystemExit(run_node(ImageToShmNode, args))


if __name__ == '__main__':
    main()
