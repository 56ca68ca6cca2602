"""
The public rclpy API: ShmPublisher and ShmSubscription, for users' own nodes.

Built on jetson_shm_ros.core (ROS-free); the package's nodes are its thinnest users.
"""

from jetson_shm_ros.ros.executors import make_executor
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.publisher import ShmPublisher
from jetson_shm_ros.ros.subscription import ShmSubscription

__all__ = ['FrameInfo', 'make_executor', 'ShmPublisher', 'ShmRecorder', 'ShmSubscription']


def __getattr__(name: str):
    # ShmRecorder needs the `mcap` package: loaded only by those who record.
    if name == 'ShmRecorder':
        from jetson_shm_ros.ros.recorder import ShmRecorder
        return ShmRecorder
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
