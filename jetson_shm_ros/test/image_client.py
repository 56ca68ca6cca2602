"""The tests' own rclpy node: an independent sensor_msgs/Image publisher and subscriber."""

import array
import time
from typing import Callable, Dict, List, Optional

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

# Deep enough that nothing the bridge sends back is lost in the test's own queue.
QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def make_image(encoding: str, height: int, width: int, step: int, data: bytes,
               frame_id: str, stamp_ns: int, is_bigendian: int = 0) -> Image:
    """Build an Image from raw fields (any of them may be hostile)."""
    msg = Image(encoding=encoding, height=height, width=width, step=step,
                is_bigendian=is_bigendian, data=array.array('B', data))
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


def stamp_ns(msg: Image) -> int:
    """Return an Image's header stamp in nanoseconds."""
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def unpadded(msg: Image, row_nbytes: int) -> bytes:
    """Return an Image's pixel bytes without row padding."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    return b''.join(data[row * msg.step:row * msg.step + row_nbytes].tobytes()
                    for row in range(msg.height))


class ImageClient:
    """Publishes images on `in_topic` and keeps every image arriving on `out_topic`."""

    def __init__(self, domain_id: int, in_topic: str = 'image_raw', out_topic: str = 'image'):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node('image_test_client', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.publisher = self.node.create_publisher(Image, in_topic, QOS)
        self.received: List[Image] = []
        self.by_frame_id: Dict[str, Image] = {}
        self.node.create_subscription(Image, out_topic, self._on_image, QOS)

    def _on_image(self, msg: Image) -> None:
        self.received.append(msg)
        self.by_frame_id[msg.header.frame_id] = msg

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until `condition()` holds or `timeout` seconds passed; return condition()."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.1)
        return condition()

    def wait_for_bridge(self, timeout: float) -> bool:
        """Wait until image_to_shm subscribes and shm_to_image publishes (both matched)."""
        return self.spin_until(lambda: self.publisher.get_subscription_count() > 0 and
                               self.node.count_publishers(self._out_topic()) > 0, timeout)

    def _out_topic(self) -> str:
        return [sub.topic_name for sub in self.node.subscriptions][0]

    def round_trip(self, msg: Image, timeout: float, resend_every: float = 1.0) -> Optional[Image]:
        """
        Publish `msg` until an image with its frame_id comes back; return that image.

        The bridge's input is best effort (sensor data QoS), so a lost image is sent again.
        """
        frame_id = msg.header.frame_id
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publisher.publish(msg)
            if self.spin_until(lambda: frame_id in self.by_frame_id,
                               min(resend_every, deadline - time.monotonic())):
                return self.by_frame_id[frame_id]
        return None

    def round_trip_until(self, msg: Image, condition: Callable[[], bool], timeout: float,
                         resend_every: float = 1.0) -> bool:
        """Publish `msg` until `condition()` holds (e.g. the bridge logged it); return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.publisher.publish(msg)
            if self.spin_until(condition, min(resend_every, deadline - time.monotonic())):
                return True
        return condition()

    def publish_at_rate(self, make: Callable[[int], Image], count: int,
                        rate_hz: float) -> List[Image]:
        """
        Publish `count` images `rate_hz` times a second, spinning in between; return them.

        Each image is stamped with the wall clock when it is sent, so the stamps tell the rate
        that was really achieved, however loaded the machine is.
        """
        sent = []
        start = time.monotonic()
        for index in range(count):
            due = start + index / rate_hz
            while time.monotonic() < due:
                self.executor.spin_once(timeout_sec=max(0.0, due - time.monotonic()))
            msg = make(index)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            self.publisher.publish(msg)
            sent.append(msg)
        return sent

    def close(self) -> None:
        """Destroy the node and shut the context down."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
