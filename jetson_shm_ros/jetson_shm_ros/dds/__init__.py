"""
The ROS-free Cyclone DDS peers: `python -m jetson_shm_ros.dds producer|consumer`.

They speak the ROS 2 descriptor topic (DDS topic `rt/<name>`, type
`jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_`) through the `cyclonedds` package, so
a process or container without ROS 2 can feed or read a ROS graph's stream. Nothing here
imports rclpy or any ROS package: NumPy, cyclonedds and jetson_shm_ros.core only.
"""
