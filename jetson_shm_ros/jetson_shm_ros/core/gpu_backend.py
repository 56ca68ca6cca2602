"""
GPU backends: CuPy kernels and CUDA copies read and write slot memory, in every process.

How slot memory is shared is chosen by the producer's backend; a consumer's GPU backend reads
whatever kind the segment holds (see core.cuda.regions for how each kind is reached):

- ``pinned`` (MEMORY_HOST_SHM): the slots live in the POSIX shared-memory segment, pinned
  and mapped into the device by each process. On a Jetson this memory *is* device memory;
  on a discrete GPU every access crosses the host link.
- ``cuda_ipc`` (MEMORY_CUDA_IPC, discrete GPUs only): the producer allocates the slots with
  cudaMalloc and exports them; consumers open the handle from the first descriptor once.
  The segment then only holds the control block. An interprocess event, recorded after
  each write, travels in the descriptor as well.

Modes: ``zero_copy`` runs kernels directly on the slot; ``copy`` moves the slot through a
private device buffer with cudaMemcpyAsync on the backend's own stream (a consumer's array
is then a device copy; a producer's writer fills a device buffer that is copied into the
slot before the frame is published).

CuPy arrays handed out own their region (cupy.cuda.UnownedMemory): if one outlives
``forget``, the region stays pinned and mapped until that array is gone. Every CUDA call is
checked; a failure raises GpuError naming the call. Nothing imports CuPy until
make_backend() runs, so importing this module is harmless without a GPU.
"""

import os
from typing import Dict, List, Optional, Sequence, Tuple
import weakref

from jetson_shm_ros.core.array_source import check_fits, device_view, HOST, host_view, location
from jetson_shm_ros.core.backend_protocol import MODES
from jetson_shm_ros.core.cuda.device import DeviceInfo
from jetson_shm_ros.core.cuda.host_word import HostWord
from jetson_shm_ros.core.cuda.kernels import kernels_for
from jetson_shm_ros.core.cuda.regions import IpcRegion, PinnedRegion, Region
from jetson_shm_ros.core.cuda.runtime import call, import_cupy
from jetson_shm_ros.core.cuda.staging import CopyStaging, WorkStream
from jetson_shm_ros.core.descriptor import MEMORY_CUDA_IPC, MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import BackendUnavailable, SegmentError
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.core.payload import checksum_words, payload_nbytes
import numpy as np

GPU_BACKENDS = ('pinned', 'cuda_ipc')
POINTER_CHOICES = ('auto', 'device')
# Pinned slots are host memory: up to this size the CPU sums a payload faster than a kernel
# launch plus the result's copy back and a stream synchronize (~45 us a checksum on an H200
# host, doc/performance.md), so both sides of a small frame skip the GPU round trip.
HOST_CHECKSUM_MAX_BYTES = 64 << 10

_log = get_logger('jetson_shm_ros.gpu')


