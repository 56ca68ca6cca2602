"""
Producer and consumer peers over Cyclone DDS: adapters of process.roles, like the rclpy nodes.

Same per-frame protocol (core.frame_producer, core.frame_consumer), same options
(process.options), same behaviour (process.roles), same topic, type and QoS as the nodes: a peer
here and a node there exchange descriptors as if both were ROS 2 nodes.
"""

import time
from typing import Any, Mapping, Optional

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from jetson_shm_ros.core.backend import select_backend
from jetson_shm_ros.core.descriptor import Descriptor, from_wire, NS_PER_S, to_wire
from jetson_shm_ros.core.frame_consumer import FrameConsumer
from jetson_shm_ros.core.frame_producer import FrameProducer
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.dds.idl import descriptor_type
from jetson_shm_ros.dds.participant import (
    create_participant, describe_qos, descriptor_qos, resolve_topic)
from jetson_shm_ros.process.options import parse_options
from jetson_shm_ros.process.role_options import CONSUMER_OPTIONS, PRODUCER_OPTIONS
from jetson_shm_ros.process.roles import ConsumerRole, ProducerRole
from jetson_shm_ros.process.runner import stop_requested

RMW = 'cyclonedds (ROS-free)'
_POLL_S = 0.1
_ANY_NOT_READ = SampleState.NotRead | ViewState.Any | InstanceState.Any


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


def _backend_words(backend) -> str:
    return (f'backend={backend.name} mode={backend.mode} device="{backend.device}" '
            f'pointer={backend.pointer_source}')


def _fully_qualified(namespace: str, node: str) -> str:
    return '/' + '/'.join(part for part in namespace.strip('/').split('/') + [node] if part)


class DdsProducer:
    """The producer role on a Cyclone DDS writer."""

    name = 'producer'

    def __init__(self, options: Mapping[str, Any], namespace: str = '/'):
        """
        Create the segment and the writer, and log the start-up line.

        :param options: PRODUCER_OPTIONS values as given (checked here; defaults filled in)
        :param namespace: the node namespace a rclpy producer would have
        :raises OptionError: for a value outside its option's range or choices
        """
        options = parse_options(PRODUCER_OPTIONS, options)
        self.log = get_logger(self.name)
        self.stream: Optional[FrameProducer] = None
        shm_name = options['shm_name'] or \
            '/jetson_shm_ros' + _fully_qualified(namespace, self.name).replace('/', '.')
        backend = select_backend(options['backend'], options['mode'])
        self.endpoint = _Endpoint(options['topic'], namespace, self.name)
        self.stream = FrameProducer(
            shm_name, options['slots'], options['dtype'], options['shape'],
            policy=options['policy'], checksum=options['checksum'], backend=backend,
            release_timeout_s=options['release_timeout_s'],
            required_readers=options['wait_for_consumers'], encoding=options['encoding'])
        self.writer = DataWriter(self.endpoint.participant, self.endpoint.topic,
                                 qos=descriptor_qos(options['slots']))
        self.role = ProducerRole(
            options, self.log, self.endpoint.ros_topic, subscriptions=self.matched,
            write_frame=self._write_frame, all_released=self.stream.all_released,
            details=self._details)
        stream = self.stream
        encoding = ' ' + stream.encoding if stream.encoding else ''
        # The same words as ShmPublisher's start-up line.
        self.log.info(
            f'shm publisher: rmw={RMW} topic={self.endpoint.ros_topic} segment={shm_name} '
            f'{_backend_words(backend)} policy={options["policy"]} '
            f'qos="{describe_qos(options["slots"])}" frame={stream.dtype}{stream.shape} '
            f'({stream.nbytes} B){encoding} slots={options["slots"]}')
        self.log.info(self.role.startup_line())

    def matched(self) -> int:
        """Subscriptions (rclpy or Cyclone) matched by the writer right now."""
        return self.writer.get_publication_matched_status().current_count

    def _write_frame(self) -> bool:
        desc = self.stream.try_write_pattern(time.time_ns(), self.role.options['frame_id'])
        if desc is None:
            return False
        self.writer.write(self.endpoint.to_sample(desc))
        return True

    def _details(self) -> Mapping[str, int]:
        return dict(readers=len(self.stream.pool.readers()), **self.stream.pool.counters)

    def run(self) -> int:
        """Tick the role at rate_hz until it is finished (or forever)."""
        next_tick = time.monotonic()
        while not self.role.finished and not stop_requested():
            self.role.tick()
            next_tick = max(next_tick + self.role.period_s, time.monotonic())
            # In short naps: a signal (recorded by process.signals) ends the run within one.
            while not stop_requested() and time.monotonic() < next_tick:
                time.sleep(min(_POLL_S, max(0.0, next_tick - time.monotonic())))
        return self.role.exit_code

    def shutdown(self, interrupted: bool) -> int:
        """Let reliable readers get the last descriptors, unlink the segment; return 0."""
        if self.stream is None:
            return self.role.exit_code
        try:
            if not interrupted:
                self.writer.wait_for_acks(duration(seconds=1))
            self.log.info(self.role.done_line())
        finally:
            self.stream.close()
            self.stream = None
        return self.role.exit_code


