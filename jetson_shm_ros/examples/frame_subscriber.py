"""Read the camera frames in place: python3 frame_subscriber.py."""

from jetson_shm_ros import make_executor, ShmSubscription
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


class FrameSubscriber(Node):
    """Gets a view of each verified frame; nothing was copied to get it here."""

    def __init__(self):
        super().__init__('frame_subscriber')
        self.frames = ShmSubscription(self, 'camera/frames', self.on_frame)

    def on_frame(self, frame, info):
        # `frame` is valid during this call only (copy it to keep it). On a GPU backend it is a
        # CuPy array, and torch.from_dlpack(frame) gives a tensor on the same memory.
        self.get_logger().info(
            f'{info.encoding} {tuple(frame.shape)} seq={info.sequence} '
            f'value={int(frame[0, 0, 0])} frame_id={info.frame_id}')


def main():
    rclpy.init()
    node = FrameSubscriber()
    executor = make_executor()  # the EventsExecutor where rclpy has it (Jazzy on)
    executor.add_node(node)
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
