"""
Start-up options: one `Option` per setting, one tuple of them per role (no ROS needed).

An Option has a name, type, default, range or choices, and description; the roles' tuples
are in process.role_options. From a tuple come the rclpy parameter declarations
(`jetson_shm_ros.ros.parameters`), the ROS-free CLI (`python -m jetson_shm_ros.dds`), the
launch files' arguments (`launch_arguments`) and the checks of a value (`Option.parse`), so
all four agree. Values are accepted as users type them: `30` for a float, `"[64,64,3]"` or
`64x64x3` for a list, `true`/`false` for a flag. A bad one raises OptionError with one line
that names the option, the value and what is allowed.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from jetson_shm_ros.core.errors import OptionError

OPTION_TYPES = (bool, int, float, str, list)
_TRUE = ('true', 'yes', 'on', '1')
_FALSE = ('false', 'no', 'off', '0')
_TYPE_WORDS = {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string'}


@dataclass(frozen=True)
class Option:
    """
    One start-up option of a role.

    :param name: parameter / CLI / launch argument name
    :param kind: the value's type: bool, int, float, str, or list (of `item_type`)
    :param default: value when none is given
    :param description: one sentence for parameter descriptors, --help and --show-args
    :param minimum: smallest allowed number (of each item for a list); None: unbounded
    :param maximum: largest allowed number (of each item for a list); None: unbounded
    :param choices: the allowed strings; empty: any
    :param item_type: element type of a list option (int, float or str)
    :param max_items: most elements of a list option
    :param check: further check of the parsed value; raises ValueError saying why
    """

    name: str
    kind: type
    default: Any
    description: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    item_type: Optional[type] = None
    max_items: Optional[int] = None
    check: Optional[Callable[[Any], Any]] = None

    def __post_init__(self):
        if self.kind not in OPTION_TYPES:
            raise TypeError(f'option {self.name}: type must be one of {OPTION_TYPES}')
        if (self.kind is list) != (self.item_type in (int, float, str)):
            raise TypeError(f'option {self.name}: a list needs item_type int, float or str')
        self.parse(self.default)  # a schema whose default is refused is a bug: fail on import

    @property
    def number_type(self) -> Optional[type]:
        """Return int or float for numeric options and lists, else None."""
        kind = self.item_type if self.kind is list else self.kind
        return kind if kind in (int, float) else None

    def allowed(self) -> str:
        """Say in words what the option accepts, e.g. 'an integer from 1 to 1024'."""
        if self.choices:
            return 'one of ' + ', '.join(self.choices)
        if self.kind is list:
            items = {int: 'integers', float: 'numbers', str: 'names'}[self.item_type]
            most = f'up to {self.max_items} ' if self.max_items else ''
            return f'a list of {most}{items}{self._range_words()}, e.g. {_show(self.default)}'
        return _TYPE_WORDS[self.kind] + self._range_words()

    def _range_words(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f' from {_show(low)} to {_show(high)}'
        if low is not None:
            return f' >= {_show(low)}'
        if high is not None:
            return f' <= {_show(high)}'
        return ''

    def parse(self, value: Any) -> Any:
        """
        Turn a value as given (typed, or text from a command line) into the option's type.

        :return: the checked value (an int given for a float becomes a float, text a list)
        :raises OptionError: with one line naming the option, the value and what is allowed
        """
        try:
            if self.kind is list:
                parsed = [self._item(item) for item in _items(value, self.item_type)]
                if not parsed or (self.max_items and len(parsed) > self.max_items):
                    raise ValueError('wrong length')
            elif self.kind in (int, float):
                parsed = self._number(value, self.kind)
            else:
                parsed = _SCALAR_PARSERS[self.kind](value)
                if self.choices and parsed not in self.choices:
                    raise ValueError('not a choice')
        except ValueError:
            raise OptionError(f'{self.name}={_show(value)} is not allowed: '
                              f'{self.name} must be {self.allowed()}') from None
        if self.check is not None:
            try:
                self.check(parsed)
            except ValueError as error:
                detail = getattr(error, 'detail', error)  # a ShmRosError without its reason
                raise OptionError(f'{self.name}={_show(value)} is not allowed: {detail}') \
                    from None
        return parsed

    def _item(self, value: Any):
        if self.item_type is str:
            text = _str(value).strip()
            if not text:
                raise ValueError('empty name')
            return text
        return self._number(value, self.item_type)

    def _number(self, value: Any, kind: type):
        number = _SCALAR_PARSERS[kind](value)
        if (self.minimum is not None and not number >= self.minimum) or \
                (self.maximum is not None and not number <= self.maximum):
            raise ValueError('out of range')
        return number


def _is_sequence(value: Any) -> bool:
    # rclpy hands array parameters over as array.array; NumPy arrays count too.
    return isinstance(value, (list, tuple)) or hasattr(value, 'tolist')


def _show(value: Any) -> str:
    if _is_sequence(value):
        return '[' + ','.join(_show(item) for item in value) + ']'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 100000 rather than 100000.0 in messages
    # Text as typed (rate_hz=0, policy=fast); only an empty or padded one is quoted.
    if isinstance(value, str) and (not value or value != value.strip()):
        return repr(value)
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError('not a flag')


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError('a flag is not a number')
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip('+-').isdigit():
        return int(value.strip())  # exact, also beyond a float's 53 bits
    number = _float(value)
    if not number.is_integer():
        raise ValueError('not an integer')
    return int(number)


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError('not a number')
    return float(value.strip() if isinstance(value, str) else value)


def _str(value: Any) -> str:
    # `frame_id:=7` reaches a node as the integer 7: what the user typed is still the text 7.
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError('not a string')
    return value if isinstance(value, str) else str(value)


_SCALAR_PARSERS = {bool: _bool, int: _int, float: _float, str: _str}


def _items(value: Any, item_type: type) -> List[Any]:
    """Split '[64,64,3]', '64,64,3' or '64x64x3', or '[a,b]' (or take a list as it is)."""
    if _is_sequence(value):
        return list(value)
    if not isinstance(value, str):
        raise ValueError('not a list')
    text = value.strip().strip('[]()')
    if item_type is not str:
        text = text.replace('x', ',')
    return [part for part in text.split(',') if part.strip()]


def parse_options(options: Sequence[Option], values: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Check `values` against a role's options and fill in the defaults.

    :param options: the role's schema, e.g. PRODUCER_OPTIONS
    :param values: option name -> value as given (missing ones take their default)
    :return: option name -> parsed value, for every option of the role
    :raises OptionError: for an unknown name or a value its option refuses
    """
    known = {option.name: option for option in options}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise OptionError(f'unknown option(s) {", ".join(unknown)}; '
                          f'known: {", ".join(known)}')
    return {name: option.parse(values.get(name, option.default))
            for name, option in known.items()}


