"""
WriteQueue: encoded messages handed to a BagWriter on a thread of its own (no ROS needed).

The subscription callback copies a frame out of its slot and returns at once, so a disk
that stalls for a moment (page cache write-back) never holds a slot or the executor; the
queue absorbs the stall up to `max_bytes`, past which a message is refused and counted
(`counts['queue_full']`) rather than memory growing without bound, unless the caller
asks to wait for room (a reliable producer: the held slot passes the back-pressure on).
"""

from collections import Counter, deque
import threading
from typing import Optional

from jetson_shm_ros.record.bag_writer import BagWriter

DEFAULT_QUEUE_BYTES = 512 * 2**20


class WriteQueue:
    """
    Own a BagWriter and feed it from a background thread.

    :param writer: the bag to write into; closed by close()
    :param max_bytes: most bytes of messages waiting for the disk
    """

    def __init__(self, writer: BagWriter, max_bytes: int = DEFAULT_QUEUE_BYTES):
        self.writer = writer
        self._max_bytes = max_bytes
        self._items: deque = deque()
        self._queued_bytes = 0
        self._closing = False
        self._condition = threading.Condition()
        self.counts: Counter = Counter(queued=0, written=0, queue_full=0, not_written=0)
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._run, name='bag-writer', daemon=True)
        self._thread.start()

    @property
    def error(self) -> Optional[str]:
        """Return the writer's one-line failure, or None."""
        return self.writer.error

    @property
    def accepting(self) -> bool:
        """Tell whether messages are still taken (no failure, no byte limit reached)."""
        return self.writer.accepting and not self._closing

    def put(self, topic: str, kind: str, log_time_ns: int, data: bytes,
            publish_time_ns: int = 0, wait_s: float = 0.0) -> bool:
        """
        Queue one message for the disk.

        :param wait_s: when the queue is full, wait this long for room (back-pressure)
        :return: False when it was refused (queue full, closing, or the bag stopped)
        """
        with self._condition:
            if self._full(data) and wait_s > 0:
                self._condition.wait_for(lambda: not self._full(data) or not self.accepting,
                                         wait_s)
            if not self.accepting:
                self.counts['not_written'] += 1
                return False
            if self._full(data):
                self.counts['queue_full'] += 1
                return False
            self._items.append((topic, kind, log_time_ns, data, publish_time_ns))
            self._queued_bytes += len(data)
            self.peak_bytes = max(self.peak_bytes, self._queued_bytes)
            self.counts['queued'] += 1
            self._condition.notify()
        return True

    def _full(self, data: bytes) -> bool:
        return bool(self._items) and self._queued_bytes + len(data) > self._max_bytes

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._items and not self._closing:
                    self._condition.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                self._queued_bytes -= len(item[3])
                self._condition.notify_all()  # room for a waiting put()
            if self.writer.write(item[0], item[1], item[2], item[3], item[4]):
                self.counts['written'] += 1
            else:
                self.counts['not_written'] += 1

    def close(self) -> None:
        """Write everything queued, then close the bag (summary, fsync, metadata.yaml)."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join()
        self.writer.close()