class DdsConsumer:
    """The consumer role on a Cyclone DDS reader."""

    name = 'consumer'

    def __init__(self, options: Mapping[str, Any], namespace: str = '/'):
        """
        Subscribe and log the start-up line.

        :param options: CONSUMER_OPTIONS values as given (checked here; defaults filled in)
        :param namespace: the node namespace a rclpy consumer would have
        :raises OptionError: for a value outside its option's range or choices
        """
        options = parse_options(CONSUMER_OPTIONS, options)
        self.options = options
        self.log = get_logger(self.name)
        self.stream: Optional[FrameConsumer] = None
        backend = select_backend(options['backend'], options['mode'])
        self.endpoint = _Endpoint(options['topic'], namespace, self.name)
        self.stream = FrameConsumer(backend, allow_group_access=options['allow_group_access'],
                                    verify=options['verify'])
        self.reader = None
        self.role = ConsumerRole(options, self.log, self.endpoint.ros_topic,
                                 counts=lambda: self.stream.counts,
                                 summary=self.stream.summary)
        # The same words as ShmSubscription's start-up line.
        self.log.info(
            f'shm subscription: rmw={RMW} topic={self.endpoint.ros_topic} '
            f'{_backend_words(backend)} verify={options["verify"]} '
            f'qos="{describe_qos(options["queue_depth"])}"')
        self.log.info(self.role.startup_line())

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
            if stop_requested():
                return
            if not logged:
                self.log.info(f'waiting for a publisher on {self.endpoint.ros_topic}')
                logged = True
            waitset.wait(duration(seconds=_POLL_S))
        self.reader = DataReader(participant, self.endpoint.topic,
                                 qos=descriptor_qos(self.options['queue_depth']))

    def run(self) -> int:
        """Handle descriptors until the role is finished (frame limit, idle producer)."""
        self._subscribe_once_a_publisher_is_known()
        if self.reader is None:  # a signal arrived before a publisher was known
            return 0
        waitset = WaitSet(self.endpoint.participant)
        waitset.attach(ReadCondition(self.reader, _ANY_NOT_READ))
        while not self.role.finished and not stop_requested():
            waitset.wait(duration(seconds=_POLL_S))
            for sample in self.reader.take(N=max(self.options['queue_depth'], 16)):
                if not isinstance(sample, self.endpoint.sample_type):
                    continue  # an instance-state change (writer gone), not data
                self.stream.handle(from_sample(sample))
                if self.role.poll():
                    break
            self.role.tick()
        return 0

    def shutdown(self, interrupted: bool) -> int:
        """Log the summary line, unpin and unmap; return the exit code (1: invalid input)."""
        if self.stream is None:
            return self.role.exit_code
        try:
            return self.role.finish()
        finally:
            self.stream.close()
            self.stream = None
