"""
Check the constructor arguments of ShmPublisher and ShmSubscription before anything is made.

The ranges and choices are those of the options schema (process.role_options): `slots` here
is the producer's `slots` option, `required_readers` its `wait_for_consumers`, and so on, so
an argument and the node parameter of the same meaning accept the same values. Types are
strict here (an API caller passes values, not text): `slots='4'` or `checksum=1` are refused.
A bad argument raises ArgumentError with one line naming the class, the argument, the value
and what is allowed.
"""

from dataclasses import replace
import math
from typing import Any, Dict, Mapping, Optional

from jetson_shm_ros.core.descriptor import validate_shm_name
from jetson_shm_ros.core.errors import ArgumentError, DescriptorError, OptionError
from jetson_shm_ros.core.image_encodings import check_encoding
from jetson_shm_ros.core.payload import normalize_dtype
from jetson_shm_ros.process.options import Option
from jetson_shm_ros.process.role_options import CONSUMER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS
from rclpy.callback_groups import CallbackGroup
from rclpy.exceptions import InvalidTopicNameException
from rclpy.expand_topic_name import expand_topic_name
from rclpy.node import Node
from rclpy.validate_full_topic_name import validate_full_topic_name

_SCHEMA = {option.name: option for option in PRODUCER_NODE_OPTIONS + CONSUMER_NODE_OPTIONS}
# Constructor argument -> the schema option of the same meaning.
_SAME_AS = {'required_readers': 'wait_for_consumers', 'qos_depth': 'queue_depth'}


def _option(argument: str) -> Option:
    option = _SCHEMA[_SAME_AS.get(argument, argument)]
    return option if option.name == argument else replace(option, name=argument)


def _type_ok(option: Option, value: Any) -> bool:
    if isinstance(value, bool):
        return option.kind is bool
    if option.kind is float:
        return isinstance(value, (int, float))
    if option.kind is list:
        return isinstance(value, (list, tuple)) or hasattr(value, 'tolist')
    return isinstance(value, option.kind)


class _Checker:
    """Checks one constructor's arguments; every refusal names `owner`."""

    def __init__(self, owner: str):
        self.owner = owner

    def fail(self, argument: str, value: Any, allowed: str) -> None:
        raise ArgumentError(f'{self.owner}: {argument}={value!r} is not allowed: '
                            f'{argument} must be {allowed}')

    def option(self, argument: str, value: Any) -> Any:
        """Check `value` against the schema option of `argument`; return it parsed."""
        option = _option(argument)
        if not _type_ok(option, value):
            self.fail(argument, value, option.allowed())
        try:
            return option.parse(value)
        except OptionError as error:
            # The option's words, with the value as the caller passed it (repr).
            raise ArgumentError(f'{self.owner}: {argument}={value!r} is not allowed: '
                                f'{error.detail.split(" is not allowed: ", 1)[-1]}') from None

    def seconds(self, argument: str, value: Any, allow_none: bool = False) -> Any:
        """Check a duration that is not a node option: a finite number >= 0 (or None)."""
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            self.fail(argument, value, 'a finite number of seconds >= 0' +
                      (' or None' if allow_none else ''))
        return float(value)

    def common(self, node: Any, topic: Any, callback_group: Any) -> None:
        """Check what both endpoints take: the node, the topic and the callback group."""
        if not isinstance(node, Node):
            self.fail('node', node, 'an rclpy.node.Node')
        if not isinstance(topic, str) or not topic:
            self.fail('topic', topic, 'a non-empty topic name')
        try:
            validate_full_topic_name(expand_topic_name(topic, node.get_name(),
                                                       node.get_namespace()))
        except (InvalidTopicNameException, ValueError) as error:
            why = str(error).splitlines()[0].split(', at /')[0].rstrip(':')
            self.fail('topic', topic, f'a valid ROS topic name ({why})')
        if callback_group is not None and not isinstance(callback_group, CallbackGroup):
            self.fail('callback_group', callback_group, 'None or an rclpy CallbackGroup')


def publisher_arguments(node, topic, *, dtype, shape, slots, policy, backend, mode, encoding,
                        shm_name, checksum, release_timeout_s, required_readers, qos_depth,
                        diagnostics_period_s, discovery_timeout_s,
                        callback_group) -> Dict[str, Any]:
    """
    Check ShmPublisher's arguments; return the ones a check normalizes.

    :return: dtype (canonical), shape (a list of ints), release_timeout_s,
        diagnostics_period_s and discovery_timeout_s (floats or None)
    :raises ArgumentError: for the first argument outside its type, range or choices
    """
    check = _Checker('ShmPublisher')
    check.common(node, topic, callback_group)
    values = {name: check.option(name, value) for name, value in (
        ('dtype', dtype), ('shape', shape), ('slots', slots), ('policy', policy),
        ('backend', backend), ('mode', mode), ('encoding', encoding), ('shm_name', shm_name),
        ('checksum', checksum), ('release_timeout_s', release_timeout_s),
        ('required_readers', required_readers),
        ('diagnostics_period_s', diagnostics_period_s))}
    if qos_depth is not None:
        check.option('qos_depth', qos_depth)
    values['discovery_timeout_s'] = check.seconds('discovery_timeout_s', discovery_timeout_s,
                                                  allow_none=True)
    values['dtype'] = normalize_dtype(values['dtype'])
    if shm_name:
        try:
            validate_shm_name(shm_name)
        except DescriptorError as error:
            check.fail('shm_name', shm_name, f"'' or a valid shared-memory name ({error.detail})")
    try:
        check_encoding(encoding, values['dtype'], values['shape'])
    except DescriptorError as error:
        check.fail('encoding', encoding, f'an encoding that agrees with dtype and shape '
                   f'({error.detail})')
    return values


def subscription_arguments(node, topic, callback, *, backend, mode, verify, queue_depth,
                           allow_group_access, diagnostics_period_s,
                           callback_group) -> Mapping[str, Optional[float]]:
    """
    Check ShmSubscription's arguments.

    :return: diagnostics_period_s as a float
    :raises ArgumentError: for the first argument outside its type, range or choices
    """
    check = _Checker('ShmSubscription')
    check.common(node, topic, callback_group)
    if not callable(callback):
        check.fail('callback', callback, 'callable as callback(frame, info)')
    for name, value in (('backend', backend), ('mode', mode), ('verify', verify),
                        ('queue_depth', queue_depth),
                        ('allow_group_access', allow_group_access)):
        check.option(name, value)
    return {'diagnostics_period_s': check.option('diagnostics_period_s', diagnostics_period_s)}
