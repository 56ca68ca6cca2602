"""
Recording frames into rosbag2 MCAP bags and reading them back (no ROS needed).

`messages` turns a frame into a standard message (sensor_msgs/Image or a std_msgs typed
MultiArray) and back; `bag_writer` writes a rosbag2 directory (metadata.yaml + .mcap);
`bag_reader` reads one; `schedule` paces a replay. ros.recorder and the shm_recorder /
shm_player nodes are their rclpy users.
"""
