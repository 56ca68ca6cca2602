"""
Declare a role's options (process.options) as read-only rclpy node parameters.

Each option becomes a parameter with its description, its range (integer_range or
floating_point_range) and its allowed values in words (additional_constraints). The value a
user gave (`-p rate_hz:=30`, a YAML file, launch) is checked by the option itself before it is
declared, so an integer for a float parameter is accepted, text like "[64,64,3]" becomes a
list, and a bad value raises one OptionError line (printed as `[FATAL] ...` by process.runner)
instead of rclpy's type or range exception. Works on Humble's rclpy.
"""

from typing import Any, Dict, Sequence

from jetson_shm_ros.process.options import Option
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

_INT64 = (-2**63, 2**63 - 1)


def parameter_descriptor(option: Option) -> ParameterDescriptor:
    """Return the read-only ParameterDescriptor of `option` (ranges for scalar numbers)."""
    descriptor = ParameterDescriptor(description=option.description, read_only=True,
                                     additional_constraints=option.allowed())
    low, high = option.minimum, option.maximum
    if low is None and high is None:
        return descriptor
    if option.kind is int:
        descriptor.integer_range = [IntegerRange(
            from_value=int(_INT64[0] if low is None else low),
            to_value=int(_INT64[1] if high is None else high), step=0)]
    elif option.kind is float:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float('-inf' if low is None else low),
            to_value=float('inf' if high is None else high), step=0.0)]
    return descriptor


def _given(node: Node, name: str):
    # rclpy keeps what --ros-args, parameter files and parameter_overrides gave in
    # `_parameter_overrides` (Humble to Kilted); there is no public getter before declaring.
    parameter = getattr(node, '_parameter_overrides', {}).get(name)
    if parameter is None or parameter.type_ == Parameter.Type.NOT_SET:
        return None
    return parameter


def declare_options(node: Node, options: Sequence[Option]) -> Dict[str, Any]:
    """
    Declare every option of a role on `node` and return the checked values.

    :param node: the node, before it reads any of these parameters
    :param options: the role's schema, e.g. PRODUCER_OPTIONS
    :return: option name -> value (given or default), parsed and checked by the option
    :raises OptionError: for a given value outside its option's type, range or choices
    """
    values = {}
    for option in options:
        given = _given(node, option.name)
        value = option.parse(option.default if given is None else given.value)
        # Declared with the parsed value, so e.g. rate_hz:=30 is stored as the double 30.0.
        node.declare_parameter(option.name, value, parameter_descriptor(option),
                               ignore_override=True)
        values[option.name] = value
    return values
