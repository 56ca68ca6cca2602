"""
The command line of a node process, read before rclpy.init: one clear line for what is wrong.

- A `-p name:=value` whose value is not YAML (`-p shape:=[1024,1024`) is refused here, with
  the rule, instead of rcl's parse error and an rclpy traceback.
- Arguments outside `--ros-args` (`producer --rate_hz 0`) are refused: rclpy would silently
  ignore them. The line says how to write them as parameters.
- When `-p` sets one parameter several times, the last one wins, as rclpy documents, whatever
  the types (rcl keeps an integer and a double side by side and rclpy then reads the integer).

Errors are OptionError: run_node prints them as one `[FATAL]` line and exits 2, like any
start-up error.
"""

from typing import Dict, List, Sequence

from jetson_shm_ros.core.errors import OptionError
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.parameter import Parameter
from rclpy.utilities import remove_ros_args
import yaml

RCLError = _rclpy.RCLError
_PARAM_FLAGS = ('-p', '--param')


def _ros_sections(argv: Sequence[str]) -> List[str]:
    """Return the tokens inside `--ros-args ... [--]` sections, in order."""
    tokens, inside = [], False
    for token in argv:
        if token == '--ros-args':
            inside = True
        elif token == '--' and inside:
            inside = False
        elif inside:
            tokens.append(token)
    return tokens


def _parameter_rules(argv: Sequence[str]) -> List[str]:
    """Return the `[node:]name:=value` rules of every -p/--param, in order."""
    tokens = _ros_sections(argv)
    return [tokens[index + 1] for index, token in enumerate(tokens[:-1])
            if token in _PARAM_FLAGS]


def _as_parameter_option(token: str) -> str:
    name = token.lstrip('-').replace('-', '_')
    return f'-p {name}:=' if token.startswith('--') else token


def _check_unexpected(argv: Sequence[str], with_program: bool) -> None:
    rest = remove_ros_args(list(argv))
    if with_program:
        rest = rest[1:]  # the program name ('-c' under `python -c`)
    if not rest:
        return
    hint, index = [], 0
    while index < len(rest):
        token = rest[index]
        value = rest[index + 1] if index + 1 < len(rest) else None
        if token.startswith('--') and value is not None and not value.startswith('--'):
            hint.append(_as_parameter_option(token) + value)
            index += 2
        else:
            hint.append(_as_parameter_option(token) + ('true' if token.startswith('--')
                                                       else ''))
            index += 1
    raise OptionError(f'unexpected argument(s) {" ".join(rest)!r}: node options are ROS '
                      f'parameters, e.g. --ros-args {" ".join(hint)}')


def _value(rule: str):
    name, _, text = rule.partition(':=')
    if not _ or not name:
        raise OptionError(f'-p {rule} is not a parameter override: write -p name:=value')
    try:
        return name, yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = getattr(error, 'problem', None) or str(error).splitlines()[0]
        raise OptionError(f'-p {rule} is not allowed: the value of {name} is not valid YAML '
                          f'({problem}); e.g. -p shape:=[480,640,3]') from None


def _parameter(name: str, value) -> Parameter:
    try:
        return Parameter(name, value=value)
    except (TypeError, ValueError):  # e.g. a list of mixed types: let the option read the text
        return Parameter(name, Parameter.Type.STRING, str(value))


def read_command_line(argv: Sequence[str], with_program: bool = True) -> List[Parameter]:
    """
    Check a node's command line before rclpy.init.

    :param argv: the process arguments
    :param with_program: whether argv[0] is the program name (as in sys.argv)
    :return: parameter_overrides for the node: the last value of each parameter that `-p`
        sets more than once (empty when none is)
    :raises OptionError: for a malformed -p value or an argument outside --ros-args
    :raises RCLError: for a command line that rcl refuses otherwise (see rcl_problem)
    """
    last: Dict[str, object] = {}
    seen: Dict[str, int] = {}
    for rule in _parameter_rules(argv):
        name, value = _value(rule)
        last[name] = value
        seen[name] = seen.get(name, 0) + 1
    _check_unexpected(argv, with_program)
    # Only unqualified names (`node:name:=v` is left to rcl), and only what -p set twice.
    return [_parameter(name, value) for name, value in last.items()
            if seen[name] > 1 and ':' not in name]


def rcl_problem(error: Exception) -> str:
    """Return rcl's complaint about a command line without its source locations."""
    text = str(error).replace('failed to initialize rcl: ', '')
    return text.split(', at /')[0].split('. Error:')[0]
