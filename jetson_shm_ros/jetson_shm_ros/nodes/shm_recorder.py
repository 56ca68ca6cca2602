"""shm_recorder: descriptor topics in, a rosbag2 MCAP bag out (frames read in place)."""

import time

from jetson_shm_ros.core.errors import OptionError
from jetson_shm_ros.nodes.ros_common import run_node
from jetson_shm_ros.process.role_options import RECORDER_NODE_OPTIONS
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.recorder import ShmRecorder
from rclpy.node import Node

# How often the frame limit and a write failure are looked at.
_POLL_PERIOD_S = 0.1


def default_output() -> str:
    """Return shm_bag_<date>_<time>, like ros2 bag record's rosbag2_<date>-<time>."""
    return time.strftime('shm_bag_%Y_%m_%d-%H_%M_%S')


class ShmRecorderNode(Node):
    """Records frames until stopped, max_frames, max_bytes, or a write failure (exit 1)."""

    def __init__(self, **kwargs):
        super().__init__('shm_recorder', **kwargs)
        self.recorder = None
        self.finished = False
        self.exit_code = 0
        options = declare_options(self, RECORDER_NODE_OPTIONS)
        if len(set(options['topics'])) != len(options['topics']):
            raise OptionError(f'topics={options["topics"]} names a topic twice')
        self.recorder = ShmRecorder(
            self, options['topics'], options['output'] or default_output(),
            compression=options['compression'], max_frames=options['max_frames'],
            max_bytes=options['max_bytes'], split_bytes=options['split_bytes'],
            chunk_bytes=options['chunk_bytes'], chunk_crc=options['chunk_crc'],
            backend=options['backend'], verify=options['verify'],
            queue_depth=options['queue_depth'], queue_bytes=options['queue_bytes'],
            diagnostics_period_s=options['diagnostics_period_s'])
        self.get_logger().info(
            f'recording {",".join(self.recorder.topics)} into {self.recorder.path} '
            f'compression={options["compression"]} max_frames={options["max_frames"] or "-"} '
            f'max_bytes={options["max_bytes"] or "-"} split_bytes={options["split_bytes"] or "-"}')
        self._poll_timer = self.create_timer(_POLL_PERIOD_S, self._on_poll)
        self._status_timer = self.create_timer(options['status_period_s'], self._on_status)

    def _on_poll(self) -> None:
        if self.recorder.finished and not self.finished:
            self.finished = True
            if self.recorder.error:
                self.exit_code = 1

    def _on_status(self) -> None:
        self.get_logger().info('status: ' + self.recorder.summary())

    def shutdown(self) -> None:
        """Close the bag (last chunk, summary, metadata.yaml) and log the summary line."""
        if self.recorder is None:
            return
        recorder, self.recorder = self.recorder, None
        recorder.close()
        if recorder.error:
            self.exit_code = 1
            self.get_logger().error(f'recording failed: {recorder.error}')
        self.get_logger().info('summary: ' + recorder.summary())


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros shm_recorder`."""
    raise SystemExit(run_node(ShmRecorderNode, args))


if __name__ == '__main__':
    main()
