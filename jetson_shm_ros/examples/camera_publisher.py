"""Publish 30 RGB frames per second through shared memory: python3 camera_publisher.py."""

from jetson_shm_ros import make_executor, ShmPublisher
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class CameraPublisher(Node):
    """Writes each frame straight into a shared-memory slot; DDS carries only a descriptor."""

    def __init__(self):
        super().__init__('camera_publisher')
        self.frames = ShmPublisher(self, 'camera/frames', dtype='uint8', shape=[480, 640, 3],
                                   encoding='rgb8')
        self.count = 0
        self.timer = self.create_timer(1 / 30, self.on_timer)

    def on_timer(self):
        # `frame` is the slot itself: NumPy here, CuPy on a GPU backend (then a kernel fills it).
        with self.frames.loan(frame_id='camera') as frame:
            frame[...] = self.count % 256
        self.count += 1


def main():
    rclpy.init()
    node = CameraPublisher()
    executor = make_executor()  # the EventsExecutor where rclpy has it (Jazzy on)
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()  # closes the ShmPublisher: the segment is unlinked
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
