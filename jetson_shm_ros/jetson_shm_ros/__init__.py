"""
jetson_shm_ros: zero-copy frame exchange between ROS 2 processes through shared memory.

`core` is the ROS-free library (segment pool, payload rules, CPU and GPU backends);
`nodes` holds the thin rclpy producer and consumer nodes built on it.
"""
