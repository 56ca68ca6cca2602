"""
A user's publisher or subscriber node spun by one executor kind (test_executors.py).

python3 executor_peers.py pub|sub KIND NAMESPACE: written the way the README's examples are
(make_executor, a spin_once loop, KeyboardInterrupt, destroy_node, try_shutdown), with the
executor kind chosen.
"""

import sys

from jetson_shm_ros import make_executor, ShmPublisher, ShmSubscription
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class Publisher(Node):
    """Publishes a small frame at 50 Hz from a timer."""

    def __init__(self):
        super().__init__('executor_publisher')
        self.frames = ShmPublisher(self, 'frames', dtype='uint8', shape=[64, 64])
        self.count = 0
        self.timer = self.create_timer(0.02, self._on_timer)

    def _on_timer(self):
        with self.frames.loan() as frame:
            frame[...] = self.count % 256
        self.count += 1


class Subscriber(Node):
    """Logs each frame's sequence number."""

    def __init__(self):
        super().__init__('executor_subscriber')
        self.frames = ShmSubscription(self, 'frames', self._on_frame)

    def _on_frame(self, frame, info):
        print(f'frame seq={info.sequence} value={int(frame[0, 0])}', flush=True)


def main():
    role, kind = sys.argv[1], sys.argv[2]
    rclpy.init()
    node = Publisher() if role == 'pub' else Subscriber()
    executor = make_executor(kind)
    executor.add_node(node)
    print(f'spinning {role} with {kind}', flush=True)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        print('interrupted', flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
