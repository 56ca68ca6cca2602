"""
The frame descriptor as plain Python, and the checks that need no mapped memory.

Nodes convert jetson_shm_ros_interfaces/msg/DataDescriptor to and from this class;
the ROS-free Cyclone DDS peer does the same with its IDL type.
"""

from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral
from operator import attrgetter
import re
from typing import List, Tuple

from jetson_shm_ros.core.errors import DescriptorError
from jetson_shm_ros.core.image_encodings import check_encoding
from jetson_shm_ros.core.payload import ALLOWED_DTYPES, MAX_DIMS, payload_nbytes

MEMORY_HOST_SHM = 0
MEMORY_CUDA_IPC = 1
MEMORY_KIND_NAMES = {MEMORY_HOST_SHM: 'host_shm', MEMORY_CUDA_IPC: 'cuda_ipc'}
CUDA_IPC_HANDLE_BYTES = 64

# POSIX allows any name with one leading slash; we allow a portable subset that is safe
# to join to /dev/shm: no further slashes, no '.' or '..', no control characters.
_SHM_NAME = re.compile(r'/[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}')


def validate_shm_name(name: str) -> str:
    """
    Check a POSIX shared-memory name.

    :param name: e.g. '/jetson_shm_ros.camera'
    :return: the name unchanged
    :raises DescriptorError: with reason 'bad_name'
    """
    if not isinstance(name, str) or not _SHM_NAME.fullmatch(name):
        raise DescriptorError(
            'bad_name', f'{name!r} is not a valid shared-memory name (want "/" then '
            'letters, digits, "_", "." or "-", at most 201 characters)')
    return name


# Integer fields and the bounds of their DataDescriptor.msg types.
WIRE_INTEGER_LIMITS = {'incarnation': 2**64, 'slot': 2**32, 'sequence': 2**64,
                       'offset': 2**64, 'nbytes': 2**64, 'checksum': 2**64, 'memory_kind': 2**8}
_integer_fields = attrgetter(*WIRE_INTEGER_LIMITS)


@dataclass
class Descriptor:
    """Where one frame lies; field meanings and units are those of DataDescriptor.msg."""

    shm_name: str
    incarnation: int
    slot: int
    sequence: int
    offset: int
    nbytes: int
    dtype: str
    shape: List[int]
    checksum: int = 0
    checksum_valid: bool = False
    memory_kind: int = MEMORY_HOST_SHM
    cuda_ipc_handle: bytes = b''
    cuda_event_handle: bytes = b''
    stamp_ns: int = 0
    frame_id: str = ''
    encoding: str = ''


def validate_static(desc: Descriptor) -> None:
    """
    Run every check that needs no mapped memory.

    The per-frame fields (integers, handles, sequence) are checked every time; what a stream
    keeps from frame to frame (name, dtype, shape, size, encoding) once per distinct value.

    :raises DescriptorError: naming the first rule the descriptor breaks
    """
    # Python callers (not only the wire types) build descriptors: a negative slot would index
    # from the end, a negative dimension pair would multiply to a plausible size.
    for name, limit, value in zip(WIRE_INTEGER_LIMITS, WIRE_INTEGER_LIMITS.values(),
                                  _integer_fields(desc)):
        # `type is int` first: the Integral ABC check costs ~0.3 us a field.
        if not (type(value) is int or isinstance(value, Integral)) or not 0 <= value < limit:
            raise DescriptorError('out_of_range', f'{name} {value!r} is not an integer in '
                                  f'[0, {limit})')
    shape = desc.shape
    if not all((type(dim) is int or isinstance(dim, Integral)) and 0 <= dim < 2**32
               for dim in shape):
        raise DescriptorError('bad_shape', f'shape {list(shape)} needs dims in [0, 2**32)')
    if desc.memory_kind not in MEMORY_KIND_NAMES:
        raise DescriptorError('bad_memory_kind', f'memory_kind {desc.memory_kind} is unknown')
    if desc.memory_kind == MEMORY_CUDA_IPC and \
            len(desc.cuda_ipc_handle) != CUDA_IPC_HANDLE_BYTES:
        raise DescriptorError(
            'bad_ipc_handle',
            f'cuda_ipc_handle has {len(desc.cuda_ipc_handle)} bytes, want {CUDA_IPC_HANDLE_BYTES}')
    if desc.cuda_event_handle and len(desc.cuda_event_handle) != CUDA_IPC_HANDLE_BYTES:
        raise DescriptorError(
            'bad_event_handle',
            f'cuda_event_handle has {len(desc.cuda_event_handle)} bytes, want 0 or '
            f'{CUDA_IPC_HANDLE_BYTES}')
    if desc.sequence == 0 or desc.sequence % 2:
        raise DescriptorError(
            'bad_sequence', f'sequence {desc.sequence} is not a published (even, non-zero) value')
    key = desc.shm_name, desc.dtype, tuple(int(dim) for dim in shape), desc.nbytes, \
        desc.encoding
    if all(isinstance(part, str) for part in (key[0], key[1], key[4])):
        _validate_layout(*key)
    else:  # a Python caller's odd types: checked (and refused) without the cache
        _validate_layout.__wrapped__(*key)


