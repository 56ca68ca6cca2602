"""
The transports under test: how the benchmark publisher sends frame k and how a subscriber sees it.

Every frame is a mono8 image of `side` x `side` bytes. A publisher's send(k) returns t0, the
CLOCK_MONOTONIC time (shared by all processes of the machine) at which the frame was handed to
the transport; a subscriber calls on_frame(k, t1, ok, arrived) once it holds the frame
(hand-over) or has read and checked every byte of it (end to end, throughput). To split a
frame's time, a publisher keeps sent_ns (the time its send returned, the message handed to the
RMW) and a subscriber passes arrived (the time its transport's callback was entered).

- ros_msg: the payload in a sensor_msgs/Image, filled from an array as cv_bridge does (from
  device memory on a GPU: users copy it down first); the subscriber reads it in place
  (np.frombuffer), or moves it to the device on a GPU, and checks a checksum computed ahead.
- descriptor: an empty DataDescriptor, no payload: the floor that the RMW itself sets.
- cpu, pinned, pinned_copy, cuda_ipc: ShmPublisher / ShmSubscription (the public API, with
  its defaults but for the reliable policy); the producer writes into a loaned slot before t0
  (writing the frame is the producer's work, not the transport's).
- pinned_publish: the pinned transport for a frame that is already in device memory:
  `publish(device_array)`, t0 taken before the call, so the copy into the pinned slot (one pass
  over the host link) is the transport's; the producer's checksum reads the device source.
- cpu_sum: the cpu transport as iceoryx2 is measured: no checksum from the producer, the
  subscriber's callback sums every byte (and compares with the checksum known ahead).
- iceoryx2: iceoryx2's own publish-subscribe with an event wake-up (bench/iceoryx.py), the
  subscriber summing every byte: the peer to compare with.

Every shared-memory publisher (and iceoryx2's) also keeps pub_side_ns: loan -> fill -> commit
(send) returned, for the frame just sent; ros_msg and descriptor keep building their message
and rclpy's publish returned (an empty descriptor's: the publisher side's floor in rclpy).
"""

import time

from jetson_shm_ros.core.payload import checksum_words
import numpy as np

SLOTS = 4
# transport -> (backend, mode) of the shared-memory ones.
SHM = {'cpu': ('cpu', 'zero_copy'), 'cpu_sum': ('cpu', 'zero_copy'),
       'pinned': ('pinned', 'zero_copy'), 'pinned_copy': ('pinned', 'copy'),
       'pinned_publish': ('pinned', 'zero_copy'), 'cuda_ipc': ('cuda_ipc', 'zero_copy')}
TRANSPORTS = ('ros_msg', 'descriptor', 'cpu', 'pinned', 'pinned_copy', 'pinned_publish',
              'cuda_ipc', 'cpu_sum', 'iceoryx2')
# Not in a run where `import iceoryx2` fails.
OPTIONAL = ('iceoryx2',)
# Transports whose subscriber does not use the ROS executor (left out of executor phases).
NO_EXECUTOR = ('iceoryx2',)
GPU_ONLY = ('pinned', 'pinned_copy', 'pinned_publish', 'cuda_ipc')
MEASURES = ('handover', 'e2e', 'throughput')


def data_qos():
    """Reliable, keep-last(SLOTS), volatile: what the shared-memory transports use too."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SLOTS,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


class GpuChecksum:
    """The library's checksum kernel over device arrays (what a GPU consumer of ros_msg runs)."""

    def __init__(self):
        from jetson_shm_ros.core import gpu_backend
        self._backend = gpu_backend.make_backend('cuda_ipc', 'zero_copy')

    def __call__(self, device_array) -> int:
        """Return the checksum of a contiguous CuPy array (its writes already finished)."""
        return self._backend.checksum_device(device_array.data.ptr, device_array.nbytes)

    def close(self) -> None:
        """Release the kernels' backend."""
        self._backend.close()


class Sources:
    """Two random frames per size (host, and device on a GPU) and their checksums."""

    def __init__(self, side: int, on_gpu: bool, seed: int = 10):
        rng = np.random.default_rng(seed + side)
        self.host = [rng.integers(0, 256, (side, side), dtype=np.uint8) for _ in range(2)]
        self.checksums = [checksum_words(frame.reshape(-1)) for frame in self.host]
        self.device = None
        if on_gpu:
            import cupy
            self.device = [cupy.asarray(frame) for frame in self.host]

    def pick(self, count: int) -> int:
        """Alternate, so a transport's consecutive frames differ."""
        return count % 2


