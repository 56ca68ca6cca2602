"""
Replay: a bag's frames with the time each is due, at a rate, from an offset, looped (no ROS).

Frame k of the bag is due at start + (log_time_k - log_time_0 - offset) / rate on the
monotonic clock, so the recorded spacing is kept (a late frame does not shift the ones after
it) and rate 0 makes every frame due at once. Messages of types that are not frames (not
sensor_msgs/Image or a typed MultiArray) are skipped and counted, as are topics not asked for.
"""

from collections import Counter
import time
from typing import Callable, Iterator, NamedTuple, Optional, Sequence

from jetson_shm_ros.core.errors import BagError
from jetson_shm_ros.record.bag_reader import BagReader
from jetson_shm_ros.record.messages import decode, Decoded, SCHEMAS

NS_PER_S = 10**9


class Frame(NamedTuple):
    """One frame to publish and when."""

    due: float  # monotonic seconds
    topic: str
    frame: Decoded
    log_time_ns: int


class Replay:
    """
    Frames of a bag, paced.

    :param path: bag directory or .mcap file
    :param topics: recorded topics to replay; empty or ['*']: all
    :param rate: speed factor; 0: as fast as they can be published
    :param loop: start again at the end
    :param start_offset_s: skip this much of the start of the bag
    :param clock: monotonic seconds (tests pass their own)
    :raises BagError: when the bag cannot be found
    """

    def __init__(self, path: str, topics: Sequence[str] = (), *, rate: float = 1.0,
                 loop: bool = False, start_offset_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        wanted = [topic for topic in topics if topic != '*']
        self._reader = BagReader(path, wanted)
        self._rate = rate
        self._loop = loop
        self._offset_ns = int(start_offset_s * NS_PER_S)
        self._clock = clock
        self.counts: Counter = Counter(frames=0, skipped_type=0, loops=0)
        self._shift = 0.0

    @property
    def files(self) -> list:
        """Return the bag's .mcap files."""
        return list(self._reader.files)

    def delay(self, seconds: float) -> None:
        """Move every frame not yet yielded `seconds` later (e.g. after waiting for readers)."""
        self._shift += seconds

    def frames(self) -> Iterator[Frame]:
        """
        Yield every frame with its due time, pass after pass when looping.

        :raises BagError: for a truncated or corrupted bag (after its good frames), or a
            message of a frame type whose bytes do not decode
        """
        while True:
            yielded = 0
            for frame in self._one_pass():
                yielded += 1
                yield frame
            if not self._loop or not yielded:
                return
            self.counts['loops'] += 1

    def _one_pass(self) -> Iterator[Frame]:
        first: Optional[int] = None
        start = self._clock()
        self._shift = 0.0
        for message in self._reader.messages():
            if message.kind not in SCHEMAS:
                self.counts['skipped_type'] += 1
                continue
            if first is None:
                first = message.log_time_ns + self._offset_ns
            if message.log_time_ns < first:
                continue
            due = start + self._shift if not self._rate else \
                start + self._shift + (message.log_time_ns - first) / NS_PER_S / self._rate
            try:
                decoded = decode(message.kind, message.data)
            except BagError as error:
                raise BagError(error.reason, f'{message.topic} at {message.log_time_ns} ns: '
                               f'{error.detail}') from None
            if not decoded.stamp_ns and message.publish_time_ns != message.log_time_ns:
                # A tensor has no header: shm_recorder kept its stamp as the publish time.
                decoded = decoded._replace(stamp_ns=message.publish_time_ns)
            self.counts['frames'] += 1
            yield Frame(due, message.topic, decoded, message.log_time_ns)
