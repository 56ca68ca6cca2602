"""
A user's publisher or subscriber node spun by one executor kind (test_executors.py).

python3 executor_peers.py pub|sub KIND NAMESPACE: written the way the README's examples are
(make_executor, a spin_once loop, KeyboardInterrupt, destroy_node, try_shutdown), with the
executor kind chosen.

Test hooks: JSR_TEST_TEARDOWN=hang makes rclpy's Node.destroy_node block in C with the GIL
held, as the Fast DDS teardown deadlock does (doc/lifecycle.md); JSR_TEST_TEARDOWN=slow gives
the program 12 s of cleanup of its own after destroy_node.
"""

import os
import sys
import time

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


def _block_in_rclpy_destroy_node():
    """
    Make Node.destroy_node block in C holding the GIL, its frame rclpy's own (node.py).

    As the Fast DDS deadlock does: rclpy calls rcl_node_fini without releasing the GIL. A
    PyDLL call keeps the GIL; libc's sleep() stands for the deadlock.
    """
    import ctypes
    import rclpy.node
    namespace = {'libc': ctypes.PyDLL(None)}
    exec(compile('def destroy_node(self, *args, **kwargs):\n    libc.sleep(600)\n',
                 rclpy.node.__file__, 'exec'), namespace)
    Node.destroy_node = namespace['destroy_node']


def main():
    role, kind = sys.argv[1], sys.argv[2]
    teardown = os.environ.get('JSR_TEST_TEARDOWN', '')
    if teardown == 'hang':
        _block_in_rclpy_destroy_node()
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
        if teardown == 'slow':
            time.sleep(12.0)  # longer than the teardown bound: the program's own time
            print('cleanup done', flush=True)
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