class RosMsgPublisher:
    """sensor_msgs/Image filled from an array."""

    def __init__(self, node, topic: str, side: int, sources: Sources, measure: str):
        from sensor_msgs.msg import Image
        self._image, self._side, self._sources = Image, side, sources
        self._sent = 0
        self._pub = node.create_publisher(Image, topic, data_qos())
        self.pub_side_ns = self.sent_ns = 0

    def matched(self) -> bool:
        """Tell whether the subscriber was discovered."""
        return self._pub.get_subscription_count() > 0

    def send(self, k: int) -> int:
        """Build the message from the source array and publish it."""
        index = self._sources.pick(self._sent)
        self._sent += 1
        began = time.perf_counter_ns()
        t0 = time.monotonic_ns()
        if self._sources.device is not None:
            host = self._sources.device[index].get()  # a GPU frame must come down first
        else:
            host = self._sources.host[index]
        msg = self._image(height=self._side, width=self._side, encoding='mono8',
                          step=self._side)
        msg.header.frame_id = f'{k}:{self._sources.checksums[index]}'
        msg.data.frombytes(host.reshape(-1))
        self._pub.publish(msg)
        self.sent_ns = time.monotonic_ns()
        self.pub_side_ns = time.perf_counter_ns() - began
        return t0

    def close(self) -> None:
        """Nothing beyond the node's own cleanup."""


class DescriptorPublisher:
    """An empty DataDescriptor: only the RMW's own cost."""

    def __init__(self, node, topic: str, side: int, sources: Sources, measure: str):
        from jetson_shm_ros_interfaces.msg import DataDescriptor
        self._msg = DataDescriptor
        self._pub = node.create_publisher(DataDescriptor, topic, data_qos())
        self.pub_side_ns = self.sent_ns = 0

    def matched(self) -> bool:
        """Tell whether the subscriber was discovered."""
        return self._pub.get_subscription_count() > 0

    def send(self, k: int) -> int:
        """Publish an empty descriptor that names frame k (the publisher side's floor)."""
        began = time.perf_counter_ns()
        t0 = time.monotonic_ns()
        msg = self._msg()
        msg.header.frame_id = str(k)
        self._pub.publish(msg)
        self.sent_ns = time.monotonic_ns()
        self.pub_side_ns = time.perf_counter_ns() - began
        return t0

    def close(self) -> None:
        """Nothing beyond the node's own cleanup."""


class ShmFramePublisher:
    """ShmPublisher: the producer writes into a loaned slot, leaving the block publishes."""

    def __init__(self, node, topic: str, side: int, sources: Sources, measure: str,
                 transport: str, shm_name: str):
        from jetson_shm_ros import ShmPublisher
        from jetson_shm_ros.core.errors import NoFreeSlot
        backend, mode = SHM[transport]
        self._sources, self._no_free_slot = sources, NoFreeSlot
        self._sent = self.no_free_slot = 0
        # Hand-over measures the hand-over alone: no checksum to compute or to check.
        # cpu_sum: no checksum either; its subscriber sums the bytes itself.
        self._pub = ShmPublisher(node, topic, dtype='uint8', shape=[side, side], slots=SLOTS,
                                 policy='reliable', required_readers=1, backend=backend,
                                 mode=mode, encoding='mono8', shm_name=shm_name,
                                 checksum=measure != 'handover' and transport != 'cpu_sum',
                                 # The subscriber subscribes after this, when told to; the
                                 # phase's handshake waits for the match (5 s a publisher
                                 # otherwise, two thirds of a GPU run's length).
                                 discovery_timeout_s=0.0)
        # Only end to end rewrites the frame each time (its checksum must be the new bytes');
        # cpu_sum, like iceoryx2, also in throughput (its subscriber checks the bytes sent).
        self._with_sum = transport == 'cpu_sum'
        self._fill = measure == 'e2e' or (self._with_sum and measure == 'throughput')
        self._gpu = backend != 'cpu'
        self._publish_device = transport == 'pinned_publish'
        self.pub_side_ns = self.sent_ns = 0

    def matched(self) -> bool:
        """Tell whether the subscriber was discovered."""
        return self._pub.subscription_count() > 0

    def send(self, k: int):
        """Fill a loaned slot (not timed), then publish it; None: no free slot, retry."""
        index = self._sources.pick(self._sent)
        self._sent += 1
        frame_id = f'{k}:{self._sources.checksums[index]}' if self._with_sum else str(k)
        began = time.perf_counter_ns()
        if self._publish_device:
            return self._publish(index, frame_id, began)
        try:
            with self._pub.loan(frame_id=frame_id) as frame:
                if self._fill:
                    frame[...] = (self._sources.device if self._gpu
                                  else self._sources.host)[index]
                if self._gpu:
                    import cupy
                    cupy.cuda.get_current_stream().synchronize()
                t0 = time.monotonic_ns()
        except self._no_free_slot:  # every slot still held by the subscriber: retry
            self.no_free_slot += 1
            return None
        self.sent_ns = time.monotonic_ns()
        self.pub_side_ns = time.perf_counter_ns() - began
        return t0

    def _publish(self, index: int, frame_id: str, began: int):
        """publish() of the device source: the copy into the slot is inside t0."""
        import cupy
        t0 = time.monotonic_ns()
        try:
            self._pub.publish(self._sources.device[index], frame_id=frame_id)
        except self._no_free_slot:
            self.no_free_slot += 1
            return None
        cupy.cuda.get_current_stream().synchronize()
        self.sent_ns = time.monotonic_ns()
        self.pub_side_ns = time.perf_counter_ns() - began
        return t0

    def close(self) -> None:
        """Unlink the segment."""
        self._pub.close()


