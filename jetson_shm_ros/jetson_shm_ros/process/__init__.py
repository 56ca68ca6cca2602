"""
Process concerns, ROS-free: the options schema, the roles' behaviour, signals and the runner.

`core` is the transport alone; this package is how one producer or consumer process starts,
runs and stops, shared by the rclpy nodes (`nodes`) and the ROS-free DDS peers (`dds`).
"""
