"""
The DDS type of DataDescriptor, derived at run time from DataDescriptor.msg.

ROS 2 maps a message `<pkg>/msg/<Msg>` to the DDS type `<pkg>::msg::dds_::<Msg>_` with the
fields in .msg order, nested messages as nested structs, `T[]` as `sequence<T>`, `T[N]` as
`T[N]` and `T[<=N]` as `sequence<T, N>`; constants are not fields. This module applies that
mapping to the .msg text itself, so the type exists once (in the interface package) and this
ROS-free side cannot drift from what rosidl generates. No ROS package is imported.
"""

from dataclasses import dataclass
import os
import re
from typing import Dict, List, Optional, Tuple, Type

from cyclonedds.idl import IdlStruct, make_idl_struct
import cyclonedds.idl.types as idl_types

INTERFACES_PACKAGE = 'jetson_shm_ros_interfaces'
MESSAGE = 'DataDescriptor'
MSG_FILE = MESSAGE + '.msg'

# The ROS messages DataDescriptor.msg refers to, as their (comment-free) .msg text. Both have
# been unchanged since ROS 2 Foxy; test_dds_idl.py compares them with rclpy's generated classes.
KNOWN_MSGS: Dict[str, str] = {
    'std_msgs/Header': 'builtin_interfaces/Time stamp\nstring frame_id\n',
    'builtin_interfaces/Time': 'int32 sec\nuint32 nanosec\n',
}

_PRIMITIVES = {
    'bool': bool, 'byte': idl_types.byte, 'char': idl_types.uint8,
    'float32': idl_types.float32, 'float64': idl_types.float64,
    'int8': idl_types.int8, 'uint8': idl_types.uint8, 'int16': idl_types.int16,
    'uint16': idl_types.uint16, 'int32': idl_types.int32, 'uint32': idl_types.uint32,
    'int64': idl_types.int64, 'uint64': idl_types.uint64, 'string': str,
}
# Where rosidl's IDL spells a .msg primitive differently.
_ROSIDL_NAMES = {'bool': 'boolean', 'byte': 'octet', 'char': 'uint8', 'float32': 'float',
                 'float64': 'double'}
_FIELD = re.compile(
    r'(?P<base>[A-Za-z][\w/]*)(?:<=(?P<string_bound>\d+))?'
    r'(?:\[(?P<array_bound><=)?(?P<size>\d*)\])?')


class MsgError(ValueError):
    """The .msg text uses something this mapping does not cover."""


@dataclass(frozen=True)
class MsgField:
    """One field of a .msg file: `uint32[] shape` is MsgField('shape', 'uint32', 'sequence')."""

    name: str
    base: str               # primitive name or '<pkg>/<Msg>'
    kind: str = 'single'    # 'single', 'sequence' (T[] / T[<=N]) or 'array' (T[N])
    bound: int = 0          # sequence bound or array size; 0 = unbounded
    string_bound: int = 0   # string<=N

    def rosidl_type(self) -> str:
        """Spell the type like rosidl's get_fields_and_field_types(), e.g. 'sequence<uint32>'."""
        base = _ROSIDL_NAMES.get(self.base, self.base)
        if self.string_bound:
            base = f'{base}<{self.string_bound}>'
        if self.kind == 'array':
            return f'{base}[{self.bound}]'
        if self.kind == 'sequence':
            return f'sequence<{base}, {self.bound}>' if self.bound else f'sequence<{base}>'
        return base