class GpuBackend:
    """CuPy kernels over pinned shared memory or CUDA IPC device memory (implements Backend)."""

    def __init__(self, name: str, mode: str, info: DeviceInfo, pointer: str = 'auto'):
        """
        Build a backend on the current device; use make_backend() rather than this.

        :param name: 'pinned' or 'cuda_ipc': what a producer with this backend creates
        :param mode: 'zero_copy' or 'copy'
        :param info: the probed device
        :param pointer: 'auto': use host pointers where the device allows it, else
            cudaHostGetDevicePointer; 'device': always cudaHostGetDevicePointer
        """
        cp = import_cupy()
        self._cp = cp
        self.name = name
        self.mode = mode
        self.memory_kind = MEMORY_HOST_SHM if name == 'pinned' else MEMORY_CUDA_IPC
        self.device = info.description
        self.device_id = info.id
        self._use_device_pointer = pointer == 'device' or not info.host_pointer_usable
        self.pointer_source = 'cudaHostGetDevicePointer' if self._use_device_pointer \
            else 'host pointer'
        self._kernels = kernels_for(info.id, info.sm_count)
        self._regions: Dict[object, Region] = {}
        self._work = WorkStream(cp, self.device_id)
        self._scratch = self._kernels.make_scratch()
        self._result = HostWord(cp, self.device_id, self._use_device_pointer)
        self._staging = CopyStaging(cp, self.device_id, self._work)  # used in copy mode
        self._sources: List[object] = []  # copy_into sources our stream may still read
        # (region, slot address, nbytes, device address): a device array copy_into queued into
        # a pinned slot; until synchronize() its bytes are the slot's, in device memory.
        self._device_copy: Optional[Tuple[Region, int, int, int]] = None
        self.closed = False

    # The backend contract (see jetson_shm_ros.core.backend_protocol.Backend).

    def prepare(self, segment, desc=None) -> None:
        """
        Pin or open a segment's slots for this process; once per segment.

        :param segment: the producer's SlotPool or a consumer's AttachedSegment
        :param desc: consumers: the first descriptor of this segment (it carries the CUDA IPC
            handles); producers: None
        :raises SegmentError: for IPC handles that cannot be opened (bad input)
        :raises GpuError: for a failing CUDA call
        """
        if segment in self._regions:
            return
        if segment.memory_kind == MEMORY_HOST_SHM:
            region = PinnedRegion(segment, desc is None, self._use_device_pointer)
        elif segment.memory_kind == MEMORY_CUDA_IPC:
            region = IpcRegion(segment, desc)
        else:
            raise SegmentError('bad_memory_kind', f'{segment.name}: memory kind '
                               f'{segment.memory_kind} is unknown')
        self._regions[segment] = region

    def forget(self, segment) -> None:
        """Unpin or close a segment's slots; call it before the segment is unmapped."""
        region = self._regions.get(segment)
        if region is None:
            return
        try:
            self.synchronize()  # nothing queued may still touch the slots
        finally:
            del self._regions[segment]
            self._staging.drop(region)
            alive = weakref.ref(region)
            del region
            if alive() is not None:
                _log.warning('%s: CuPy arrays of this segment are still alive; its slots stay '
                             'pinned/open until they are gone', segment.name)

    def array(self, segment, offset: int, nbytes: int, dtype: str, shape: Sequence[int]):
        """
        Return a CuPy array of a payload with its dtype and shape.

        zero_copy: a view of the slot itself (UnownedMemory owned by the region), exportable
        through DLPack and __cuda_array_interface__ without a copy. copy: on a producer, a
        private device buffer that is copied into the slot before the frame is published;
        on a consumer, a private device copy of the slot (valid until the next frame).
        """
        cp = self._cp
        region = self._region(segment)
        _check_nbytes(nbytes, dtype, shape)
        address = region.address(offset, nbytes)
        if self.mode == 'copy':
            self._staging.flush()
            buffer = self._staging.writer_buffer(region, offset, nbytes) if region.writable \
                else self._staging.reader_copy(region, address, nbytes)
            return buffer[:nbytes].view(dtype).reshape(tuple(shape))
        if region.event is not None and not region.writable:
            # Work the caller queues on its stream starts after the producer's write.
            call('cudaStreamWaitEvent', cp.cuda.runtime.streamWaitEvent,
                 cp.cuda.get_current_stream().ptr, region.event, 0)
        memory = cp.cuda.UnownedMemory(address, nbytes, region, self.device_id)
        return cp.ndarray(tuple(shape), dtype=dtype, memptr=cp.cuda.MemoryPointer(memory, 0))

    def copy_into(self, segment, offset: int, nbytes: int, dtype: str, shape: Sequence[int],
                  source) -> None:
        """
        Copy a caller's array into a payload: one copy, on the device where the data is.

        A device source (CuPy, PyTorch CUDA, ...) takes one cudaMemcpyAsync into the slot on
        our stream, after the caller's queued work. A NumPy source is copied by the CPU into
        the pinned mapping, or by one cudaMemcpyAsync host-to-device into cuda_ipc slots. The
        same in both modes. synchronize() completes the copy; until then the backend keeps
        the source alive.

        :raises ArrayMismatch: when the source does not fit the slot (reason says how)
        """
        region = self._region(segment)
        _check_nbytes(nbytes, dtype, shape)
        address = region.address(offset, nbytes)
        if not region.writable:
            raise SegmentError('read_only', f'{segment.name}: a consumer cannot write slots')
        if location(source) == HOST:
            array = host_view(source)
            check_fits(array, dtype, shape)
            if isinstance(region, PinnedRegion):
                self.synchronize()  # no queued GPU write may land after the CPU's
                slot = segment.view(offset, nbytes).view(dtype).reshape(tuple(shape))
                np.copyto(slot, array, casting='no')
                return
            pointer = array.ctypes.data
            on_device = False
        else:
            array = device_view(source)
            check_fits(array, dtype, shape)
            pointer = array.data.ptr
            on_device = True
        self._staging.flush()  # an earlier writer's staged bytes must not land after these
        self._work.join_current()
        self._work.copy(address, pointer, nbytes)
        self._sources.append(array)
        # A pinned slot's checksum then reads the source in device memory instead of reading
        # the slot back across the host link: the slot crosses it once per frame.
        self._device_copy = (region, address, nbytes, pointer) \
            if on_device and isinstance(region, PinnedRegion) else None

    def fill_pattern(self, segment, offset: int, nbytes: int, frame: int) -> None:
        """Queue the GPU kernel writing core.payload.fill_pattern's bytes of `frame`."""
        address = self._ordered(segment, offset, nbytes)[1]
        stream = self._work.stream
        if self.mode == 'copy':
            staged = self._staging.fill_buffer(nbytes)
            call('fill kernel launch', self._kernels.fill_async, staged, nbytes, frame, stream)
            self._work.copy(address, staged, nbytes)
        else:
            call('fill kernel launch', self._kernels.fill_async, address, nbytes, frame, stream)

    def checksum(self, segment, offset: int, nbytes: int) -> int:
        """Return the payload's checksum, computed on the GPU (see core.payload.checksum_words)."""
        source = self._device_source(segment, offset, nbytes)
        region, address = self._ordered(segment, offset, nbytes)
        if isinstance(region, PinnedRegion) and nbytes <= HOST_CHECKSUM_MAX_BYTES:
            if region.writable:
                self._work.synchronize()  # the writes queued so far (and joined) have landed
            return checksum_words(segment.view(offset, nbytes))
        if source is not None:
            address = source  # the same bytes, in device memory (queued after their copy)
        elif self.mode == 'copy':
            address = self._staging.copy_in(region, address, nbytes)
        else:
            self._work.wait_for_writer(region)
        return self.checksum_device(address, nbytes)

    def synchronize(self) -> None:
        """Finish every write: staged copies, the caller's current stream, our stream."""
        if self.closed:
            return
        self._staging.flush()
        self._work.join_current()
        for region in self._regions.values():
            if region.writable and region.event is not None:
                self._work.record(region.event)
        self._work.synchronize()
        self._sources.clear()
        self._device_copy = None

    def ipc_handles(self, segment) -> Tuple[bytes, bytes]:
        """Return (memory handle, event handle) for descriptors; empty for host memory."""
        region = self._regions.get(segment)
        if isinstance(region, IpcRegion):
            return region.handles()
        return b'', b''

    def close(self) -> None:
        """Forget every segment and release the stream and buffers. Safe to call twice."""
        if self.closed:
            return
        try:
            for segment in list(self._regions):
                self.forget(segment)
        finally:
            self.closed = True
            self._regions.clear()
            self._staging.release()
            self._result.close()
            self._staging = self._work = self._scratch = None
            self._sources.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA or modules may already be gone
            pass

    # Extras for tools and tests.

    def checksum_device(self, address: int, nbytes: int) -> int:
        """
        Return the checksum of device-addressable bytes, after the work queued on our stream.

        One kernel launch that stores the result in mapped host memory, one synchronize.
        """
        call('checksum kernel launch', self._kernels.checksum_async, address, nbytes,
             self._scratch, self._work.stream, self._result.device_address)
        self._work.synchronize()
        return self._result.read()

    def device_address(self, segment, offset: int, nbytes: int) -> int:
        """Return the device address of segment bytes [offset, offset + nbytes)."""
        return self._region(segment).address(offset, nbytes)

    @property
    def stream(self):
        """Return the backend's own non-blocking CuPy stream."""
        return None if self._work is None else self._work.stream

    @property
    def kernels(self):
        """Return the compiled production kernels, a core.cuda.kernels.Kernels."""
        return self._kernels

    # Internals.

    def _region(self, segment) -> Region:
        region = self._regions.get(segment)
        if region is None:
            raise SegmentError('not_prepared', f'{segment.name} was not prepared for the GPU '
                               'backend (prepare() first)')
        return region

    def _device_source(self, segment, offset: int, nbytes: int) -> Optional[int]:
        """
        Return a device address holding a producer's pinned payload, or None.

        The device array that copy_into is copying into the slot, or copy mode's private
        buffer not yet flushed into it: summing those reads device memory, not the host link.
        """
        region = self._regions.get(segment)
        if not isinstance(region, PinnedRegion) or not region.writable:
            return None
        copied = self._device_copy
        if copied is not None and copied[:3] == (region, region.address(offset, nbytes), nbytes):
            return copied[3]
        return self._staging.pending_buffer(region, offset, nbytes)

    def _ordered(self, segment, offset: int, nbytes: int) -> Tuple[Region, int]:
        """Return (region, device address) of a payload, our stream after all earlier writes."""
        region = self._region(segment)
        address = region.address(offset, nbytes)
        self._staging.flush()
        self._work.join_current()
        return region, address


