"""
Schema -> rclpy parameters (jetson_shm_ros.ros.parameters), with a real node and overrides.

Overrides reach a node the way `-p name:=value`, YAML files and launch give them; the
executables' `[FATAL]` line for a bad value is checked in test_end_to_end-style processes.
"""

import random

from jetson_shm_ros.core.errors import OptionError
from jetson_shm_ros.core.options import CONSUMER_OPTIONS, Option, PRODUCER_OPTIONS
from jetson_shm_ros.ros.parameters import declare_options
import pytest
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter


# Parameters every rclpy node has (Kilted adds the type description service's).
RCLPY_OWN = {'use_sim_time', 'start_type_description_service'}


def _declared(node: Node) -> set:
    """Return the node's own parameters: not rclpy's, not its endpoints' QoS overrides."""
    return {name for name in node._parameters
            if name not in RCLPY_OWN and not name.startswith('qos_overrides.')}


@pytest.fixture
def context():
    """Give each test its own rclpy context and domain."""
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.SystemRandom().randrange(100, 200))
    yield ctx
    rclpy.try_shutdown(context=ctx)


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
    from jetson_shm_ros.nodes.producer import ProducerNode

    producer = ProducerNode(context=context, parameter_overrides=[
        Parameter('shm_name', value=shm_name), Parameter('shape', value=[8])])
    consumer = ConsumerNode(context=context)
    try:
        for node, schema in ((producer, PRODUCER_OPTIONS), (consumer, CONSUMER_OPTIONS)):
            assert _declared(node) == {option.name for option in schema}, node.get_name()
    finally:
        for node in (producer, consumer):
            node.shutdown()
            node.destroy_node()
