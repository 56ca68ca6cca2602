"""ShmPublisher: frames into a shared-memory segment, descriptors onto a ROS topic."""

from collections import Counter
from contextlib import contextmanager
import time
from typing import Optional, Sequence

from jetson_shm_ros.core.array_source import check_fits, device_view, HOST, host_view, location
from jetson_shm_ros.core.errors import NoFreeSlot
from jetson_shm_ros.core.frame_producer import FrameProducer, SlotWrite
from jetson_shm_ros.process import signals
from jetson_shm_ros.ros.arguments import publisher_arguments
from jetson_shm_ros.ros.conversion import MessageCache
from jetson_shm_ros.ros.diagnostics import LatencyWindow, OK, RateMeter, Report, WARN
from jetson_shm_ros.ros.endpoint import Endpoint
from jetson_shm_ros.ros.middleware import (
    describe_qos, descriptor_qos, descriptor_qos_overrides, rmw_name, wait_for_discovery)
from jetson_shm_ros_interfaces.msg import DataDescriptor
import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node

# How often a loan or publish with a timeout looks for a free slot again.
_RETRY_S = 0.0005
# How often wait_for_subscriptions() asks the middleware again.
_MATCH_POLL_S = 0.01
# The default discovery wait of a `reliable` publisher (constructor): a subscription that
# already ran matched within 1.4 s on a lightly loaded 2-core machine, and about 3 s with a
# load of 8 on it (doc/late-joiners.md).
RELIABLE_DISCOVERY_TIMEOUT_S = 5.0


def default_shm_name(node: Node, topic: str) -> str:
    """Derive a segment name from the node's full name and the topic: unique per endpoint."""
    parts = (node.get_fully_qualified_name() + '/' + topic).replace('~', '').split('/')
    return '/jetson_shm_ros.' + '.'.join(part for part in parts if part)


