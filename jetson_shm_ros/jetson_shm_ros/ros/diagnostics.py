"""
/diagnostics for each ShmPublisher and ShmSubscription (diagnostic_msgs/DiagnosticArray).

Every period an endpoint publishes one DiagnosticStatus: level OK/WARN/ERROR with a message,
and key-values for what an operator asks first: which segment and backend, how many frames,
how many dropped or invalid (by reason), how many bytes were read in place or copied, and a
latency over the period (p50/p99): a publisher's from the commit of a frame until the RMW took
its descriptor, a subscription's from the header stamp until its callback returned (stamps of
the producer's clock). `ros2 topic echo /diagnostics`
shows it; rqt_robot_monitor and diagnostic_aggregator read it.
"""

import random
import time
from typing import Callable, Dict, List, Tuple, Union

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
from rclpy.node import Node

DIAGNOSTICS_TOPIC = '/diagnostics'
OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
# Latencies kept per period at most: enough for p99 at 1 kHz, bounded whatever the rate.
MAX_LATENCY_SAMPLES = 4096

Report = Tuple[int, str, Dict[str, object]]
# A status's hardware_id: fixed, or asked each period (a subscription learns its segments).
HardwareId = Union[str, Callable[[], str]]


class LatencyWindow:
    """Header-stamp latencies of one period, summarized as p50/p99 in milliseconds."""

    def __init__(self):
        self._samples: List[int] = []

    def add(self, latency_ns: int) -> None:
        """Record one latency (bounded: later samples of a long period replace random ones)."""
        if len(self._samples) < MAX_LATENCY_SAMPLES:
            self._samples.append(latency_ns)
        else:
            self._samples[random.randrange(MAX_LATENCY_SAMPLES)] = latency_ns

    def take(self) -> Dict[str, object]:
        """Return {'latency_p50_ms', 'latency_p99_ms'} of the period (or '-') and start anew."""
        samples, self._samples = self._samples, []
        if not samples:
            return {'latency_p50_ms': '-', 'latency_p99_ms': '-'}
        p50, p99 = np.percentile(np.asarray(samples, dtype=np.float64) / 1e6, [50, 99])
        return {'latency_p50_ms': f'{p50:.3f}', 'latency_p99_ms': f'{p99:.3f}'}


class RateMeter:
    """Frames per second between two reports."""

    def __init__(self):
        self._last = (time.monotonic(), 0)

    def rate(self, frames: int) -> float:
        """Return the rate since the last call, given the running frame count."""
        now = time.monotonic()
        then, before = self._last
        self._last = (now, frames)
        return (frames - before) / max(now - then, 1e-9)


class EndpointDiagnostics:
    """Publishes one endpoint's status on /diagnostics every `period_s` seconds."""

    def __init__(self, node: Node, name: str, hardware_id: HardwareId, period_s: float,
                 report: Callable[[], Report], callback_group=None):
        """
        Start publishing.

        :param name: the status name, e.g. 'camera_node: shm publisher /camera/frames'
        :param hardware_id: the segment name(s) the status is about, or a function giving them
        :param report: returns (level, message, key-values) for the period that just ended
        """
        self._node = node
        self._name = name
        self._hardware_id = hardware_id
        self._report = report
        self._publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._timer = node.create_timer(period_s, self._on_timer, callback_group=callback_group)

    def status(self) -> DiagnosticStatus:
        """Build the status of the period that just ended."""
        level, message, values = self._report()
        hardware_id = self._hardware_id() if callable(self._hardware_id) else self._hardware_id
        return DiagnosticStatus(
            level=level, name=self._name, message=message, hardware_id=hardware_id,
            values=[KeyValue(key=key, value=str(value)) for key, value in values.items()])

    def _on_timer(self) -> None:
        array = DiagnosticArray(status=[self.status()])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)

    def close(self) -> None:
        """Stop publishing (idempotent)."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._node.destroy_publisher(self._publisher)
            self._timer = None
