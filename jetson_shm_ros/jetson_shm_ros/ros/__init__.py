"""The rclpy side of jetson_shm_ros: the public API and the helpers nodes build on."""
