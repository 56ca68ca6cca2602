"""The option schemas (process.options, process.role_options): parsing, errors, derivations."""

from array import array

from jetson_shm_ros.core.errors import OptionError, ShmRosError
from jetson_shm_ros.process.options import launch_arguments, Option, parse_options
from jetson_shm_ros.process.role_options import (
    CONSUMER_OPTIONS, IMAGE_FILTER_NODE_OPTIONS, PRODUCER_OPTIONS)
import pytest

PRODUCER = {option.name: option for option in PRODUCER_OPTIONS}
CONSUMER = {option.name: option for option in CONSUMER_OPTIONS}


@pytest.mark.parametrize('name, given, expected', [
    ('rate_hz', 30, 30.0), ('rate_hz', '30', 30.0), ('rate_hz', '2.5', 2.5),
    ('slots', '4', 4), ('slots', 4.0, 4), ('frames', '4611686018427387904', 2**62),
    ('shape', '[64,64,3]', [64, 64, 3]), ('shape', '64,64', [64, 64]),
    ('shape', '480x640x3', [480, 640, 3]), ('shape', (2, 3), [2, 3]), ('shape', '[16]', [16]),
    ('shape', array('q', [4, 5]), [4, 5]),
    ('checksum', 'false', False), ('checksum', 'True', True), ('checksum', False, False),
    ('policy', 'reliable', 'reliable'), ('frame_id', 7, '7'), ('dtype', 'float32', 'float32'),
])
def test_values_are_accepted_as_users_type_them(name, given, expected):
    parsed = PRODUCER[name].parse(given)
    assert parsed == expected and type(parsed) is type(expected), (given, parsed)


@pytest.mark.parametrize('name, given, words', [
    ('rate_hz', '0', 'rate_hz=0 is not allowed: rate_hz must be a number from 0.001 to 100000'),
    ('rate_hz', 'fast', 'rate_hz must be a number from 0.001 to 100000'),
    ('rate_hz', 'nan', 'rate_hz must be a number'),
    ('rate_hz', True, 'rate_hz=True is not allowed'),
    ('slots', 0, 'slots must be an integer from 1 to 1024'),
    ('slots', 2.5, 'slots=2.5 is not allowed'),
    ('frames', -1, 'frames must be an integer from 0 to'),
    ('wait_for_consumers', 17, 'wait_for_consumers must be an integer from 0 to 16'),
    ('policy', 'fast', 'policy=fast is not allowed: policy must be one of latest, reliable'),
    ('backend', 'gpu', 'backend must be one of auto, cpu, pinned, cuda_ipc'),
    ('shape', '[0,3]', 'shape must be a list of up to 8 integers >= 1'),
    ('shape', '[]', 'shape=[] is not allowed'),
    ('shape', [1] * 9, 'up to 8 integers'),
    ('shape', '[64,abc]', 'shape=[64,abc] is not allowed'),
    ('checksum', 'maybe', 'checksum must be true or false'),
    ('dtype', 'object', "dtype=object is not allowed: dtype 'object' is not supported"),
])
def test_a_bad_value_is_one_line_naming_option_value_and_what_is_allowed(name, given, words):
    with pytest.raises(OptionError) as error:
        PRODUCER[name].parse(given)
    message = str(error.value)
    assert words in message, message
    assert '\n' not in message
    assert isinstance(error.value, ShmRosError) and error.value.reason == 'bad_option'


def test_parse_options_fills_defaults_and_refuses_unknown_names():
    values = parse_options(CONSUMER_OPTIONS, {'frames': '10'})
    assert values['frames'] == 10 and values['queue_depth'] == 16
    assert set(values) == set(CONSUMER)
    with pytest.raises(OptionError, match='unknown option.*rate_hz'):
        parse_options(CONSUMER_OPTIONS, {'rate_hz': 30})


def test_a_new_role_defines_its_own_tuple_of_options():
    # e.g. an image filter: a float list with a range per item, and choices.
    filter_options = (
        Option('mean', list, [0.485, 0.456, 0.406], 'Per-channel mean', item_type=float,
               minimum=0.0, maximum=1.0, max_items=4),
        Option('layout', str, 'chw', 'Output layout', choices=('chw', 'hwc')),
    )
    values = parse_options(filter_options, {'mean': '[0.5, 1, 0]'})
    assert values == {'mean': [0.5, 1.0, 0.0], 'layout': 'chw'}
    with pytest.raises(OptionError, match=r'mean=\[0.5,2\] .* numbers from 0 to 1'):
        parse_options(filter_options, {'mean': [0.5, 2]})


def test_a_schema_with_a_default_it_refuses_fails_when_written():
    with pytest.raises(OptionError, match='slots=0'):
        Option('slots', int, 0, 'Slots', minimum=1)
    with pytest.raises(TypeError):
        Option('shape', list, [1], 'Shape')  # a list needs its item type


def test_launch_arguments_are_every_option_of_the_nodes_that_have_it():
    arguments = {argument.name: argument for argument in launch_arguments(
        {'producer': PRODUCER_OPTIONS, 'consumer': CONSUMER_OPTIONS})}
    assert set(arguments) == set(PRODUCER) | set(CONSUMER)
    assert arguments['frames'].nodes == ('producer', 'consumer')
    assert arguments['rate_hz'].nodes == ('producer',)
    assert arguments['queue_depth'].nodes == ('consumer',)
    assert arguments['rate_hz'].value_type is float and arguments['slots'].value_type is int
    # YAML for lists and flags: launch_ros turns [480,640,3] into an integer array.
    assert arguments['shape'].value_type is None and arguments['checksum'].value_type is None
    assert 'one of latest, reliable' in arguments['policy'].description


def test_the_image_filter_options_check_one_value_per_channel():
    options = {option.name: option for option in IMAGE_FILTER_NODE_OPTIONS}
    assert options['mean'].parse('[0.5,0.5,0.5]') == [0.5, 0.5, 0.5]
    with pytest.raises(OptionError, match=r'mean=\[0.5,0.5\] .*one value per channel \(3\)'):
        options['mean'].parse([0.5, 0.5])
    with pytest.raises(OptionError, match='std must be a list of numbers >= 1e-09'):
        options['std'].parse([0.2, 0.0, 0.2])
    with pytest.raises(OptionError, match='output_order must be one of rgb, bgr'):
        options['output_order'].parse('rbg')
