"""
Cyclone DDS on the wire: a plain `cyclonedds` participant (not rclpy) reads an rclpy producer.

It subscribes with ROS 2's DDS naming (topic rt/<name>, type
jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_ derived from the .msg file), maps the
segment and verifies every frame's checksum, while the producer runs on the RMW this
environment selects (Fast DDS, or Cyclone DDS under RMW_IMPLEMENTATION=rmw_cyclonedds_cpp).
"""

import os
import time

from conftest import SHM_DIR
from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from jetson_shm_ros.core.frame_consumer import FrameConsumer
from jetson_shm_ros.dds.idl import descriptor_type
from jetson_shm_ros.dds.participant import create_participant
from jetson_shm_ros.dds.peers import from_sample
from node_processes import expected_rmw, isolated_env, NodeProcess, reported_rmw

FRAMES = 40
DEADLINE_S = 60.0
ROS_TOPIC = 'jsr_wire/descriptors'


def test_cyclone_participant_verifies_every_frame_of_an_rclpy_producer(shm_name):
    producer_env = isolated_env()
    struct, _ = descriptor_type()
    assert struct.__idl_typename__ == 'jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_'
    participant = create_participant(producer_env)
    producer = NodeProcess('producer', {
        'topic': ROS_TOPIC, 'shm_name': shm_name, 'frames': FRAMES, 'shape': [64, 1024],
        'dtype': 'uint32', 'rate_hz': 100.0, 'policy': 'reliable', 'wait_for_consumers': 1},
        producer_env)
    consumer = FrameConsumer()
    try:
        deadline = time.monotonic() + DEADLINE_S
        # Subscribe once the writer is known (see DdsConsumer: a volatile Cyclone reader
        # matched after the writer started sending would miss the first frames).
        publications = BuiltinDataReader(participant, BuiltinTopicDcpsPublication)
        found = []
        while not found and time.monotonic() < deadline and producer.popen.poll() is None:
            found = [endpoint for endpoint in publications.take(N=64)
                     if getattr(endpoint, 'topic_name', None) == 'rt/' + ROS_TOPIC]
            time.sleep(0.05)
        assert found, 'no rt/' + ROS_TOPIC + ' writer discovered; producer output:\n' + \
            producer.output()
        assert found[0].type_name == struct.__idl_typename__
        reader = DataReader(participant, Topic(participant, 'rt/' + ROS_TOPIC, struct), qos=Qos(
            Policy.Reliability.Reliable(duration(milliseconds=100)),
            Policy.History.KeepLast(16), Policy.Durability.Volatile))
        checksums = []
        while consumer.counts['received'] < FRAMES and time.monotonic() < deadline:
            for sample in reader.take(N=16):
                if isinstance(sample, struct):
                    desc = from_sample(sample)
                    checksums.append(desc.checksum)
                    assert consumer.handle(desc) == 'verified', consumer.summary()
            time.sleep(0.01)
        assert consumer.counts['received'] == FRAMES, consumer.summary()
        assert consumer.counts['verified'] == FRAMES, consumer.summary()
        assert len(set(checksums)) == FRAMES  # every frame is a different payload
        assert producer.finish() == 0, producer.output()
        assert reported_rmw(producer.output()) == expected_rmw(), producer.output()
        print(f'rclpy producer ran on {expected_rmw()}')
    finally:
        consumer.close()
        producer.stop()
    assert not os.path.exists(SHM_DIR + shm_name)
