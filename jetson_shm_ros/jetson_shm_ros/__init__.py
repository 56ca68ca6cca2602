"""
jetson_shm_ros: zero-copy frame exchange between ROS 2 processes through shared memory.

`core` is the ROS-free library (segment pool, frames, CPU and GPU backends); `ros` is the
public rclpy API: ``from jetson_shm_ros import ShmPublisher, ShmSubscription, ShmRecorder``
(and ``make_executor``, the executor to spin them with);
`record` the ROS-free bag writing and reading; `dds` holds the ROS-free Cyclone DDS peers;
`nodes` the package's executables, built on `ros`.

Importing this package does not import rclpy: the API is loaded on first use.
"""

_PUBLIC_API = {'ShmPublisher', 'ShmSubscription', 'ShmRecorder', 'FrameInfo', 'make_executor'}

__all__ = sorted(_PUBLIC_API)


def __getattr__(name: str):
    if name in _PUBLIC_API:
        from jetson_shm_ros import ros
        return getattr(ros, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
