"""What the two image bridges share: the Image QoS, stamps, and counted, rate-limited refusals."""

from collections import Counter
import time
from typing import Dict

from builtin_interfaces.msg import Time
from jetson_shm_ros.ros.diagnostics import EndpointDiagnostics, HardwareId, OK, Report, WARN
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

NS_PER_S = 10**9
# A hostile sender may send thousands of bad images: each reason is logged at once the first
# time, then at most once per this many seconds (the counters still count every one).
REFUSAL_LOG_PERIOD_S = 1.0


def image_subscription_qos(depth: int) -> QoSProfile:
    """
    Build the QoS of image_to_shm's Image subscription: sensor data QoS.

    Best effort matches every camera driver, reliable or best effort, and never makes the
    driver resend or wait for us; keep-last with a small depth keeps only the newest images
    when we fall behind, which is what a live camera stream wants.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def image_publisher_qos(depth: int) -> QoSProfile:
    """
    Build the QoS of shm_to_image's Image publisher.

    Reliable so that every kind of subscriber matches (rviz2 and `ros2 bag record` ask for
    reliable by default, and a reliable writer also serves best-effort readers); keep-last with
    a small depth so a slow or remote reader loses old images instead of slowing us down.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def stamp_to_ns(stamp: Time) -> int:
    """Return a header stamp in nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_stamp(stamp_ns: int) -> Time:
    """Return nanoseconds as a header stamp."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


class Refusals:
    """Counts refused inputs by reason and logs each reason at a bounded rate."""

    def __init__(self, node: Node, what: str):
        self._node = node
        self._logger = node.get_logger()
        self._what = what
        self.by_reason: Dict[str, int] = Counter()
        self._last_logged: Dict[str, float] = {}
        self._reported = 0
        self._diagnostics = None

    def start_diagnostics(self, period_s: float, about: HardwareId) -> None:
        """
        Report the refusals on /diagnostics every `period_s` (0: not at all).

        :param about: the status's hardware_id: the input topic or segment(s), or a function
        """
        if period_s > 0:
            self._diagnostics = EndpointDiagnostics(
                self._node, f'{self._node.get_name()}: refused inputs ({self._what})', about,
                period_s, self._report)

    def _report(self) -> Report:
        total = self.total
        fresh, self._reported = total - self._reported, total
        values = {'refused': total, **{f'refused.{reason}': count
                                       for reason, count in sorted(self.by_reason.items())}}
        if fresh:
            return WARN, f'{fresh} input(s) refused this period', values
        return OK, 'nothing refused this period', values

    @property
    def total(self) -> int:
        """Return how many inputs were refused, all reasons together."""
        return sum(self.by_reason.values())

    def refuse(self, reason: str, detail: str) -> None:
        """Count one refused input; log it unless this reason was logged just now."""
        self.by_reason[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -REFUSAL_LOG_PERIOD_S) >= REFUSAL_LOG_PERIOD_S:
            self._last_logged[reason] = now
            self._logger.warning(f'refused {self._what} ({reason}): {detail} '
                                 f'[{self.by_reason[reason]} refused for this reason so far]')

    def counts(self) -> str:
        """Return e.g. 'refused=3 refused_bad_step=2 refused_data_too_short=1'."""
        return ' '.join([f'refused={self.total}'] + [
            f'refused_{reason}={count}' for reason, count in sorted(self.by_reason.items())])


def counts_line(counts: Dict[str, int], refusals: 'Refusals') -> str:
    """Return the status and summary line's fields: 'key=N ...' and the refusals by reason."""
    return ' '.join(f'{key}={value}' for key, value in counts.items()) + ' ' + \
        refusals.counts()
