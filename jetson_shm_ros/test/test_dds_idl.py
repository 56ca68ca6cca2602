"""The DDS type derived from DataDescriptor.msg matches rosidl's, and the peer needs no ROS."""

import os
import subprocess
import sys
import textwrap

from jetson_shm_ros.core.descriptor import Descriptor, MEMORY_CUDA_IPC
from jetson_shm_ros.dds import idl
from jetson_shm_ros.dds.participant import cyclone_config, domain_id, resolve_topic
import pytest

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_MSG = os.path.join(os.path.dirname(PACKAGE_DIR), 'jetson_shm_ros_interfaces', 'msg',
                          'DataDescriptor.msg')


def _rosidl_fields(message_class) -> dict:
    return dict(message_class.get_fields_and_field_types())


def test_derived_fields_match_the_generated_rclpy_messages():
    from builtin_interfaces.msg import Time
    from jetson_shm_ros_interfaces.msg import DataDescriptor
    from std_msgs.msg import Header

    _, builder = idl.descriptor_type()
    for ros_type, message_class in (('jetson_shm_ros_interfaces/DataDescriptor', DataDescriptor),
                                    ('std_msgs/Header', Header),
                                    ('builtin_interfaces/Time', Time)):
        derived = {field.name: field.rosidl_type() for field in builder.fields(ros_type)}
        assert list(derived.items()) == list(_rosidl_fields(message_class).items()), ros_type


def test_the_idl_struct_has_ros_2_dds_names_and_the_msg_field_order():
    struct, builder = idl.descriptor_type()
    assert struct.__idl_typename__ == 'jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_'
    assert builder.struct('std_msgs/Header').__idl_typename__ == 'std_msgs::msg::dds_::Header_'
    assert builder.struct('builtin_interfaces/Time').__idl_typename__ == \
        'builtin_interfaces::msg::dds_::Time_'
    names = [field.name for field in builder.fields('jetson_shm_ros_interfaces/DataDescriptor')]
    assert list(struct.__annotations__) == names
    assert 'MEMORY_HOST_SHM' not in names and 'MEMORY_CUDA_IPC' not in names  # constants


def _sample_pair():
    """Build the same descriptor as an rclpy message and as a Cyclone DDS sample."""
    from jetson_shm_ros.dds.peers import _Endpoint
    from jetson_shm_ros.ros.conversion import to_msg

    desc = Descriptor(
        shm_name='/jsr_test_bytes', incarnation=0x1234_5678_9ABC_DEF0, slot=3, sequence=42,
        offset=4096, nbytes=24, dtype='<u4', shape=[2, 3], checksum=2**63 + 5,
        checksum_valid=True, memory_kind=MEMORY_CUDA_IPC, cuda_ipc_handle=bytes(range(64)),
        cuda_event_handle=bytes(range(64, 128)), stamp_ns=1_700_000_000_123_456_789,
        frame_id='camera')
    endpoint = _Endpoint.__new__(_Endpoint)  # only the types, no participant
    endpoint.sample_type, builder = idl.descriptor_type()
    endpoint.header_type = builder.struct('std_msgs/Header')
    endpoint.time_type = builder.struct('builtin_interfaces/Time')
    return desc, to_msg(desc), endpoint.to_sample(desc), endpoint.sample_type


def test_cyclone_and_rclpy_read_each_others_serialized_bytes():
    from jetson_shm_ros_interfaces.msg import DataDescriptor
    from jetson_shm_ros.dds.peers import from_sample
    from rclpy.serialization import deserialize_message, serialize_message

    desc, msg, sample, sample_type = _sample_pair()
    ros_bytes = serialize_message(msg)
    # Same CDR layout (padding bytes aside, which Fast CDR leaves uninitialized).
    assert len(sample.serialize()) == len(ros_bytes)
    assert from_sample(sample_type.deserialize(ros_bytes)) == desc
    assert deserialize_message(sample.serialize(), DataDescriptor) == msg