def parse_msg(text: str, package: str) -> List[MsgField]:
    """
    Read the fields (not the constants) of a .msg file.

    :param text: the .msg file content
    :param package: the package the message belongs to (for unqualified nested types)
    :return: the fields in order
    :raises MsgError: on syntax this module does not map
    """
    fields = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split('#', 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise MsgError(f'line {number}: {raw!r} is not "<type> <name>"')
        type_text, name = parts[0], parts[1]
        if '=' in name:  # a constant such as `uint8 MEMORY_HOST_SHM=0`
            continue
        match = _FIELD.fullmatch(type_text)
        if not match or not re.fullmatch(r'[a-z][a-z0-9_]*', name):
            raise MsgError(f'line {number}: cannot map {raw!r}')
        base = match['base']
        if base not in _PRIMITIVES:
            if '/' not in base:
                base = f'{package}/{base}'
            if base.count('/') != 1:
                raise MsgError(f'line {number}: type {base!r} is not <pkg>/<Msg>')
        if match['string_bound'] and base != 'string':
            raise MsgError(f'line {number}: only strings take a <=N bound')
        kind, bound = 'single', 0
        if type_text.endswith(']'):
            kind = 'array' if match['size'] and not match['array_bound'] else 'sequence'
            bound = int(match['size'] or 0)
            if match['array_bound'] and not bound:
                raise MsgError(f'line {number}: bounded sequence without a bound')
        fields.append(MsgField(name, base, kind, bound, int(match['string_bound'] or 0)))
    return fields


def dds_type_name(ros_type: str) -> str:
    """Map 'std_msgs/Header' to the DDS type name 'std_msgs::msg::dds_::Header_'."""
    package, message = ros_type.split('/')
    return f'{package}::msg::dds_::{message}_'


def msg_path() -> str:
    """
    Find DataDescriptor.msg without ROS.

    Looked for, in order: the copy setup.py installs beside this module; the interface
    package of a source checkout; share/jetson_shm_ros_interfaces/msg/ of every prefix in
    AMENT_PREFIX_PATH.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(here, MSG_FILE),
        os.path.join(here, '..', '..', '..', INTERFACES_PACKAGE, 'msg', MSG_FILE),
    ]
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(os.path.join(prefix, 'share', INTERFACES_PACKAGE, 'msg', MSG_FILE))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return os.path.normpath(candidate)
    raise FileNotFoundError(f'{MSG_FILE} not found; looked at: ' + ', '.join(
        os.path.normpath(path) for path in candidates))


class TypeBuilder:
    """Turns .msg fields into cyclonedds IdlStruct classes, nested types included."""

    def __init__(self, sources: Optional[Dict[str, str]] = None):
        """:param sources: .msg text by ROS type name; KNOWN_MSGS are always available."""
        self._sources = dict(KNOWN_MSGS, **(sources or {}))
        self._structs: Dict[str, Type[IdlStruct]] = {}

    def fields(self, ros_type: str) -> List[MsgField]:
        """Return the parsed fields of a known message."""
        if ros_type not in self._sources:
            raise MsgError(f'no .msg text for {ros_type}')
        return parse_msg(self._sources[ros_type], ros_type.split('/')[0])

    def struct(self, ros_type: str) -> Type[IdlStruct]:
        """Build (once) the IdlStruct of a message, e.g. 'std_msgs/Header'."""
        if ros_type not in self._structs:
            annotations = {field.name: self._field_type(field) for field in self.fields(ros_type)}
            self._structs[ros_type] = make_idl_struct(
                ros_type.split('/')[1] + '_', dds_type_name(ros_type), annotations)
        return self._structs[ros_type]

    def _field_type(self, field: MsgField):
        base = self.struct(field.base) if field.base not in _PRIMITIVES else \
            _PRIMITIVES[field.base]
        if field.string_bound:
            base = idl_types.bounded_str[field.string_bound]
        if field.kind == 'array':
            return idl_types.array[base, field.bound]
        if field.kind == 'sequence':
            return idl_types.sequence[base, field.bound] if field.bound else \
                idl_types.sequence[base]
        return base


def descriptor_type(path: Optional[str] = None) -> Tuple[Type[IdlStruct], TypeBuilder]:
    """
    Build the DDS type of DataDescriptor from its .msg file.

    :param path: the .msg file; found with msg_path() when None
    :return: the IdlStruct class (typename jetson_shm_ros_interfaces::msg::dds_::DataDescriptor_)
        and the builder that holds its nested types (builder.struct('std_msgs/Header'), ...)
    """
    with open(path or msg_path(), encoding='utf-8') as source:
        text = source.read()
    ros_type = f'{INTERFACES_PACKAGE}/{MESSAGE}'
    builder = TypeBuilder({ros_type: text})
    return builder.struct(ros_type), builder
