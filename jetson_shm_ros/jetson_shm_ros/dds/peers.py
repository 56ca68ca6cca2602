"""
Producer and consumer peers over Cyclone DDS, wrapping core.frames like the rclpy nodes do.

Same per-frame protocol (core.frames), same topic, type and QoS as the nodes: a peer here and
a node there exchange descriptors as if both were ROS 2 nodes.
"""

from dataclasses import dataclass
import time
from typing import Optional, Sequence

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from jetson_shm_ros.core.backend import select_backend
from jetson_shm_ros.core.descriptor import Descriptor, from_wire, NS_PER_S, to_wire
from jetson_shm_ros.core.frames import FrameConsumer, FrameProducer
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.dds.idl import descriptor_type
from jetson_shm_ros.dds.participant import (
    create_participant, describe_qos, descriptor_qos, resolve_topic)

RMW = 'cyclonedds (ROS-free)'
DEFAULT_TOPIC = 'jetson_shm/descriptors'
_POLL_S = 0.1
_ANY_NOT_READ = SampleState.NotRead | ViewState.Any | InstanceState.Any


@dataclass
class ProducerOptions:
    """The producer node's parameters, same names and defaults."""

    topic: str = DEFAULT_TOPIC
    shm_name: str = ''
    slots: int = 4
    dtype: str = 'uint8'
    shape: Sequence[int] = (1080, 1920, 3)
    rate_hz: float = 30.0
    frames: int = 0
    policy: str = 'latest'
    checksum: bool = True
    backend: str = 'auto'
    mode: str = 'zero_copy'
    wait_for_consumers: int = 0
    release_timeout_s: float = 1.0
    frame_id: str = ''
    status_period_s: float = 5.0
    namespace: str = '/'


@dataclass
class ConsumerOptions:
    """The consumer node's parameters, same names and defaults."""

    topic: str = DEFAULT_TOPIC
    frames: int = 0
    idle_timeout_s: float = 0.0
    queue_depth: int = 16
    backend: str = 'auto'
    mode: str = 'zero_copy'
    allow_group_access: bool = False
    status_period_s: float = 5.0
    namespace: str = '/'


class _Endpoint:
    """A participant with the descriptor topic, its type built from DataDescriptor.msg."""

    def __init__(self, topic: str, namespace: str, node: str):
        self.ros_topic, self.dds_topic = resolve_topic(topic, namespace, node)
        self.sample_type, builder = descriptor_type()
        self.header_type = builder.struct('std_msgs/Header')
        self.time_type = builder.struct('builtin_interfaces/Time')
        self.participant = create_participant()
        self.topic = Topic(self.participant, self.dds_topic, self.sample_type)

    def to_sample(self, desc: Descriptor):
        """Convert a core descriptor into the DDS sample (the rclpy nodes' to_msg)."""
        sec, nanosec = divmod(desc.stamp_ns, NS_PER_S)
        return self.sample_type(
            header=self.header_type(stamp=self.time_type(sec=sec, nanosec=nanosec),
                                    frame_id=desc.frame_id),
            **to_wire(desc, list))


def from_sample(sample) -> Descriptor:
    """Convert a received DDS sample into a core descriptor (the rclpy nodes' from_msg)."""
    stamp = sample.header.stamp
    return from_wire(sample, stamp.sec, stamp.nanosec, sample.header.frame_id)


def _fully_qualified(namespace: str, node: str) -> str:
    return '/' + '/'.join(part for part in namespace.strip('/').split('/') + [node] if part)


class DdsProducer:
    """The producer node's behaviour on a Cyclone DDS writer."""

    name = 'producer'

    def __init__(self, options: ProducerOptions):
        """Create the segment and the writer, and log the start-up line."""
        self.options = options
        self.log = get_logger(self.name)
        self.finished = False
        self.stream: Optional[FrameProducer] = None
        shm_name = options.shm_name or \
            '/jetson_shm_ros' + _fully_qualified(options.namespace, self.name).replace('/', '.')
        backend = select_backend(options.backend, options.mode)
        self.endpoint = _Endpoint(options.topic, options.namespace, self.name)
        self.stream = FrameProducer(
            shm_name, options.slots, options.dtype, options.shape, policy=options.policy,
            checksum=options.checksum, backend=backend,
            release_timeout_s=options.release_timeout_s,
            required_readers=options.wait_for_consumers)
        self.writer = DataWriter(self.endpoint.participant, self.endpoint.topic,
                                 qos=descriptor_qos(options.slots))
        self.log.info(
            f'rmw={RMW} backend={backend.name} mode={backend.mode} '
            f'device="{backend.device}" pointer={backend.pointer_source} '
            f'policy={options.policy} qos="{describe_qos(options.slots)}" '
            f'topic={self.endpoint.ros_topic} segment={shm_name} '
            f'frame={self.stream.dtype}{self.stream.shape} ({self.stream.nbytes} B) '
            f'slots={options.slots} rate={options.rate_hz} Hz '
            f'frames={options.frames or "endless"}')

    def matched(self) -> int:
        """Subscriptions (rclpy or Cyclone) matched by the writer right now."""
        return self.writer.get_publication_matched_status().current_count

    def run(self) -> int:
        """Publish at rate_hz until `frames` were sent and released (or forever)."""
        options, stream = self.options, self.stream
        period = 1.0 / options.rate_hz
        next_tick = last_status = time.monotonic()
        waiting_logged = False
        drain_deadline = None
        while True:
            now = time.monotonic()
            if options.frames and stream.frames_published >= options.frames:
                if drain_deadline is None:
                    drain_deadline = now + options.release_timeout_s * options.slots
                if stream.all_released() or now > drain_deadline:
                    return 0
            elif self.matched() < options.wait_for_consumers:
                if not waiting_logged:
                    self.log.info(f'waiting for {options.wait_for_consumers} subscription(s) '
                                  f'on {self.endpoint.ros_topic}')
                    waiting_logged = True
            else:
                desc = stream.try_write_pattern(time.time_ns(), options.frame_id)
                if desc is not None:
                    self.writer.write(self.endpoint.to_sample(desc))
            if now - last_status >= options.status_period_s:
                last_status = now
                self.log.info(self.status())
            next_tick = max(next_tick + period, time.monotonic())
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def status(self) -> str:
        """Return the node's status text."""
        stream = self.stream
        return (f'published={stream.frames_published} waits={stream.waits} '
                f'subscriptions={self.matched()} readers={len(stream.pool.readers())} ' +
                ' '.join(f'{key}={value}' for key, value in stream.pool.counters.items()))

    def shutdown(self, interrupted: bool) -> None:
        """Let reliable readers get the last descriptors, then unlink the segment."""
        if self.stream is None:
            return
        try:
            if not interrupted:
                self.writer.wait_for_acks(duration(seconds=1))
            self.log.info('done: ' + self.status())
        finally:
            self.stream.close()
            self.stream = None


