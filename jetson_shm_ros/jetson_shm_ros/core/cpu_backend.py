"""The CPU backend: NumPy over the shared-memory mapping; works everywhere, no GPU."""

from typing import Optional, Sequence, Tuple

from jetson_shm_ros.core.array_source import check_fits, device_view, HOST, host_view, location
from jetson_shm_ros.core.descriptor import MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.payload import checksum_words, fill_pattern, pattern_words
import numpy as np


class CpuBackend:
    """NumPy over the shared-memory mapping: no GPU, no copies (implements Backend)."""

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

    def copy_into(self, segment, offset: int, nbytes: int, dtype: str, shape: Sequence[int],
                  source) -> None:
        """
        Copy a caller's array into a payload with one copy.

        A host source is copied by NumPy; a device source (CuPy, PyTorch CUDA, ...) with one
        device-to-host copy straight into the slot (that needs CuPy in this process).

        :raises ArrayMismatch: when the source does not fit the slot (reason says how)
        """
        slot = self.array(segment, offset, nbytes, dtype, shape)
        if location(source) == HOST:
            host = host_view(source)
            check_fits(host, dtype, shape)
            np.copyto(slot, host, casting='no')
            return
        device = device_view(source)
        check_fits(device, dtype, shape)
        device.get(out=slot)  # cudaMemcpy into the mapping, on CuPy's current stream

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