class LaunchArgument(NamedTuple):
    """A launch argument that sets the parameter of the same name on `nodes`."""

    name: str
    value_type: Optional[type]  # for launch_ros ParameterValue; None: YAML (lists, flags)
    nodes: Tuple[str, ...]
    description: str


def launch_arguments(roles: Mapping[str, Sequence[Option]],
                     names: Optional[Sequence[str]] = None) -> List[LaunchArgument]:
    """
    Derive one launch argument per option name over the given nodes' schemas.

    :param roles: node name -> its options, e.g. {'producer': PRODUCER_NODE_OPTIONS}
    :param names: only these options, in this order (default: all, in schema order)
    :return: the arguments; an option of several nodes sets it on each
    :raises KeyError: for a name that no node has
    """
    merged: Dict[str, Tuple[Option, List[str]]] = {}
    for node, options in roles.items():
        for option in options:
            merged.setdefault(option.name, (option, []))[1].append(node)
    arguments = []
    for name in merged if names is None else names:
        option, nodes = merged[name]
        description = option.description if option.kind is str and not option.choices \
            else f'{option.description}; {option.allowed()}'
        value_type = None if option.kind in (list, bool) else option.kind
        arguments.append(LaunchArgument(name, value_type, tuple(nodes), description))
    return arguments
