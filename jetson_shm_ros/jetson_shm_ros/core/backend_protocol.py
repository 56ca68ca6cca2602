"""
The backend contract: what the frame protocol and the public API ask of a compute backend.

A backend decides who reads and writes slot memory, and with what: NumPy on the CPU
(core.cpu_backend) or CuPy kernels and CUDA copies (core.gpu_backend). Both implement
Backend; core.backend.select_backend builds one. Nothing here imports either backend, so
imports point one way: backend_protocol <- (cpu_backend | gpu_backend) <- backend.

The life of a segment in a backend: `prepare` once (e.g. pin it for the GPU), any number of
`array` / `copy_into` / `fill_pattern` / `checksum` calls, `synchronize` before a frame is
published or a read is declared finished, and `forget` before the segment is unmapped.
"""

from typing import Protocol, runtime_checkable, Sequence, Tuple

# 'zero_copy': work on the slot itself; 'copy': move the slot through a private buffer.
MODES = ('zero_copy', 'copy')


@runtime_checkable
class Backend(Protocol):
    """What every backend provides (CpuBackend, GpuBackend)."""

    name: str            # 'cpu', 'pinned' or 'cuda_ipc'
    mode: str            # one of MODES
    memory_kind: int     # where a producer with this backend keeps its slots (MEMORY_*)
    device: str          # human-readable device, e.g. 'CPU (NumPy)' or the GPU's name
    pointer_source: str  # how slot memory is addressed ('host mapping', 'host pointer', ...)

    def prepare(self, segment, desc=None) -> None:
        """
        Get a segment ready for this backend; once per segment and process.

        :param segment: the producer's SlotPool or a consumer's AttachedSegment
        :param desc: consumers: the first descriptor of this segment incarnation (it carries
            the CUDA IPC handles); producers: None
        :raises SegmentError: for a segment this backend cannot use (bad input)
        """

    def forget(self, segment) -> None:
        """Release what prepare() took for a segment; call it before the segment is unmapped."""

    def array(self, segment, offset: int, nbytes: int, dtype: str, shape: Sequence[int]):
        """Return a NumPy or CuPy array of a payload with its dtype and shape."""

    def copy_into(self, segment, offset: int, nbytes: int, dtype: str, shape: Sequence[int],
                  source) -> None:
        """
        Copy a caller's array into a payload: one copy, on the device where the data is.

        :param source: a NumPy array, or anything with DLPack or __cuda_array_interface__
            (CuPy, PyTorch, ...), of exactly `dtype` and `shape`, C-contiguous
        :raises ArrayMismatch: when the source does not fit the slot (reason says how)
        """

    def fill_pattern(self, segment, offset: int, nbytes: int, frame: int) -> None:
        """Write core.payload.fill_pattern's bytes of `frame` into a payload."""

    def checksum(self, segment, offset: int, nbytes: int) -> int:
        """Return the payload's checksum, as core.payload.checksum_words computes it."""

    def synchronize(self) -> None:
        """Finish every queued write and copy; afterwards slot memory holds what was written."""

    def ipc_handles(self, segment) -> Tuple[bytes, bytes]:
        """Return the (memory, event) CUDA IPC handles for descriptors; empty for host memory."""

    def close(self) -> None:
        """Forget every segment and release the backend's resources. Safe to call twice."""
