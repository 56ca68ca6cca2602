"""
Compute backends: who writes and reads slot memory, and with what.

A backend is told once about each segment (`prepare`, e.g. to pin it for the GPU) and
forgets it before the segment is unmapped (`forget`). The CPU backend here works
everywhere; GPU backends live in jetson_shm_ros.core.gpu and are imported only on demand,
so CuPy stays optional.
"""

from typing import Optional, Sequence, Tuple

from jetson_shm_ros.core.descriptor import MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import BackendUnavailable, SegmentError
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.core.payload import checksum_words, fill_pattern, pattern_words
import numpy as np

BACKENDS = ('auto', 'cpu', 'pinned', 'cuda_ipc')
MODES = ('zero_copy', 'copy')

_log = get_logger('jetson_shm_ros.backend')


class CpuBackend:
    """NumPy over the shared-memory mapping: no GPU, no copies."""

    name = 'cpu'
    memory_kind = MEMORY_HOST_SHM
    mode = 'zero_copy'
    device = 'CPU (NumPy)'
    pointer_source = 'host mapping'

    def __init__(self):
        self._pattern: Optional[np.ndarray] = None

    def prepare(self, segment, desc=None) -> None:
        """
        Get a segment ready for this backend (nothing to pin on the CPU).

        :param segment: the producer's SlotPool or a consumer's AttachedSegment
        :param desc: consumers: the first descriptor naming this segment incarnation (it
            carries CUDA IPC handles); producers: None
        :raises SegmentError: for slots in device memory, which NumPy cannot read
        """
        if segment.memory_kind != MEMORY_HOST_SHM:
            raise SegmentError('needs_gpu', f'{segment.name} keeps its slots in GPU memory '
                               '(cuda_ipc); read it with backend auto, pinned or cuda_ipc')

    def forget(self, segment) -> None:
        """Nothing to unpin on the CPU."""

    def array(self, segment, offset: int, nbytes: int, dtype: str,
              shape: Sequence[int]) -> np.ndarray:
        """Return a NumPy view of a payload with its dtype and shape."""
        return segment.view(offset, nbytes).view(dtype).reshape(tuple(shape))

    def fill_pattern(self, segment, offset: int, nbytes: int, frame: int) -> None:
        """Write the test pattern of `frame` into the payload."""
        words = nbytes // 4
        if self._pattern is None or self._pattern.size < words:
            self._pattern = pattern_words(words)
        fill_pattern(segment.view(offset, nbytes), frame, self._pattern)

    def checksum(self, segment, offset: int, nbytes: int) -> int:
        """Sum the payload as uint32 words (see jetson_shm_ros.core.payload)."""
        return checksum_words(segment.view(offset, nbytes))

    def synchronize(self) -> None:
        """CPU writes are complete when the call returns."""

    def ipc_handles(self, segment) -> Tuple[bytes, bytes]:
        """Host shared memory needs no CUDA handles."""
        return b'', b''

    def close(self) -> None:
        """Nothing to release."""


def select_backend(requested: str = 'auto', mode: str = 'zero_copy'):
    """
    Build the backend a node asked for.

    'auto' picks pinned shared memory on an integrated GPU (Jetson), CUDA IPC device memory on
    a discrete GPU, and NumPy when there is no usable GPU (logged once). 'pinned' and
    'cuda_ipc' fail loudly when no GPU is usable.

    :raises BackendUnavailable: for an explicit GPU backend without a GPU
    :raises ValueError: for an unknown backend or mode
    """
    if requested not in BACKENDS:
        raise ValueError(f'backend {requested!r} is not one of {list(BACKENDS)}')
    if mode not in MODES:
        raise ValueError(f'mode {mode!r} is not one of {list(MODES)}')
    if requested == 'cpu':
        return CpuBackend()
    try:
        from jetson_shm_ros.core import gpu
        return gpu.make_backend(requested, mode)
    except (ImportError, BackendUnavailable) as error:
        if requested != 'auto':
            raise BackendUnavailable(
                f'backend {requested!r} needs CuPy, cuda-python and a CUDA GPU: {error}') from None
        _log.warning('no usable GPU (%s): running on NumPy (CPU)', error)
        return CpuBackend()