class ShmPublisher(Endpoint):
    """
    Publish frames through shared memory: the payload stays in a slot, DDS carries a descriptor.

    Two ways to send a frame:

    - ``with pub.loan() as frame:`` gives a writable view of the next slot (CuPy on a GPU
      backend, NumPy on the CPU). Leaving the block finishes the write (device synchronized,
      sequence even) and publishes the descriptor; an exception inside the block publishes
      nothing and leaves the slot reusable. Do not keep `frame` after the block.
    - ``pub.publish(array)`` copies a caller's array (NumPy, CuPy, or anything with DLPack or
      ``__cuda_array_interface__``, e.g. a torch tensor) into the next slot: one copy, on the
      device where the data is.

    When no slot is free (policy 'reliable' waiting for a slow reader, or, with slot claims,
    every slot being read), both wait up to `timeout_s` (default 0: not at all) and then raise
    NoFreeSlot; nothing is published and the miss is counted (`counters['no_free_slot']`).

    Shutdown (doc/lifecycle.md): after SIGINT/SIGTERM the next loan()/publish() raises
    KeyboardInterrupt before it takes a slot (once per process; rclpy programs already end on
    it; the package's own nodes poll instead), and a wait for a slot ends at once. Once the
    context is shut down, a write still runs but is not published: its slot is released (or,
    when the shutdown closed the publisher, as rclpy >= Jazzy does, the loan is a throwaway
    array) and `counters['after_shutdown']` grows; no RCLError reaches the caller. After
    close() with the context still up, a write raises RuntimeError (a program error).

    close(), leaving a ``with ShmPublisher(...)`` block and node.destroy_node() unlink the
    segment; so does interpreter exit (atexit), and the next producer of the same name removes
    a segment left by a killed one.
    """

    def __init__(self, node: Node, topic: str, *, dtype: str, shape: Sequence[int],
                 slots: int = 4, policy: str = 'latest', backend: str = 'auto',
                 mode: str = 'zero_copy', encoding: str = '', shm_name: str = '',
                 checksum: bool = True, release_timeout_s: float = 1.0,
                 required_readers: int = 0, qos_depth: Optional[int] = None,
                 diagnostics_period_s: float = 1.0,
                 discovery_timeout_s: Optional[float] = None, callback_group=None):
        """
        Check every argument, then create the segment and the descriptor publisher.

        :param node: the node that owns the publisher
        :param topic: descriptor topic (relative names follow the node namespace; remappable)
        :param dtype: element type, any NumPy spelling ('uint8', 'float32', '<u2', ...)
        :param shape: frame shape in elements, e.g. [480, 640, 3]
        :param slots: frames in flight (slots in the segment)
        :param policy: 'latest' (never wait; slow readers miss frames) or 'reliable' (reuse a
            slot only after every reader released it, or after release_timeout_s evicts one)
        :param backend: 'auto', 'cpu', 'pinned' or 'cuda_ipc'
        :param mode: 'zero_copy' (kernels work on the slot) or 'copy' (through device memory)
        :param encoding: ROS image encoding ('rgb8', 'mono16', ...) or '' for a plain tensor
        :param shm_name: segment name; '' derives one from the node name and the topic
        :param checksum: publish the payload checksum so subscribers verify every byte
        :param release_timeout_s: reliable policy: longest wait for a reader before eviction
        :param required_readers: reliable policy: readers to wait for before reusing a slot
        :param qos_depth: descriptor QoS depth; default: the slot count
        :param diagnostics_period_s: seconds between /diagnostics reports; 0 turns them off
        :param discovery_timeout_s: longest wait here for subscriptions that already run to
            match, so that they get the first frame (wait_for_discovery); None: 5 s under
            'reliable', 0 under 'latest' (its subscribers start with the first frame after
            discovery)
        :param callback_group: for the diagnostics timer
        :raises ArgumentError: for an argument outside its type, range or choices (nothing is
            created then)
        :raises ShmRosError: for a segment in use or an explicit GPU backend without a GPU
        """
        checked = publisher_arguments(
            node, topic, dtype=dtype, shape=shape, slots=slots, policy=policy, backend=backend,
            mode=mode, encoding=encoding, shm_name=shm_name, checksum=checksum,
            release_timeout_s=release_timeout_s, required_readers=required_readers,
            qos_depth=qos_depth, diagnostics_period_s=diagnostics_period_s,
            discovery_timeout_s=discovery_timeout_s, callback_group=callback_group)
        self._publisher = None
        self._frames = None
        super().__init__(node, backend, mode)
        try:
            self._create(node, topic, checked, slots, policy, encoding, shm_name, checksum,
                         required_readers, qos_depth, callback_group)
        except BaseException:
            self._abandon()
            raise

    def _create(self, node, topic, checked, slots, policy, encoding, shm_name, checksum,
                required_readers, qos_depth, callback_group) -> None:
        qos = descriptor_qos(qos_depth or slots)
        self._publisher = node.create_publisher(
            DataDescriptor, topic, qos, callback_group=callback_group,
            qos_overriding_options=descriptor_qos_overrides())
        self.topic = self._publisher.topic_name
        self.shm_name = shm_name or default_shm_name(node, self.topic)
        self._frames = FrameProducer(
            self.shm_name, slots, checked['dtype'], checked['shape'], policy=policy,
            checksum=checksum, backend=self.backend,
            release_timeout_s=checked['release_timeout_s'],
            required_readers=required_readers, encoding=encoding)
        signals.checkpoint('segment_created')
        self.policy = policy
        self.counters: Counter = Counter(no_free_slot=0, aborted=0, after_shutdown=0)
        self._loaned = False
        self._latency = LatencyWindow()
        self._messages = MessageCache()
        self._rate = RateMeter()
        self._reported = Counter()
        frames = self._frames
        discovery_s = checked['discovery_timeout_s']
        if discovery_s is None:
            discovery_s = RELIABLE_DISCOVERY_TIMEOUT_S if policy == 'reliable' else 0.0
        matched = bool(discovery_s) and wait_for_discovery(node, self._publisher, discovery_s)
        if matched and policy == 'reliable':
            # Matched is not attached: a subscriber registers with its first descriptor.
            frames.expect_readers(self.subscription_count(), discovery_s)
        qos = self._publisher.qos_profile  # as parameters (qos_overrides.*) may have changed it
        node.get_logger().info(
            f'shm publisher: rmw={rmw_name()} topic={self.topic} segment={self.shm_name} '
            f'backend={self.backend.name} mode={self.backend.mode} '
            f'device="{self.backend.device}" pointer={self.backend.pointer_source} '
            f'policy={policy} qos="{describe_qos(qos)}" frame={frames.dtype}{frames.shape} '
            f'({frames.nbytes} B){" " + encoding if encoding else ""} slots={slots} '
            f'subscriptions={self.subscription_count()}'
            f'{"" if matched or not discovery_s else f" (none within {discovery_s:g} s)"}')
        self._start_diagnostics('shm publisher', self.topic, self.shm_name,
                                checked['diagnostics_period_s'], self._report, callback_group)

    def _abandon(self) -> None:
        """Undo what a failed constructor made; close() and destroy_node() then do nothing."""
        self._closed = True
        try:
            if self._frames is not None:
                self._frames.close()  # closes the backend too
            else:
                self.backend.close()
        finally:
            try:
                if self._publisher is not None:
                    self._node.destroy_publisher(self._publisher)
            finally:
                self._close_endpoint()

    @property
    def dtype(self) -> str:
        """Canonical dtype string of the frames, e.g. '|u1'."""
        return self._frames.dtype

    @property
    def shape(self) -> list:
        """Frame shape in elements."""
        return list(self._frames.shape)

    @property
    def encoding(self) -> str:
        """ROS image encoding of the frames, or '' for plain tensors."""
        return self._frames.encoding

    @property
    def frames_published(self) -> int:
        """Descriptors published so far."""
        return self._frames.frames_published

    @property
    def frame_producer(self) -> FrameProducer:
        """Return the ROS-free producer underneath (its pool, counters and backend)."""
        return self._frames

    def subscription_count(self) -> int:
        """Return how many subscriptions the descriptor publisher has matched."""
        return self._publisher.get_subscription_count()

    def wait_for_subscriptions(self, count: int, timeout_s: float) -> bool:
        """
        Wait until `count` subscriptions matched this publisher, or `timeout_s` passed.

        What is published before a subscription matched reaches it only while it is still in
        the publisher's history (the last `qos_depth` descriptors, doc/late-joiners.md). A
        node that re-creates its publisher (a new frame size) calls this with the count the
        old one had, so no subscriber misses the first frames of the new segment.
        Matching happens in the middleware's threads: this needs no executor spinning.

        :return: whether `count` subscriptions matched in time
        """
        signals.checkpoint('wait_for_subscriptions')
        deadline = time.monotonic() + timeout_s
        while self.subscription_count() < count:
            if time.monotonic() >= deadline or signals.received():
                return False  # after a signal the process is about to stop: wait no longer
            time.sleep(_MATCH_POLL_S)
        return True

    @contextmanager
    def loan(self, stamp_ns: Optional[int] = None, frame_id: str = '',
             timeout_s: float = 0.0):
        """
        Lend the next slot as a writable array; publish it when the block ends.

        :param stamp_ns: header stamp in nanoseconds; None: the node clock's now at the end
        :param frame_id: header frame_id
        :param timeout_s: how long to wait for a free slot
        :raises NoFreeSlot: when no slot became free within `timeout_s`
        :raises KeyboardInterrupt: when SIGINT/SIGTERM arrived (process.signals), before a
            slot is taken
        """
        write = self._begin(timeout_s)
        if write is None:  # closed when its context shut down: nothing to publish into
            yield self._scratch()
            return
        try:
            yield self._frames.array(write)
        except BaseException:
            self._frames.abort(write)
            self.counters['aborted'] += 1
            raise
        self._commit(write, stamp_ns, frame_id)

    def publish(self, array, stamp_ns: Optional[int] = None, frame_id: str = '',
                timeout_s: float = 0.0) -> None:
        """
        Copy `array` into the next slot and publish it.

        :param array: NumPy, CuPy, DLPack or CUDA-array-interface data of the frame's dtype
            and shape
        :raises ArrayMismatch: when its dtype, shape or layout does not fit (checked before a
            slot is taken)
        :raises NoFreeSlot: when no slot became free within `timeout_s`
        """
        frames = self._frames
        check_fits(host_view(array) if location(array) == HOST else device_view(array),
                   frames.dtype, frames.shape)
        write = self._begin(timeout_s)
        if write is None:
            return
        try:
            frames.backend.copy_into(frames.pool, write.offset, frames.nbytes, frames.dtype,
                                     frames.shape, array)
        except BaseException:
            frames.abort(write)
            raise
        self._commit(write, stamp_ns, frame_id)

    def publish_test_pattern(self, stamp_ns: Optional[int] = None, frame_id: str = '',
                             timeout_s: float = 0.0) -> None:
        """Publish the deterministic test pattern of the next frame (demos, benchmarks)."""
        write = self._begin(timeout_s)
        if write is None:
            return
        try:
            self._frames.backend.fill_pattern(self._frames.pool, write.offset,
                                              self._frames.nbytes, self._frames.frames_published)
        except BaseException:
            self._frames.abort(write)
            raise
        self._commit(write, stamp_ns, frame_id)

    def _begin(self, timeout_s: float) -> Optional[SlotWrite]:
        if self._closed:
            if self._node.context.ok():
                raise RuntimeError(f'ShmPublisher on {self.topic} is closed')
            # rclpy >= Jazzy destroys a context's nodes (so their endpoints) when it shuts down.
            self.counters['after_shutdown'] += 1
            return None
        if not self._loaned:
            self._loaned = True
            signals.checkpoint('first_loan')
        signals.raise_pending()  # a signal ends the program here, before a slot is taken
        deadline = time.monotonic() + timeout_s
        waited = False
        while True:
            write = self._frames.begin()
            if write is not None:
                return write
            if time.monotonic() >= deadline:
                self.counters['no_free_slot'] += 1
                raise NoFreeSlot(f'{self.shm_name}: no slot free within {timeout_s} s '
                                 f'(policy {self.policy}: readers still hold every slot)')
            if not waited:
                waited = True
                signals.checkpoint('slot_wait')
            if signals.received():  # nothing taken yet: a signal ends the wait at once
                signals.raise_pending()
                self.counters['no_free_slot'] += 1
                raise NoFreeSlot(f'{self.shm_name}: no slot free, and the process is stopping')
            time.sleep(_RETRY_S)

    def _scratch(self):
        """Return a throwaway frame for a loan() that cannot publish (closed at shutdown)."""
        frames = self._frames
        if self.backend.name == 'cpu':
            return np.empty(frames.shape, frames.dtype)
        import cupy
        return cupy.empty(frames.shape, frames.dtype)

    def _commit(self, write: SlotWrite, stamp_ns: Optional[int], frame_id: str) -> None:
        # /diagnostics latency: from the commit (device synchronized, sequence even) until the
        # RMW has taken the descriptor. One node clock read a frame: the stamp.
        began = time.monotonic_ns()
        if not self._node.context.ok():
            self._frames.abort(write)
            self.counters['after_shutdown'] += 1
            return
        now = self._clock.now_ns()
        desc = self._frames.commit(write, now if stamp_ns is None else stamp_ns, frame_id)
        try:
            self._publisher.publish(self._messages.to_msg(desc))
        except Exception:
            if self._node.context.ok():
                raise
            # Shut down (from another thread) between the check above and the publish: the
            # committed slot is never announced, so no reader maps it; count it like above.
            self.counters['after_shutdown'] += 1
            return
        self._latency.add(time.monotonic_ns() - began)

    def wait_for_all_acked(self, timeout_s: float = 1.0) -> bool:
        """Wait until reliable subscribers acknowledged every descriptor (before closing)."""
        if not self._node.context.ok():
            return False
        return self._publisher.wait_for_all_acked(Duration(seconds=timeout_s))

    def _report(self) -> Report:
        frames, pool = self._frames, self._frames.pool
        counts = Counter({'frames': frames.frames_published, **self.counters, **pool.counters})
        fresh = counts - self._reported
        self._reported = counts
        values = {'topic': self.topic, 'segment': self.shm_name, 'backend': self.backend.name,
                  'mode': self.backend.mode, 'pointer_source': self.backend.pointer_source,
                  'policy': self.policy,
                  'frame_rate_hz': f'{self._rate.rate(counts["frames"]):.2f}',
                  'subscriptions': self.subscription_count(), 'readers': len(pool.readers()),
                  **{key: counts[key] for key in sorted(counts)}, **self._latency.take()}
        if fresh['no_free_slot'] or fresh['release_timeouts']:
            return WARN, (f'{fresh["no_free_slot"]} frame(s) found no free slot, '
                          f'{fresh["release_timeouts"]} release timeout(s)'), values
        return OK, f'{fresh["frames"]} frame(s) published', values

    def close(self) -> None:
        """Unlink the segment and destroy the descriptor publisher (idempotent)."""
        if self._closed:
            return
        self._closed = True
        signals.checkpoint('teardown')
        try:
            self._frames.close()
        finally:
            self._close_endpoint()
            signals.checkpoint('middleware_teardown')  # test hook: the segment is gone here
            self._node.destroy_publisher(self._publisher)