@pytest.mark.parametrize('line, expected', [
    ('uint32[] shape', ('shape', 'sequence<uint32>')),
    ('uint8[64] handle  # fixed', ('handle', 'uint8[64]')),
    ('float64[<=8] values', ('values', 'sequence<double, 8>')),
    ('string<=10 name', ('name', 'string<10>')),
    ('Header header', ('header', 'pkg/Header')),
    ('bool flag true', ('flag', 'boolean')),
])
def test_parse_msg_maps_the_rosidl_spellings(line, expected):
    fields = idl.parse_msg(f'uint8 CONSTANT=1\n# comment\n{line}\n', 'pkg')
    assert [(field.name, field.rosidl_type()) for field in fields] == [expected]


def test_parse_msg_refuses_what_it_cannot_map():
    with pytest.raises(idl.MsgError):
        idl.parse_msg('wstring<=x name\n', 'pkg')


def test_the_packaged_msg_copy_is_the_interface_package_file():
    with open(SOURCE_MSG, encoding='utf-8') as source:
        expected = source.read()
    with open(idl.msg_path(), encoding='utf-8') as found:
        assert found.read() == expected
    from ament_index_python.packages import get_package_prefix

    prefix = get_package_prefix('jetson_shm_ros')
    version = f'python{sys.version_info[0]}.{sys.version_info[1]}'
    installed = os.path.join(prefix, 'lib', version, 'site-packages', 'jetson_shm_ros', 'dds',
                             idl.MSG_FILE)
    with open(installed, encoding='utf-8') as copy:
        assert copy.read() == expected, installed


def test_the_peer_imports_and_builds_its_type_with_every_ros_package_blocked(tmp_path):
    """A container without ROS 2: rclpy & co. cannot be imported, no ament prefix is set."""
    script = textwrap.dedent("""
        import sys

        BLOCKED = ('rclpy', 'rcl_interfaces', 'rosidl', 'std_msgs', 'builtin_interfaces',
                   'jetson_shm_ros_interfaces', 'ament_index_python', 'launch')

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0].startswith(BLOCKED):
                    raise ImportError('blocked: ' + name)

        sys.meta_path.insert(0, Blocker())
        import jetson_shm_ros.dds.__main__  # noqa: F401
        from jetson_shm_ros.dds.idl import descriptor_type
        struct, _ = descriptor_type()
        ros = sorted(name for name in sys.modules if name.split('.')[0].startswith(BLOCKED))
        print(struct.__idl_typename__, ros)
    """)
    env = {key: value for key, value in os.environ.items()
           if key not in ('AMENT_PREFIX_PATH', 'COLCON_PREFIX_PATH')}
    env['PYTHONPATH'] = os.pathsep.join(
        [PACKAGE_DIR] + [path for path in env.get('PYTHONPATH', '').split(os.pathsep) if path])
    result = subprocess.run([sys.executable, '-c', script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == \
        'jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_ []', result.stdout


@pytest.mark.parametrize('topic, namespace, expected', [
    ('jetson_shm/descriptors', '/', '/jetson_shm/descriptors'),
    ('jetson_shm/descriptors', '/robot1', '/robot1/jetson_shm/descriptors'),
    ('/camera/descriptors', '/robot1', '/camera/descriptors'),
    ('~/out', 'robot1', '/robot1/producer/out'),
])
def test_ros_topic_names_map_to_rt_topics(topic, namespace, expected):
    assert resolve_topic(topic, namespace, 'producer') == (expected, 'rt' + expected)


def test_invalid_topic_names_are_refused():
    for topic in ('bad name', 'a//b', '1abc', 'a/'):
        with pytest.raises(ValueError):
            resolve_topic(topic)


def test_cyclone_config_follows_the_ros_environment():
    assert domain_id({'ROS_DOMAIN_ID': '42'}) == 42 and domain_id({}) == 0
    with pytest.raises(ValueError):
        domain_id({'ROS_DOMAIN_ID': 'x'})
    config = cyclone_config({})
    assert '<IgnoreTypeInformation>1.15</IgnoreTypeInformation>' in config
    assert '127.0.0.1' not in config and '<Peers>' not in config
    local = cyclone_config({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                            'ROS_STATIC_PEERS': '10.0.0.7', 'CYCLONEDDS_URI': 'file:///x.xml'})
    assert 'address="127.0.0.1"' in local and '<Peer address="localhost"/>' in local
    assert '<Peer address="10.0.0.7"/>' in local and local.endswith(',file:///x.xml')
    assert 'address="127.0.0.1"' in cyclone_config({'ROS_LOCALHOST_ONLY': '1'})
