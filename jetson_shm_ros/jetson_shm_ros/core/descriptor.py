"""
The frame descriptor as plain Python, and the checks that need no mapped memory.

Nodes convert jetson_shm_ros_interfaces/msg/DataDescriptor to and from this class;
the ROS-free Cyclone DDS peer does the same with its IDL type.
"""

from dataclasses import dataclass
import re
from typing import List

from jetson_shm_ros.core.payload import ALLOWED_DTYPES, MAX_DIMS, payload_nbytes

MEMORY_HOST_SHM = 0
MEMORY_CUDA_IPC = 1
MEMORY_KIND_NAMES = {MEMORY_HOST_SHM: 'host_shm', MEMORY_CUDA_IPC: 'cuda_ipc'}
CUDA_IPC_HANDLE_BYTES = 64

# POSIX allows any name with one leading slash; we allow a portable subset that is safe
# to join to /dev/shm: no further slashes, no '.' or '..', no control characters.
_SHM_NAME = re.compile(r'/[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}')


class DescriptorError(ValueError):
    """A descriptor that must not be acted on; `reason` is a short stable counter key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f'{reason}: {detail}')
        self.reason = reason
        self.detail = detail


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


def validate_static(desc: Descriptor) -> None:
    """
    Run every check that needs no mapped memory.

    :raises DescriptorError: naming the first rule the descriptor breaks
    """
    validate_shm_name(desc.shm_name)
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
    if desc.dtype not in ALLOWED_DTYPES:
        raise DescriptorError('bad_dtype', f'dtype {desc.dtype!r} is not in the allow-list')
    if not 1 <= len(desc.shape) <= MAX_DIMS:
        raise DescriptorError('bad_shape',
                              f'shape {list(desc.shape)} must have 1..{MAX_DIMS} dims')
    expected = payload_nbytes(desc.dtype, desc.shape)
    if expected != desc.nbytes:
        raise DescriptorError(
            'size_mismatch', f'prod(shape {list(desc.shape)}) * itemsize of {desc.dtype} = '
            f'{expected} bytes, but nbytes = {desc.nbytes}')
    if desc.nbytes == 0:
        raise DescriptorError('bad_shape', 'payload is empty')
