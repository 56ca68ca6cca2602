"""
Schema -> rclpy parameters (jetson_shm_ros.ros.parameters), with a real node and overrides.

Overrides reach a node the way YAML files and launch give them (`parameter_overrides`); the
installed executables get `-p name:=value` as users type it.
"""

from jetson_shm_ros.core.errors import OptionError
from jetson_shm_ros.process.options import Option
from jetson_shm_ros.process.role_options import (
    CONSUMER_NODE_OPTIONS, IMAGE_FILTER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS, PRODUCER_OPTIONS)
from jetson_shm_ros.ros.parameters import declare_options
from node_processes import isolated_env, NodeProcess
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter


# Parameters every rclpy node has (Kilted adds the type description service's).
RCLPY_OWN = {'use_sim_time', 'start_type_description_service'}


def _declared(node: Node) -> set:
    """Return the node's own parameters: not rclpy's, not its endpoints' QoS overrides."""
    return {name for name in node._parameters
            if name not in RCLPY_OWN and not name.startswith('qos_overrides.')}


@pytest.fixture
def make_node(context):
    nodes = []

    def make(**overrides):
        node = Node('jsr_test_parameters', context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])
        nodes.append(node)
        return node
    yield make
    for node in nodes:
        node.destroy_node()


def test_every_option_becomes_a_read_only_described_parameter_with_its_range(make_node):
    node = make_node()
    values = declare_options(node, PRODUCER_OPTIONS)
    assert values == {option.name: option.default for option in PRODUCER_OPTIONS}
    assert _declared(node) == set(values)
    for option in PRODUCER_OPTIONS:
        descriptor = node.describe_parameter(option.name)
        assert descriptor.description == option.description and descriptor.read_only
        assert descriptor.additional_constraints == option.allowed()
    rate = node.describe_parameter('rate_hz').floating_point_range[0]
    assert (rate.from_value, rate.to_value) == (0.001, 100000.0)
    slots = node.describe_parameter('slots').integer_range[0]
    assert (slots.from_value, slots.to_value) == (1, 1024)
    assert node.get_parameter('shape').type_ == Parameter.Type.INTEGER_ARRAY


def test_values_as_users_type_them_are_accepted_and_stored_with_the_option_type(make_node):
    node = make_node(rate_hz=30, shape='[64,64,3]', checksum='false', frames=10)
    values = declare_options(node, PRODUCER_OPTIONS)
    assert values['rate_hz'] == 30.0 and values['shape'] == [64, 64, 3]
    assert values['checksum'] is False and values['frames'] == 10
    rate = node.get_parameter('rate_hz')
    assert rate.type_ == Parameter.Type.DOUBLE and rate.value == 30.0
    assert list(node.get_parameter('shape').value) == [64, 64, 3]


@pytest.mark.parametrize('name, value, words', [
    ('rate_hz', 0, 'rate_hz=0 is not allowed: rate_hz must be a number from 0.001 to 100000'),
    ('slots', 0, 'slots must be an integer from 1 to 1024'),
    ('policy', 'fast', 'policy must be one of latest, reliable'),
    ('shape', [64, -1], 'shape=[64,-1] is not allowed'),
    ('rate_hz', 'fast', 'rate_hz=fast is not allowed'),
])
def test_a_bad_value_is_one_clear_line_and_is_not_declared(make_node, name, value, words):
    node = make_node(**{name: value})
    with pytest.raises(OptionError) as error:
        declare_options(node, PRODUCER_OPTIONS)
    assert words in str(error.value) and '\n' not in str(error.value), str(error.value)
    assert not node.has_parameter(name)


def test_float_lists_and_any_role_schema_declare_too(make_node):
    options = (Option('mean', list, [0.5, 0.5], 'Per-channel mean', item_type=float,
                      minimum=0.0, maximum=1.0),
               Option('frames', int, 0, 'Frames', minimum=0))
    node = make_node(mean=[1, 0])
    assert declare_options(node, options) == {'mean': [1.0, 0.0], 'frames': 0}
    assert node.get_parameter('mean').type_ == Parameter.Type.DOUBLE_ARRAY
    frames = node.describe_parameter('frames').integer_range[0]
    assert frames.from_value == 0 and frames.to_value == 2**63 - 1


def test_the_nodes_declare_exactly_their_schema(context, shm_name):
    from jetson_shm_ros.nodes.consumer import ConsumerNode
    from jetson_shm_ros.nodes.image_filter import ImageFilterNode
    from jetson_shm_ros.nodes.producer import ProducerNode

    producer = ProducerNode(context=context, parameter_overrides=[
        Parameter('shm_name', value=shm_name), Parameter('shape', value=[8])])
    consumer = ConsumerNode(context=context)
    image_filter = ImageFilterNode(context=context, parameter_overrides=[
        Parameter('mean', value=[0, 1, 1])])  # integers for a float list are fine too
    try:
        for node, schema in ((producer, PRODUCER_NODE_OPTIONS),
                             (consumer, CONSUMER_NODE_OPTIONS),
                             (image_filter, IMAGE_FILTER_NODE_OPTIONS)):
            assert _declared(node) == {option.name for option in schema}, node.get_name()
        assert list(image_filter.get_parameter('mean').value) == [0.0, 1.0, 1.0]
    finally:
        for node in (producer, consumer, image_filter):
            node.shutdown()
            node.destroy_node()


def test_the_producer_takes_an_integer_rate_as_users_type_it(processes, shm_name):
    producer = processes.start(NodeProcess('producer', {
        'shm_name': shm_name, 'shape': '[16]', 'rate_hz': 200, 'frames': 3}, isolated_env()))
    assert producer.finish() == 0, producer.output()
    assert 'rate=200.0 Hz frames=3' in producer.output()
    assert 'done: published=3 ' in producer.output()


@pytest.mark.parametrize('name, value, words', [
    ('rate_hz', 0, 'rate_hz=0 is not allowed: rate_hz must be a number from 0.001 to 100000'),
    ('shape', '[64,0]', 'shape=[64,0] is not allowed'),
    ('policy', 'sometimes', 'policy must be one of latest, reliable'),
])
def test_a_bad_parameter_ends_start_up_with_one_fatal_line(processes, shm_name, name, value,
                                                           words):
    producer = processes.start(NodeProcess(
        'producer', {'shm_name': shm_name, name: value}, isolated_env()))
    assert producer.finish() == 2, producer.output()
    fatal = [line for line in producer.output().splitlines() if line.startswith('[FATAL]')]
    assert fatal == [f'[FATAL] bad_option: {fatal[0].split(": ", 1)[1]}'] and words in fatal[0], \
        producer.output()
    assert 'Traceback' not in producer.output()
