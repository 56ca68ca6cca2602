"""ShmSubscription: descriptors from a ROS topic, frames read in place from shared memory."""

from collections import Counter
import threading
from typing import Callable

from jetson_shm_ros.core.descriptor import Descriptor
from jetson_shm_ros.core.frame_consumer import FrameConsumer, INVALID, UNVERIFIED, VERIFIED
from jetson_shm_ros.process import signals
from jetson_shm_ros.ros.arguments import subscription_arguments
from jetson_shm_ros.ros.conversion import from_msg
from jetson_shm_ros.ros.diagnostics import ERROR, LatencyWindow, OK, RateMeter, Report, WARN
from jetson_shm_ros.ros.endpoint import Endpoint
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.middleware import (
    describe_qos, descriptor_qos, descriptor_qos_overrides, rmw_name)
from jetson_shm_ros_interfaces.msg import DataDescriptor
from rclpy.node import Node


class ShmSubscription(Endpoint):
    """
    Call `callback(frame, info)` for every frame that passed validation.

    `frame` is a NumPy (CPU) or CuPy (GPU backends) view of the slot, valid only while the
    callback runs: copy it to keep it (``frame.copy()``). It is zero-copy: DLPack consumers
    such as ``torch.from_dlpack(frame)`` see the same memory. `info` is a FrameInfo (header,
    dtype, shape, encoding, sequence, ...).

    Every descriptor is checked against the mapped segment before a byte is read; with
    `verify` the payload checksum is checked too, before the callback. Invalid descriptors and
    frames the producer overwrote never reach the callback: they are counted (`counts`,
    `invalid_reasons`, `drop_reasons`, /diagnostics). The slot is released whatever the
    callback does; an exception from it propagates as from any rclpy callback (counted as
    `callback_errors`, never as an invalid descriptor). Callbacks of one subscription run one at
    a time, also under a MultiThreadedExecutor, but do not spin descriptor subscriptions with
    one: in rclpy it is 25-75 times slower per message (an rclpy bug, ros2/rclpy#1452), and
    descriptors a keep-last queue drops behind it are lost (counted as `counts['missed']`,
    never silently). Spin with
    jetson_shm_ros.ros.executors.make_executor(): rclpy's EventsExecutor where it exists,
    else its SingleThreadedExecutor.

    Shutdown (doc/lifecycle.md): after SIGINT/SIGTERM the next descriptor callback raises
    KeyboardInterrupt instead of mapping anything (once per process). A descriptor that arrives
    once the context is shut down or a signal was delivered is dropped unread and counted in
    `after_shutdown`: no segment is mapped, the callback is not called.
    """

    def __init__(self, node: Node, topic: str, callback: Callable[[object, FrameInfo], None],
                 *, backend: str = 'auto', mode: str = 'zero_copy', verify: bool = True,
                 queue_depth: int = 16, allow_group_access: bool = False,
                 diagnostics_period_s: float = 1.0, callback_group=None):
        """
        Create the descriptor subscription.

        :param node: the node that owns the subscription
        :param topic: descriptor topic (relative names follow the node namespace; remappable)
        :param callback: called as callback(frame, info) for each valid frame
        :param backend: 'auto', 'cpu', 'pinned' or 'cuda_ipc'
        :param mode: 'zero_copy' (read the slot in place) or 'copy' (device copy first)
        :param verify: check the payload checksum (when sent) before the callback
        :param queue_depth: descriptor queue depth; keep it at least the producer's slot count
        :param allow_group_access: accept segments that the owner's group may write
        :param diagnostics_period_s: seconds between /diagnostics reports; 0 turns them off
        :param callback_group: for the subscription and the diagnostics timer
        :raises ArgumentError: for an argument outside its type, range or choices (nothing is
            created then)
        :raises BackendUnavailable: for an explicit GPU backend without a GPU
        """
        checked = subscription_arguments(
            node, topic, callback, backend=backend, mode=mode, verify=verify,
            queue_depth=queue_depth, allow_group_access=allow_group_access,
            diagnostics_period_s=diagnostics_period_s, callback_group=callback_group)
        self._subscription = None
        self._frames = None
        super().__init__(node, backend, mode)
        try:
            self._create(node, topic, callback, verify, queue_depth, allow_group_access,
                         checked['diagnostics_period_s'], callback_group)
        except BaseException:
            self._abandon()
            raise

    def _create(self, node, topic, callback, verify, queue_depth, allow_group_access,
                diagnostics_period_s, callback_group) -> None:
        self._callback = callback
        self._frames = FrameConsumer(self.backend, process=self._deliver,
                                     allow_group_access=allow_group_access, verify=verify)
        self._lock = threading.Lock()
        self._header = None
        self.after_shutdown = 0
        self._latency = LatencyWindow()
        self._rate = RateMeter()
        self._reported = Counter()
        qos = descriptor_qos(queue_depth)
        self._subscription = node.create_subscription(
            DataDescriptor, topic, self._on_descriptor, qos, callback_group=callback_group,
            qos_overriding_options=descriptor_qos_overrides())
        self.topic = self._subscription.topic_name
        node.get_logger().info(
            f'shm subscription: rmw={rmw_name()} topic={self.topic} backend={self.backend.name} '
            f'mode={self.backend.mode} device="{self.backend.device}" '
            f'pointer={self.backend.pointer_source} verify={verify} '
            f'qos="{describe_qos(self._subscription.qos_profile)}"')
        self._start_diagnostics('shm subscription', self.topic, self._hardware_id,
                                diagnostics_period_s, self._report, callback_group)
        signals.checkpoint('endpoint_created')

    def _abandon(self) -> None:
        """Undo what a failed constructor made; close() and destroy_node() then do nothing."""
        self._closed = True
        try:
            if self._subscription is not None:
                self._node.destroy_subscription(self._subscription)
        finally:
            try:
                self._close_endpoint()
            finally:
                if self._frames is not None:
                    self._frames.close()
                else:
                    self.backend.close()

    @property
    def counts(self) -> Counter:
        """received, verified, unverified, dropped, invalid, in_place_bytes, copied_bytes."""
        return self._frames.counts

    @property
    def invalid_reasons(self) -> Counter:
        """Invalid descriptors by reason (e.g. 'checksum_mismatch', 'bad_name')."""
        return self._frames.invalid_reasons

    @property
    def drop_reasons(self) -> Counter:
        """Count dropped frames by reason (the producer overwrote the slot first)."""
        return self._frames.drop_reasons

    @property
    def callback_errors(self) -> int:
        """Exceptions raised by the callback."""
        return self._frames.callback_errors

    @property
    def frame_consumer(self) -> FrameConsumer:
        """Return the ROS-free consumer underneath."""
        return self._frames

    def summary(self) -> str:
        """Return the one-line summary: received=N verified=N dropped=N invalid=N ..."""
        return self._frames.summary()

    def handle_descriptor(self, msg: DataDescriptor) -> str:
        """
        Process one descriptor message as if it had arrived on the topic.

        :return: 'verified', 'unverified', 'dropped' or 'invalid'
        """
        if self._closed:
            return INVALID
        with self._lock:
            self._header = msg.header
            status = self._frames.handle(from_msg(msg))
        if status in (VERIFIED, UNVERIFIED):
            stamp = msg.header.stamp
            self._latency.add(self._clock.now_ns() -
                              (stamp.sec * 1_000_000_000 + stamp.nanosec))
        return status

    def _on_descriptor(self, msg: DataDescriptor) -> None:
        if not self._frames.counts['received'] and not self.after_shutdown:
            signals.checkpoint('first_descriptor')
        signals.raise_pending()
        if signals.received() or not self._node.context.ok():
            self.after_shutdown += 1  # the process is stopping: map nothing new
            return
        self.handle_descriptor(msg)

    def _deliver(self, frame, desc: Descriptor) -> None:
        verified = self._frames.verify and desc.checksum_valid
        self._callback(frame, FrameInfo.from_descriptor(desc, self._header, verified))

    def _hardware_id(self) -> str:
        # What the status is about: the segments mapped so far (none before the first frame).
        with self._lock:
            return ','.join(self._frames.mapped_segments()) or f'(no segment yet) {self.topic}'

    def _report(self) -> Report:
        with self._lock:
            counts = Counter(self._frames.counts)
            reasons = Counter(self._frames.invalid_reasons)
            drops = Counter(self._frames.drop_reasons)
            segments = ','.join(self._frames.mapped_segments())
        counts['callback_errors'] = self._frames.callback_errors
        fresh = counts - self._reported
        self._reported = counts
        values = {'topic': self.topic, 'segment': segments or '-',
                  'backend': self.backend.name, 'mode': self.backend.mode,
                  'pointer_source': self.backend.pointer_source,
                  'frame_rate_hz': f'{self._rate.rate(counts["received"]):.2f}',
                  **{key: counts[key] for key in sorted(counts)},
                  **{f'invalid.{key}': value for key, value in sorted(reasons.items())},
                  **{f'dropped.{key}': value for key, value in sorted(drops.items())},
                  **self._latency.take()}
        if fresh['invalid']:
            return ERROR, f'{fresh["invalid"]} invalid descriptor(s) this period', values
        if fresh['dropped'] or fresh['callback_errors'] or fresh['missed']:
            return WARN, (f'{fresh["dropped"]} frame(s) dropped, {fresh["missed"]} '
                          f'descriptor(s) missed, {fresh["callback_errors"]} callback error(s) '
                          'this period'), values
        if not counts['received']:
            return OK, 'waiting for the first frame', values
        return OK, f'{fresh["received"]} frame(s) received', values

    def close(self) -> None:
        """Destroy the subscription, then unpin and unmap every segment (idempotent)."""
        if self._closed:
            return
        self._closed = True
        signals.checkpoint('teardown')
        try:
            self._node.destroy_subscription(self._subscription)
        finally:
            self._close_endpoint()
            with self._lock:
                self._frames.close()