def _check_nbytes(nbytes: int, dtype: str, shape: Sequence[int]) -> None:
    if payload_nbytes(dtype, shape) != nbytes:
        raise ValueError(f'shape {list(shape)} of {dtype} is not {nbytes} bytes')


def make_backend(requested: str = 'auto', mode: str = 'zero_copy',
                 pointer: str = 'auto') -> GpuBackend:
    """
    Build a GPU backend.

    'auto' picks pinned shared memory on an integrated GPU (Jetson) and CUDA IPC device
    memory on a discrete GPU.

    :param requested: 'auto', 'pinned' or 'cuda_ipc'
    :param mode: 'zero_copy' or 'copy'
    :param pointer: 'auto' or 'device' (always use cudaHostGetDevicePointer)
    :raises ImportError: when CuPy is not installed
    :raises BackendUnavailable: when there is no usable GPU for the request
    """
    if requested not in ('auto',) + GPU_BACKENDS:
        raise ValueError(f'GPU backend {requested!r} is not one of {["auto", *GPU_BACKENDS]}')
    if mode not in MODES:
        raise ValueError(f'mode {mode!r} is not one of {list(MODES)}')
    if pointer not in POINTER_CHOICES:
        raise ValueError(f'pointer {pointer!r} is not one of {list(POINTER_CHOICES)}')
    cp = import_cupy()
    info = DeviceInfo(cp)
    name = requested if requested != 'auto' else ('pinned' if info.integrated else 'cuda_ipc')
    if not info.can_map_host_memory:
        raise BackendUnavailable(f'{info.description} cannot map host memory')
    if name == 'cuda_ipc' and info.integrated:
        raise BackendUnavailable(
            f'{info.description}: CUDA IPC memory handles are not supported on integrated GPUs '
            '(Jetson); use backend pinned')
    backend = GpuBackend(name, mode, info, pointer)
    _log.debug('GPU backend %s (%s) on %s, pid %d', name, mode, info.description, os.getpid())
    return backend