@lru_cache(maxsize=64)
def _validate_layout(shm_name, dtype, shape: Tuple[int, ...], nbytes: int, encoding) -> None:
    """Check the fields a stream keeps; cached, so only a new value pays (errors never cache)."""
    validate_shm_name(shm_name)
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise DescriptorError('bad_dtype', f'dtype {dtype!r} is not in the allow-list')
    if not 1 <= len(shape) <= MAX_DIMS:
        raise DescriptorError('bad_shape', f'shape {list(shape)} must have 1..{MAX_DIMS} dims')
    expected = payload_nbytes(dtype, shape)
    if expected != nbytes:
        raise DescriptorError(
            'size_mismatch', f'prod(shape {list(shape)}) * itemsize of {dtype} = '
            f'{expected} bytes, but nbytes = {nbytes}')
    if nbytes == 0:
        raise DescriptorError('bad_shape', 'payload is empty')
    check_encoding(encoding, dtype, list(shape))


# Fields that DataDescriptor.msg and its DDS sample carry under the descriptor's own names;
# the header (stamp, frame_id) is the only nested part. Both conversions derive from this.
WIRE_FIELDS = ('shm_name', 'incarnation', 'slot', 'sequence', 'offset', 'nbytes', 'dtype',
               'shape', 'encoding', 'checksum', 'checksum_valid', 'memory_kind',
               'cuda_ipc_handle', 'cuda_event_handle')
_BYTE_FIELDS = ('cuda_ipc_handle', 'cuda_event_handle')
# The wire fields that change from frame to frame of one stream; the rest (STREAM_FIELDS) stay
# while the producer keeps its segment, so a sender can reuse one message for them.
FRAME_FIELDS = ('slot', 'sequence', 'offset', 'checksum')
STREAM_FIELDS = tuple(name for name in WIRE_FIELDS if name not in FRAME_FIELDS)
NS_PER_S = 1_000_000_000
_wire_fields = attrgetter(*WIRE_FIELDS)
stream_fields = attrgetter(*STREAM_FIELDS)
frame_fields = attrgetter(*FRAME_FIELDS)


def to_wire(desc: Descriptor, byte_sequence=bytes) -> dict:
    """
    Return the descriptor's wire fields as keyword arguments for a message or DDS sample.

    :param byte_sequence: how the wire type wants uint8[] fields (bytes for rclpy, list for
        cyclonedds)
    """
    fields = {name: getattr(desc, name) for name in WIRE_FIELDS}
    fields['shape'] = [int(dim) for dim in desc.shape]
    for name in _BYTE_FIELDS:
        fields[name] = byte_sequence(fields[name])
    return fields


def from_wire(record, stamp_sec: int, stamp_nanosec: int, frame_id: str) -> Descriptor:
    """Build a descriptor (validated later) from a received message or DDS sample."""
    fields = dict(zip(WIRE_FIELDS, _wire_fields(record)))
    fields['shape'] = list(fields['shape'])
    for name in _BYTE_FIELDS:
        fields[name] = bytes(fields[name])
    return Descriptor(stamp_ns=stamp_sec * NS_PER_S + stamp_nanosec, frame_id=frame_id,
                      **fields)
