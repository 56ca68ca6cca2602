"""
`make bench`: frame latency and throughput through rclpy, beside a plain ROS 2 message.

run.py plans and drives a run (python -m bench), peer.py is the publisher and the subscriber
process, transports.py what each transport does per frame, ceilings.py the hardware's limits
and report.py the JSON, Markdown table and plot.
"""
