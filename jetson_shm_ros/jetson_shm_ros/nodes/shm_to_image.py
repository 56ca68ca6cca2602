"""shm_to_image: shared-memory frames in, sensor_msgs/Image out, at most max_rate_hz."""

import array
import time

from jetson_shm_ros.core.backend import BACKENDS
from jetson_shm_ros.core.image_encodings import encoding_layout
from jetson_shm_ros.core.image_layout import image_fields, ImageError
from jetson_shm_ros.nodes.bridge_common import (
    image_publisher_qos, ns_to_stamp, NumberParameters, Refusals)
from jetson_shm_ros.nodes.ros_common import run_node, startup_parameter
from jetson_shm_ros.ros.middleware import DEFAULT_TOPIC, describe_qos, rmw_name
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
from rcl_interfaces.msg import IntegerRange
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
        self._numbers = NumberParameters(self)
        self._declare_parameters()
        param = self.get_parameter
        self._encoding = param('encoding').value
        if self._encoding:
            encoding_layout(self._encoding)  # an unknown name is a start-up error
        rate = self._numbers.value('max_rate_hz')
        self._period_s = 1.0 / rate if rate > 0 else 0.0
        self._next_allowed = 0.0
        self.counts = {'frames': 0, 'published': 0, 'skipped': 0}
        self.refusals = Refusals(self, 'a frame')
        qos = image_publisher_qos(param('image_queue_depth').value)
        self._publisher = self.create_publisher(
            Image, IMAGE_TOPIC, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies())
        self._subscription = ShmSubscription(
            self, param('topic').value, self._on_frame, backend=param('backend').value,
            verify=param('verify').value, queue_depth=param('queue_depth').value,
            diagnostics_period_s=self._numbers.value('diagnostics_period_s'))
        self.get_logger().info(
            f'rmw={rmw_name()} descriptor topic={param("topic").value} '
            f'image topic={self._publisher.topic_name} image qos="{describe_qos(qos)}" '
            f'(reliable matches rviz2, rqt and ros2 bag as well as best-effort readers; keep '
            f'last so a slow reader loses old images instead of slowing us) '
            f'max_rate_hz={rate or "unlimited"} encoding={self._encoding or "from descriptor"} '
            f'backend={param("backend").value}')
        self._status_timer = self.create_timer(self._numbers.value('status_period_s'),
                                               self._on_status)

    def _declare_parameters(self) -> None:
        self.declare_parameter('topic', DEFAULT_TOPIC, startup_parameter(
            'Descriptor topic (the Image output is the topic image: remap it)'))
        self.declare_parameter('encoding', '', startup_parameter(
            'Image encoding for frames whose descriptor has none (plain tensors), e.g. mono8; '
            'empty: such frames are refused'))
        self._numbers.declare('max_rate_hz', 30.0, 'Most images per second; frames beyond '
                              'it are skipped (never queued). 0: every frame', 0.0, 100000.0)
        self.declare_parameter('backend', 'auto', startup_parameter(
            f'How frames are mapped; an Image is host memory, so GPU frames are copied to the '
            f'host once. One of {list(BACKENDS)}'))
        self.declare_parameter('verify', True, startup_parameter(
            'Check each frame against its checksum; a torn or corrupt frame is never published'))
        self.declare_parameter('queue_depth', 16, startup_parameter(
            'Descriptor queue depth', integer_range=[
                IntegerRange(from_value=1, to_value=1024, step=1)]))
        self.declare_parameter('image_queue_depth', 2, startup_parameter(
            'Depth of the Image publisher (keep last)', integer_range=[
                IntegerRange(from_value=1, to_value=1000, step=1)]))
        self._numbers.declare('diagnostics_period_s', 1.0,
                              'Seconds between /diagnostics reports; 0 = off', 0.0, 3600.0)
        self._numbers.declare('status_period_s', 5.0, 'Seconds between status log lines',
                              0.001, 100000.0)

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
        return ' '.join(f'{key}={value}' for key, value in self.counts.items()) + ' ' + \
            self.refusals.counts()

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