class DdsConsumer:
    """The consumer node's behaviour on a Cyclone DDS reader."""

    name = 'consumer'

    def __init__(self, options: ConsumerOptions):
        """Subscribe and log the start-up line."""
        self.options = options
        self.log = get_logger(self.name)
        self.stream: Optional[FrameConsumer] = None
        self.exit_code = 0
        backend = select_backend(options.backend, options.mode)
        self.endpoint = _Endpoint(options.topic, options.namespace, self.name)
        self.stream = FrameConsumer(backend, allow_group_access=options.allow_group_access)
        self.reader = None
        self.log.info(
            f'rmw={RMW} backend={backend.name} mode={backend.mode} '
            f'device="{backend.device}" pointer={backend.pointer_source} '
            f'policy=from-producer qos="{describe_qos(options.queue_depth)}" '
            f'topic={self.endpoint.ros_topic} frames={options.frames or "endless"}')

    def _subscribe_once_a_publisher_is_known(self) -> None:
        """
        Create the reader only after this participant discovered a writer of the topic.

        DDS matching is not symmetric: a remote writer can match a new reader (and send) before
        the reader matched the writer, and a volatile Cyclone reader drops what came before
        its own match, so the first frames of a producer would be lost. A reader created
        after the writer is known matches it locally at once, before the writer can learn
        of it. (A Fast DDS reader instead fetches what the writer still holds, so the
        producer side needs nothing like this.)
        """
        participant = self.endpoint.participant
        builtin = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        waitset = WaitSet(participant)
        waitset.attach(ReadCondition(builtin, _ANY_NOT_READ))
        logged = False
        while not any(getattr(endpoint, 'topic_name', None) == self.endpoint.dds_topic
                      for endpoint in builtin.take(N=64)):
            if not logged:
                self.log.info(f'waiting for a publisher on {self.endpoint.ros_topic}')
                logged = True
            waitset.wait(duration(seconds=_POLL_S))
        self.reader = DataReader(participant, self.endpoint.topic,
                                 qos=descriptor_qos(self.options.queue_depth))

    def run(self) -> int:
        """Handle descriptors until `frames` arrived, the producer went idle, or forever."""
        options, stream = self.options, self.stream
        self._subscribe_once_a_publisher_is_known()
        waitset = WaitSet(self.endpoint.participant)
        waitset.attach(ReadCondition(self.reader, _ANY_NOT_READ))
        last_descriptor = None
        last_status = time.monotonic()
        while True:
            waitset.wait(duration(seconds=_POLL_S))
            for sample in self.reader.take(N=max(options.queue_depth, 16)):
                if not isinstance(sample, self.endpoint.sample_type):
                    continue  # an instance-state change (writer gone), not data
                stream.handle(from_sample(sample))
                last_descriptor = time.monotonic()
                if options.frames and stream.counts['received'] >= options.frames:
                    return 0
            now = time.monotonic()
            if options.idle_timeout_s and last_descriptor is not None and \
                    now - last_descriptor > options.idle_timeout_s:
                self.log.warning(f'no descriptor for {options.idle_timeout_s} s: the producer '
                                 'seems gone; exiting')
                return 0
            if now - last_status >= options.status_period_s:
                last_status = now
                self.log.info('status: ' + stream.summary())

    def shutdown(self, interrupted: bool) -> None:
        """Log the summary line, unpin and unmap."""
        if self.stream is None:
            return
        self.log.info('summary: ' + self.stream.summary())
        if self.stream.counts['invalid']:
            self.exit_code = 1
        self.stream.close()
        self.stream = None
