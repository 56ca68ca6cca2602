"""ShmRecorder: descriptor topics in, frames read in place, a rosbag2 MCAP bag out."""

from collections import Counter
import time
from typing import Optional, Sequence

from jetson_shm_ros.core.errors import ShmRosError
from jetson_shm_ros.record.bag_writer import BagWriter, DEFAULT_CHUNK_BYTES
from jetson_shm_ros.record.malloc import keep_large_buffers
from jetson_shm_ros.record.messages import encode
from jetson_shm_ros.record.write_queue import DEFAULT_QUEUE_BYTES, WriteQueue
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
from rclpy.node import Node

# Under a reliable producer, longest wait for room in the write queue before a frame is refused.
_RELIABLE_WAIT_S = 30.0


class ShmRecorder:
    """
    Record the frames of descriptor topics into a bag that `ros2 bag` and Foxglove open.

    Each topic is read through a ShmSubscription like any other: under the `latest` policy the
    recorder never slows the producer (a frame it cannot keep up with is dropped and counted);
    under `reliable` it is one more reader the producer waits for, and when the disk falls
    behind by more than `queue_bytes` it holds the slot until there is room, so the producer
    slows down instead of frames being lost. Every verified frame is
    copied out of its slot once (a GPU slot is copied to the host once) into a standard message
    (record.messages), and a writer thread puts it into the bag: the callback never waits for
    the disk. A frame is recorded on the topic it arrived on; a producer that restarts (a new
    segment) goes on being recorded, and a new frame size or encoding of the same message type
    too.

    `finished` becomes true once `max_frames` were recorded, the bag reached its byte limit, or
    writing failed (`error` then holds one line saying why and what the bag keeps).
    """

    def __init__(self, node: Node, topics: Sequence[str], output: str, *,
                 compression: str = 'none', max_frames: int = 0, max_bytes: int = 0,
                 split_bytes: int = 0, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 chunk_crc: bool = False,
                 backend: str = 'auto', verify: bool = True,
                 queue_depth: int = 16, queue_bytes: int = DEFAULT_QUEUE_BYTES,
                 diagnostics_period_s: float = 1.0):
        """
        Create the bag directory and subscribe to every topic.

        :param node: the node that owns the subscriptions
        :param topics: descriptor topics to record (each keeps its resolved name in the bag)
        :param output: the bag directory to create; it must not exist yet (or be empty)
        :param compression: 'none' or 'zstd' (MCAP chunk compression)
        :param max_frames: stop after this many frames in all; 0: until stopped
        :param max_bytes: stop once the bag would grow past this many bytes; 0: no limit
        :param split_bytes: start a new .mcap file past this size; 0: one file
        :param chunk_bytes: bytes of frames per MCAP chunk (the most a failing disk loses)
        :param chunk_crc: write chunk CRC32s (corruption detected on read; costs CPU)
        :param backend: where frames are mapped ('auto', 'cpu', 'pinned', 'cuda_ipc')
        :param verify: record only frames whose checksum (when sent) matched
        :param queue_depth: descriptor queue depth of each subscription
        :param queue_bytes: most bytes waiting for the disk before frames are refused
        :param diagnostics_period_s: of each subscription; 0 turns /diagnostics off
        :raises BagError: when the bag cannot be created (one line: where and why)
        """
        self._node = node
        keep_large_buffers()
        self._max_frames = max_frames
        self.counts: Counter = Counter(frames=0, recorded=0, refused=0)
        self._queue = WriteQueue(BagWriter(output, compression=compression,
                                           split_bytes=split_bytes, max_bytes=max_bytes,
                                           chunk_bytes=chunk_bytes, chunk_crc=chunk_crc),
                                 queue_bytes)
        self.path = self._queue.writer.path
        self._subscriptions = []
        self._consumers = {}
        self._first = None  # monotonic time of the first frame
        self._elapsed_s = None  # from the first frame to the bag closed (fsync included)
        self._dropped = 0
        self._closed = False
        try:
            for topic in topics:
                resolved = {}
                subscription = ShmSubscription(
                    node, topic,
                    lambda frame, info, resolved=resolved: self._record(
                        resolved['topic'], frame, info),
                    backend=backend, verify=verify, queue_depth=queue_depth,
                    diagnostics_period_s=diagnostics_period_s)
                resolved['topic'] = subscription.topic  # before any callback can run
                self._consumers[subscription.topic] = subscription.frame_consumer
                self._subscriptions.append(subscription)
        except BaseException:
            self.close()
            raise
        self.topics = [subscription.topic for subscription in self._subscriptions]

    @property
    def finished(self) -> bool:
        """Tell whether recording is over (frame or byte limit reached, or writing failed)."""
        return (self._max_frames and self.counts['recorded'] >= self._max_frames) or \
            not self._queue.accepting

    @property
    def error(self) -> Optional[str]:
        """Return why writing failed (one line), or None."""
        return self._queue.error

    @property
    def subscriptions(self) -> list:
        """Return the ShmSubscription of each topic."""
        return list(self._subscriptions)

    def _record(self, topic: str, frame, info: FrameInfo) -> None:
        self.counts['frames'] += 1
        if self._max_frames and self.counts['recorded'] >= self._max_frames:
            return
        host = frame if isinstance(frame, np.ndarray) else frame.get()  # GPU: one copy
        try:
            kind, data = encode(host, info.stamp_ns, info.frame_id, info.encoding)
        except ShmRosError as error:
            self.counts['refused'] += 1
            self._node.get_logger().warning(f'{topic}: frame not recorded: {error.detail}')
            return
        # A reliable producer waits for its readers: so does the recorder, for the disk.
        reliable = self._consumers[topic].segment_policy(info.shm_name) == 'reliable'
        if self._first is None:
            self._first = time.monotonic()
        if self._queue.put(topic, kind, time.time_ns(), data, info.stamp_ns,
                           wait_s=_RELIABLE_WAIT_S if reliable else 0.0):
            self.counts['recorded'] += 1

    def summary(self) -> str:
        """Return one line: frames seen, recorded, written to disk, dropped, bag path."""
        writer = self._queue.writer
        queue = self._queue.counts
        dropped = self._dropped + sum(s.counts['dropped'] for s in self._subscriptions)
        rate = ''
        if self._elapsed_s:
            rate = f'elapsed_s={self._elapsed_s:.3f} ' \
                f'write_mb_s={writer.bytes_written / self._elapsed_s / 1e6:.1f} '
        return (f'frames={self.counts["frames"]} recorded={self.counts["recorded"]} '
                f'on_disk={writer.message_count} bytes={writer.bytes_written} {rate}'
                f'queue_full={queue["queue_full"]} not_written={queue["not_written"]} '
                f'dropped={dropped} refused={self.counts["refused"]} '
                f'queue_peak_bytes={self._queue.peak_bytes} bag={self.path}')

    def close(self) -> None:
        """Unsubscribe, write what is queued and close the bag (idempotent)."""
        if self._closed:
            return
        self._closed = True
        subscriptions, self._subscriptions = self._subscriptions, []
        try:
            for subscription in subscriptions:
                self._dropped += subscription.counts['dropped']
                subscription.close()
        finally:
            self._queue.close()
            if self._first is not None:
                self._elapsed_s = time.monotonic() - self._first