def make_publisher(node, transport: str, topic: str, side: int, sources: Sources,
                   measure: str, shm_name: str):
    """Build the publisher side of one transport."""
    if transport == 'ros_msg':
        return RosMsgPublisher(node, topic, side, sources, measure)
    if transport == 'descriptor':
        return DescriptorPublisher(node, topic, side, sources, measure)
    if transport == 'iceoryx2':
        from bench.iceoryx import IceoryxPublisher
        return IceoryxPublisher(topic, side, sources, measure)
    return ShmFramePublisher(node, topic, side, sources, measure, transport, shm_name)


class RosMsgSubscription:
    """Image in, read in place (or moved to the device), checksum compared."""

    def __init__(self, node, topic: str, measure: str, on_frame, gpu_checksum):
        from sensor_msgs.msg import Image
        self._check = measure != 'handover'
        self._on_frame, self._gpu_checksum = on_frame, gpu_checksum
        self._sub = node.create_subscription(Image, topic, self._callback, data_qos())

    def _callback(self, msg) -> None:
        arrived = time.monotonic_ns()
        frame, _, want = msg.header.frame_id.partition(':')
        data = np.frombuffer(msg.data, dtype=np.uint8)
        if self._gpu_checksum is not None:
            import cupy
            data = cupy.asarray(data)
            cupy.cuda.get_current_stream().synchronize()
            ok = not self._check or self._gpu_checksum(data) == int(want)
        else:
            ok = not self._check or checksum_words(data) == int(want)
        self._on_frame(int(frame), time.monotonic_ns(), ok, arrived)

    def counts(self) -> dict:
        """No library counters for a plain message."""
        return {}

    def close(self, node) -> None:
        """Destroy the subscription."""
        node.destroy_subscription(self._sub)


class DescriptorSubscription:
    """The empty descriptor arrives: nothing else to do."""

    def __init__(self, node, topic: str, measure: str, on_frame, gpu_checksum):
        from jetson_shm_ros_interfaces.msg import DataDescriptor
        self._on_frame = on_frame
        self._sub = node.create_subscription(DataDescriptor, topic, self._callback, data_qos())

    def _callback(self, msg) -> None:
        now = time.monotonic_ns()
        self._on_frame(int(msg.header.frame_id), now, True, now)

    def counts(self) -> dict:
        """No library counters for a plain message."""
        return {}

    def close(self, node) -> None:
        """Destroy the subscription."""
        node.destroy_subscription(self._sub)


class ShmFrameSubscription:
    """ShmSubscription: verify=True checks every byte before the callback; False reads none."""

    def __init__(self, node, topic: str, measure: str, on_frame, transport: str):
        from jetson_shm_ros import ShmSubscription
        backend, mode = SHM[transport]
        self._on_frame = on_frame
        self._sum = transport == 'cpu_sum' and measure != 'handover'
        self._sub = ShmSubscription(node, topic, self._callback, backend=backend, mode=mode,
                                    verify=measure != 'handover' and not self._sum,
                                    queue_depth=SLOTS)
        # The descriptor's arrival: the subscription's own callback calls handle_descriptor.
        self._arrived = 0
        handle = self._sub.handle_descriptor

        def arrived_then_handle(msg):
            self._arrived = time.monotonic_ns()
            return handle(msg)
        self._sub.handle_descriptor = arrived_then_handle

    def _callback(self, frame, info) -> None:
        k, _, want = info.frame_id.partition(':')
        ok = not self._sum or checksum_words(frame.reshape(-1)) == int(want)
        self._on_frame(int(k), time.monotonic_ns(), ok, self._arrived)

    def counts(self) -> dict:
        """Return the library's counters (received, verified, dropped, invalid, ...)."""
        return dict(self._sub.counts)

    def close(self, node) -> None:
        """Unmap the segment."""
        self._sub.close()


def make_subscription(node, transport: str, topic: str, measure: str, on_frame,
                      gpu_checksum):
    """Build the subscriber side of one transport."""
    if transport == 'ros_msg':
        return RosMsgSubscription(node, topic, measure, on_frame, gpu_checksum)
    if transport == 'descriptor':
        return DescriptorSubscription(node, topic, measure, on_frame, gpu_checksum)
    if transport == 'iceoryx2':
        from bench.iceoryx import IceoryxSubscription
        return IceoryxSubscription(topic, measure, on_frame)
    return ShmFrameSubscription(node, topic, measure, on_frame, transport)
