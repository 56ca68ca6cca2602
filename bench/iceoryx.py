"""
iceoryx2 as a peer transport: the best shared-memory IPC there is, in the same closed loop.

A bench-only dependency (PyPI `iceoryx2`, requirements/bench.txt): the transport is left out
of a run where it is not importable. One publish-subscribe service per phase and transport
(a slice of bytes, a user header with the frame number and its checksum) and one event
service: the publisher loans a sample, fills every byte, stamps t0, sends, notifies; the
subscriber waits on a listener in its own thread (the call releases the GIL), takes the
sample, reads every byte (end to end, throughput) or none (hand-over), stamps t1 and acks on
the bench's ROS topic like every other transport. No ROS and no DDS on the data path.
"""

import ctypes
import threading
import time

from jetson_shm_ros.core.payload import checksum_words
import numpy as np

WAIT_MS = 50


def available() -> bool:
    """Tell whether the iceoryx2 Python bindings import here."""
    try:
        import iceoryx2  # noqa: F401
    except ImportError:
        return False
    return True


class _Header(ctypes.Structure):
    _fields_ = [('k', ctypes.c_uint64), ('checksum', ctypes.c_uint64)]


_NODES = {}


def _node():
    """One iceoryx2 node per process."""
    import iceoryx2 as iox2
    if 'node' not in _NODES:
        iox2.set_log_level_from_env_or(iox2.LogLevel.Error)
        _NODES['node'] = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
    return _NODES['node']


def _services(topic: str):
    import iceoryx2 as iox2
    node = _node()
    name = iox2.ServiceName.new('jsr_bench/' + topic)
    data = node.service_builder(name).publish_subscribe(iox2.Slice[ctypes.c_uint8]) \
        .user_header(_Header).max_publishers(1).max_subscribers(2) \
        .subscriber_max_buffer_size(4).history_size(0).open_or_create()
    event = node.service_builder(iox2.ServiceName.new('jsr_bench/' + topic + '/event')) \
        .event().open_or_create()
    return data, event


def _as_array(payload) -> np.ndarray:
    return np.ctypeslib.as_array(
        (ctypes.c_uint8 * payload.number_of_elements).from_address(payload.data_ptr))


class IceoryxPublisher:
    """Loan a sample, fill every byte, send, notify."""

    def __init__(self, topic: str, side: int, sources, measure: str):
        import iceoryx2 as iox2
        self._data, self._event = _services(topic)
        self._size, self._sources = side * side, sources
        self._fill = measure == 'e2e' or measure == 'throughput'
        self._publisher = self._data.publisher_builder().initial_max_slice_len(self._size) \
            .allocation_strategy(iox2.AllocationStrategy.Static).create()
        self._notifier = self._event.notifier_builder().create()
        self._sent = 0
        self.pub_side_ns = self.sent_ns = 0

    def matched(self) -> bool:
        """Tell whether a subscriber is connected."""
        return self._data.dynamic_config.number_of_subscribers > 0

    def send(self, k: int) -> int:
        """Fill a loaned sample (timed only in pub_side_ns), then send it; return t0."""
        index = self._sources.pick(self._sent)
        self._sent += 1
        began = time.perf_counter_ns()
        sample = self._publisher.loan_slice_uninit(self._size)
        if self._fill:
            _as_array(sample.payload())[:] = self._sources.host[index].reshape(-1)
        header = sample.user_header().contents
        header.k, header.checksum = k, self._sources.checksums[index]
        sample = sample.assume_init()
        t0 = time.monotonic_ns()
        sample.send()
        self._notifier.notify()
        self.sent_ns = time.monotonic_ns()
        self.pub_side_ns = time.perf_counter_ns() - began
        return t0

    def close(self) -> None:
        """Drop the ports (the services go with their last port)."""
        self._publisher = self._notifier = None


class IceoryxSubscription:
    """A listener thread: wait, take each sample, read every byte (or none), ack."""

    def __init__(self, topic: str, measure: str, on_frame):
        self._data, self._event = _services(topic)
        self._subscriber = self._data.subscriber_builder().create()
        self._listener = self._event.listener_builder().create()
        self._check = measure != 'handover'
        self._on_frame = on_frame
        self._counts = {'received': 0, 'bad': 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import iceoryx2 as iox2
        wait = iox2.Duration.from_millis(WAIT_MS)
        while not self._stop.is_set():
            self._listener.timed_wait(wait)
            while True:
                sample = self._subscriber.receive()
                if sample is None:
                    break
                arrived = time.monotonic_ns()
                header = sample.user_header().contents
                ok = True
                if self._check:
                    ok = checksum_words(_as_array(sample.payload())) == header.checksum
                t1 = time.monotonic_ns()
                k = int(header.k)
                del sample  # give the sample back before the ack paces the next frame
                self._counts['received'] += 1
                self._counts['bad'] += int(not ok)
                self._on_frame(k, t1, ok, arrived)

    def counts(self) -> dict:
        """Return the samples received, and those whose bytes did not sum to the checksum."""
        return dict(self._counts)

    def close(self, node=None) -> None:
        """Stop the listener thread and drop the ports."""
        self._stop.set()
        self._thread.join(timeout=5 * WAIT_MS / 1000 + 1.0)
        self._subscriber = self._listener = None
