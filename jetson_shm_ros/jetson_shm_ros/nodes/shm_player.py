"""shm_player: a bag's frames into shared memory (ShmPublisher) with their recorded timing."""

import time
from typing import Dict, Tuple

from jetson_shm_ros.core.errors import BagError, NoFreeSlot, OptionError
from jetson_shm_ros.nodes.ros_common import run_node
from jetson_shm_ros.process.role_options import PLAYER_NODE_OPTIONS
from jetson_shm_ros.record.malloc import keep_large_buffers
from jetson_shm_ros.record.replay import Frame, Replay
from jetson_shm_ros.ros.parameters import declare_options
from jetson_shm_ros.ros.publisher import ShmPublisher
from rclpy.node import Node

# The replay timer: frames are published up to this late (the recorded spacing is kept).
_TICK_S = 0.002
# One tick publishes for at most this long, so the executor still serves the node.
_TICK_BUDGET_S = 0.05
# Longest wait for wait_for_consumers subscriptions on a topic's first frame.
_MATCH_TIMEOUT_S = 60.0


class ShmPlayerNode(Node):
    """Publishes every frame of the bag through ShmPublisher; exits at the end (or loops)."""

    def __init__(self, **kwargs):
        super().__init__('shm_player', **kwargs)
        self.finished = False
        self.exit_code = 0
        self._shm_publishers: Dict[str, Tuple[tuple, ShmPublisher]] = {}
        options = declare_options(self, PLAYER_NODE_OPTIONS)
        if not options['bag']:
            raise OptionError('bag is required: -p bag:=<bag directory or .mcap file>')
        self._options = options
        keep_large_buffers()
        self.replay = Replay(options['bag'], options['topics'], rate=options['rate'],
                             loop=options['loop'], start_offset_s=options['start_offset_s'])
        self._frames = self.replay.frames()
        self._next = None
        self._drain_deadline = None
        self.counts = {'published': 0, 'no_free_slot': 0}
        self._first_s = None  # monotonic time of the first frame published
        self._last_s = None
        self._late_max_s = 0.0
        self.get_logger().info(
            f'replaying {options["bag"]} ({len(self.replay.files)} file(s)) '
            f'topics={",".join(options["topics"])} rate={options["rate"] or "max"} '
            f'loop={options["loop"]} start_offset_s={options["start_offset_s"]} '
            f'policy={options["policy"]} topic_prefix={options["topic_prefix"] or "-"}')
        self._tick_timer = self.create_timer(_TICK_S, self._on_tick)
        self._status_timer = self.create_timer(options['status_period_s'], self._on_status)

    def _on_tick(self) -> None:
        started = time.monotonic()
        while not self.finished and time.monotonic() - started < _TICK_BUDGET_S:
            if self._drain_deadline is not None:
                self._drain()
                return
            if self._next is None:
                try:
                    self._next = next(self._frames, None)
                except BagError as error:
                    self._stop(1, f'replay stopped: {error.detail}')
                    return
                if self._next is None:
                    self._drain()
                    return
            if self._next.due > time.monotonic():
                return
            self._publish(self._next)
            self._next = None

    def _drain(self) -> None:
        # The end of the bag: readers get the last frames before the segments go.
        if self._drain_deadline is None:
            self._drain_deadline = time.monotonic() + \
                self._options['release_timeout_s'] * self._options['slots']
        if time.monotonic() >= self._drain_deadline or all(
                publisher.frame_producer.all_released()
                for _, publisher in self._shm_publishers.values()):
            self._stop(0, '')

    def _stop(self, exit_code: int, line: str) -> None:
        self.finished = True
        self.exit_code = exit_code
        if line:
            self.get_logger().error(line)

    def _publisher(self, frame: Frame) -> ShmPublisher:
        key = (frame.frame.array.dtype.str, frame.frame.array.shape, frame.frame.encoding)
        known = self._shm_publishers.get(frame.topic)
        if known is not None and known[0] == key:
            return known[1]
        options = self._options
        matched = 0
        if known is not None:  # a new frame size or type: a new segment, as producers do
            matched = known[1].subscription_count()
            known[1].close()
        publisher = ShmPublisher(
            self, options['topic_prefix'] + frame.topic, dtype=key[0], shape=key[1],
            slots=options['slots'], policy=options['policy'], backend=options['backend'],
            encoding=key[2], checksum=options['checksum'],
            release_timeout_s=options['release_timeout_s'],
            required_readers=options['wait_for_consumers'] if options['policy'] == 'reliable'
            else 0, diagnostics_period_s=options['diagnostics_period_s'])
        self._shm_publishers[frame.topic] = (key, publisher)
        wanted = max(matched, options['wait_for_consumers'])
        if wanted:
            waited = time.monotonic()
            if not publisher.wait_for_subscriptions(wanted, _MATCH_TIMEOUT_S):
                self.get_logger().warning(f'{publisher.topic}: {wanted} subscription(s) did '
                                          f'not match within {_MATCH_TIMEOUT_S} s; replaying')
            self.replay.delay(time.monotonic() - waited)
        return publisher

    def _publish(self, frame: Frame) -> None:
        waited = time.monotonic()
        publisher = self._publisher(frame)
        waited = time.monotonic() - waited  # for subscriptions: not lateness of the replay
        timeout = self._options['release_timeout_s'] \
            if self._options['policy'] == 'reliable' else 0.0
        try:
            publisher.publish(frame.frame.array, stamp_ns=frame.frame.stamp_ns or None,
                              frame_id=frame.frame.frame_id, timeout_s=timeout)
        except NoFreeSlot:
            self.counts['no_free_slot'] += 1
            return
        self.counts['published'] += 1
        now = time.monotonic()
        self._late_max_s = max(self._late_max_s, now - waited - frame.due)
        self._first_s = now if self._first_s is None else self._first_s
        self._last_s = now

    def _counts(self) -> str:
        timing = {}
        if self._first_s is not None:
            timing = {'elapsed_s': f'{self._last_s - self._first_s:.3f}',
                      'late_max_ms': f'{self._late_max_s * 1e3:.1f}'}
        return ' '.join(f'{key}={value}' for key, value in
                        {**self.counts, **self.replay.counts, **timing}.items())

    def _on_status(self) -> None:
        self.get_logger().info('status: ' + self._counts())

    def shutdown(self) -> None:
        """Wait for reliable readers' acknowledgements, log the summary, unlink the segments."""
        publishers = [publisher for _, publisher in self._shm_publishers.values()]
        self._shm_publishers = {}
        try:
            for publisher in publishers:
                publisher.wait_for_all_acked()
            self.get_logger().info('summary: ' + self._counts())
        finally:
            for publisher in publishers:
                publisher.close()


def main(args=None):
    """Entry point of `ros2 run jetson_shm_ros shm_player`."""
    raise SystemExit(run_node(ShmPlayerNode, args))


if __name__ == '__main__':
    main()
