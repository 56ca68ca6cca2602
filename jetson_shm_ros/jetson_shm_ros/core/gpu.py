"""
GPU backends: CuPy kernels read and write slot memory in place, in every process.

How slot memory is shared is chosen by the producer's backend; a consumer's GPU backend reads
whatever kind the segment holds.

- ``pinned`` (MEMORY_HOST_SHM): the slots live in the POSIX shared-memory segment. Each
  process pins its mapping of the slot area once with
  ``cudaHostRegister(Portable | Mapped)``; kernels then access it through the host pointer
  (where ``cudaDevAttrCanUseHostPointerForRegisteredMem`` says they may) or through the pointer
  from ``cudaHostGetDevicePointer`` (cuda-python). On a Jetson this memory *is* device memory;
  on a discrete GPU every access crosses the host link.
- ``cuda_ipc`` (MEMORY_CUDA_IPC, discrete GPUs only): the producer allocates the slots with
  ``cudaMalloc`` and exports them with ``cudaIpcGetMemHandle``; consumers open the handle
  from the first descriptor once. The segment then only holds the control block (sequence
  locks, readers). An interprocess event, recorded after each write, travels in the
  descriptor as well.

Modes: ``zero_copy`` runs kernels directly on the slot; ``copy`` moves the slot through a
private device buffer with ``cudaMemcpyAsync`` on the backend's own stream (a consumer's
array is then a device copy; a producer's writer fills a device buffer that is copied into
the slot before the frame is published).

Resources are taken once per segment and process (``prepare``) and given back by ``forget``
before the segment is unmapped. CuPy arrays handed out keep their region alive (they own it
through ``cupy.cuda.UnownedMemory``): if one outlives ``forget``, the region stays pinned and
mapped until that array is gone, and is released then. Every CUDA call is checked; a failure
raises GpuError naming the call.

This module imports nothing from CuPy or cuda-python until a backend is asked for, so it is
harmless on machines without a GPU.
"""

import os
import time
from typing import Dict, Optional, Sequence, Tuple
import weakref

from jetson_shm_ros.core.backend import MODES
from jetson_shm_ros.core.descriptor import MEMORY_CUDA_IPC, MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import BackendUnavailable, GpuError, SegmentError
from jetson_shm_ros.core.logs import get_logger
import numpy as np

GPU_BACKENDS = ('pinned', 'cuda_ipc')
POINTER_CHOICES = ('auto', 'device')

# CUDA runtime constants (driver_types.h); CuPy does not export all of them.
HOST_REGISTER_PORTABLE = 0x01
HOST_REGISTER_MAPPED = 0x02
EVENT_DISABLE_TIMING = 0x02
EVENT_INTERPROCESS = 0x04
IPC_MEM_LAZY_ENABLE_PEER_ACCESS = 0x01
MEMCPY_DEFAULT = 4
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_INTEGRATED = 18
ATTR_CAN_MAP_HOST_MEMORY = 19
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
ATTR_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM = 91

_log = get_logger('jetson_shm_ros.gpu')

# What this process holds right now (tests check that it does not grow with frames).
_live = {'host_registrations': 0, 'registered_bytes': 0, 'device_allocations': 0,
         'device_bytes': 0, 'ipc_mem_opened': 0, 'ipc_events_opened': 0}
# Allocations this process exported, by IPC handle: a consumer in the same process cannot
# cudaIpcOpenMemHandle its own export, so it uses the allocation directly.
_local_exports: Dict[bytes, 'weakref.ref[_DeviceAllocation]'] = {}
_kernel_cache: Dict[int, object] = {}
_cupy = None


def live_resources() -> Dict[str, int]:
    """Return counts of the CUDA resources this process holds (registrations, IPC, memory)."""
    return dict(_live)


def _count(key: str, delta: int) -> None:
    _live[key] += delta


def _import_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise ImportError(f'CuPy is not installed ({error}); install cupy-cuda12x '
                              '(JetPack 6, CUDA 12) or the wheel matching your CUDA') from None
        except Exception as error:  # e.g. CUDA libraries that do not load
            raise BackendUnavailable(f'CuPy failed to load: {error}') from None
        _cupy = cupy
    return _cupy


def _is_cuda_error(error: BaseException) -> bool:
    cuda = getattr(_cupy, 'cuda', None)
    kinds = tuple(kind for kind in (
        getattr(getattr(cuda, 'runtime', None), 'CUDARuntimeError', None),
        getattr(getattr(cuda, 'driver', None), 'CUDADriverError', None),
        getattr(getattr(cuda, 'compiler', None), 'CompileException', None)) if kind is not None)
    return bool(kinds) and isinstance(error, kinds)


def _call(name: str, function, *args):
    """Run one CUDA call; turn CuPy's CUDA errors into GpuError naming the call."""
    try:
        return function(*args)
    except Exception as error:
        if _is_cuda_error(error):
            raise GpuError(name, str(error)) from error
        raise


def _check_bindings(name: str, err) -> None:
    """Raise GpuError for a cuda-python status that is not success."""
    if int(err) != 0:
        raise GpuError(name, f'{getattr(err, "name", err)} ({int(err)})')


def _cuda_bindings(module: str):
    """Import cuda-python's runtime or driver module (either package layout), or None."""
    try:
        if module == 'runtime':
            from cuda.bindings import runtime as bindings
        else:
            from cuda.bindings import driver as bindings
        return bindings
    except ImportError:
        pass
    try:
        if module == 'runtime':
            from cuda import cudart as bindings
        else:
            from cuda import cuda as bindings
        return bindings
    except ImportError:
        return None


def _host_device_pointer(host_address: int) -> int:
    """Return cudaHostGetDevicePointer(host_address) (cuda-python; CuPy lacks this call)."""
    cudart = _cuda_bindings('runtime')
    if cudart is None:
        raise BackendUnavailable(
            'this GPU needs cudaHostGetDevicePointer for registered memory, and cuda-python '
            '(cuda.bindings) is not installed: pip install cuda-python')
    err, device_address = cudart.cudaHostGetDevicePointer(host_address, 0)
    _check_bindings('cudaHostGetDevicePointer', err)
    return int(device_address)


def _allocation_size(device_address: int) -> Optional[int]:
    """Return the bytes from device_address to the end of its allocation, None if unknown."""
    driver = _cuda_bindings('driver')
    if driver is None:
        return None
    try:
        err, base, size = driver.cuMemGetAddressRange(device_address)
        _check_bindings('cuMemGetAddressRange', err)
    except Exception as error:  # only a sanity check: say so and go on without it
        _log.warning('cannot check the size of CUDA IPC memory: %s', error)
        return None
    return int(size) - (device_address - int(base))


class DeviceInfo:
    """What make_backend found out about the current CUDA device."""

    def __init__(self, cp):
        runtime = cp.cuda.runtime
        try:
            count = runtime.getDeviceCount()
        except Exception as error:
            raise BackendUnavailable(f'no usable CUDA driver or device: {error}') from None
        if count < 1:
            raise BackendUnavailable('no CUDA device found')
        self.id = cp.cuda.Device().id

        def attribute(number: int) -> int:
            return _call('cudaDeviceGetAttribute', runtime.deviceGetAttribute, number, self.id)

        properties = _call('cudaGetDeviceProperties', runtime.getDeviceProperties, self.id)
        name = properties['name']
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.integrated = bool(attribute(ATTR_INTEGRATED))
        self.can_map_host_memory = bool(attribute(ATTR_CAN_MAP_HOST_MEMORY))
        self.host_pointer_usable = bool(attribute(ATTR_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM))
        self.sm_count = attribute(ATTR_MULTIPROCESSOR_COUNT)
        self.compute_capability = (attribute(ATTR_COMPUTE_CAPABILITY_MAJOR),
                                   attribute(ATTR_COMPUTE_CAPABILITY_MINOR))

    @property
    def description(self) -> str:
        """E.g. 'NVIDIA H100 80GB HBM3 (discrete, cc 9.0)'."""
        kind = 'integrated' if self.integrated else 'discrete'
        return f'{self.name} ({kind}, cc {self.compute_capability[0]}.' \
               f'{self.compute_capability[1]})'


def _kernels(info: DeviceInfo):
    kernels = _kernel_cache.get(info.id)
    if kernels is None:
        from jetson_shm_ros.core.cuda_kernels import Kernels
        kernels = _call('NVRTC compile of the jetson_shm_ros kernels', Kernels, info.id,
                        info.sm_count)
        _kernel_cache[info.id] = kernels
    return kernels


# Finalizers: module-level functions holding no reference to their region.

def _unregister_host(host_address: int, size: int, name: str, mapping_view) -> None:
    # mapping_view (unused here) kept the mapping alive until now; it is dropped after this.
    try:
        _call('cudaHostUnregister', _cupy.cuda.runtime.hostUnregister, host_address)
    except Exception as error:  # a finalizer must not raise; say it loudly instead
        _log.error('%s: %s', name, error)
    finally:
        _count('host_registrations', -1)
        _count('registered_bytes', -size)


def _free_device(device_address: int, size: int, event: int, handle: bytes) -> None:
    exported = _local_exports.get(handle)
    if exported is not None and exported() is None:  # ours (dead by now), not a newer one's
        del _local_exports[handle]
    runtime = _cupy.cuda.runtime
    for name, function, arg in (('cudaEventDestroy', runtime.eventDestroy, event),
                                ('cudaFree', runtime.free, device_address)):
        try:
            _call(name, function, arg)
        except Exception as error:
            _log.error('releasing CUDA IPC slots: %s', error)
    _count('device_allocations', -1)
    _count('device_bytes', -size)


def _close_ipc(device_address: int, event: Optional[int]) -> None:
    runtime = _cupy.cuda.runtime
    try:
        _call('cudaIpcCloseMemHandle', runtime.ipcCloseMemHandle, device_address)
    except Exception as error:
        _log.error('closing CUDA IPC memory: %s', error)
    _count('ipc_mem_opened', -1)
    if event is not None:
        try:
            _call('cudaEventDestroy', runtime.eventDestroy, event)
        except Exception as error:
            _log.error('closing CUDA IPC event: %s', error)
        _count('ipc_events_opened', -1)


class _Region:
    """Device-accessible bytes of one segment in this process; base of the two kinds."""

    kind = MEMORY_HOST_SHM
    start = 0
    size = 0
    device_address = 0
    writable = False
    event: Optional[int] = None

    def address(self, offset: int, nbytes: int) -> int:
        """Return the device address of segment bytes [offset, offset + nbytes)."""
        if nbytes < 0 or offset < self.start or offset + nbytes > self.start + self.size:
            raise SegmentError('out_of_bounds', f'[{offset}, {offset + nbytes}) is outside the '
                               f'device-mapped bytes [{self.start}, {self.start + self.size})')
        return self.device_address + (offset - self.start)


class _PinnedRegion(_Region):
    """The slot area of one host-shm mapping, registered with cudaHostRegister(Portable|Mapped)."""

    def __init__(self, segment, writable: bool, use_device_pointer: bool):
        runtime = _cupy.cuda.runtime
        self.name = segment.name
        self.writable = writable
        self.start = segment.data_offset
        self.size = segment.size - self.start
        # This view keeps the mapping alive for as long as it stays registered.
        host = segment.view(self.start, self.size)
        self.host_address = host.ctypes.data
        began = time.monotonic()
        _call('cudaHostRegister', runtime.hostRegister, self.host_address, self.size,
              HOST_REGISTER_PORTABLE | HOST_REGISTER_MAPPED)
        try:
            self.device_address = _host_device_pointer(self.host_address) \
                if use_device_pointer else self.host_address
        except BaseException:
            _call('cudaHostUnregister', runtime.hostUnregister, self.host_address)
            raise
        _count('host_registrations', 1)
        _count('registered_bytes', self.size)
        self._finalizer = weakref.finalize(self, _unregister_host, self.host_address, self.size,
                                           self.name, host)
        _log.info('%s: pinned %d B of slots for the GPU in %.1f ms (device pointer %s host '
                  'pointer)', self.name, self.size, 1e3 * (time.monotonic() - began),
                  '==' if self.device_address == self.host_address else '!=')


class _DeviceAllocation:
    """A producer's cudaMalloc'ed slots, exported with an IPC memory handle and an IPC event."""

    def __init__(self, size: int):
        runtime = _cupy.cuda.runtime
        self.size = size
        self.device_address = _call('cudaMalloc', runtime.malloc, size)
        self.event = None
        try:
            # No stale device memory of an earlier user may reach a consumer.
            _call('cudaMemset', runtime.memset, self.device_address, 0, size)
            self.mem_handle = bytes(_call('cudaIpcGetMemHandle', runtime.ipcGetMemHandle,
                                          self.device_address))
            self.event = _call('cudaEventCreateWithFlags', runtime.eventCreateWithFlags,
                               EVENT_DISABLE_TIMING | EVENT_INTERPROCESS)
            self.event_handle = bytes(_call('cudaIpcGetEventHandle', runtime.ipcGetEventHandle,
                                            self.event))
        except BaseException:
            if self.event is not None:
                runtime.eventDestroy(self.event)
            runtime.free(self.device_address)
            raise
        _count('device_allocations', 1)
        _count('device_bytes', size)
        _local_exports[self.mem_handle] = weakref.ref(self)
        self._finalizer = weakref.finalize(self, _free_device, self.device_address, size,
                                           self.event, self.mem_handle)


class _IpcRegion(_Region):
    """The device slots of a cuda_ipc segment: exported (producer) or opened (consumer)."""

    kind = MEMORY_CUDA_IPC

    def __init__(self, segment, desc=None):
        self.name = segment.name
        self.start = 0
        self.size = segment.slot_count * segment.slot_size
        self.mem_handle = self.event_handle = b''
        self._allocation = None
        if desc is None:
            self.writable = True
            self._allocation = _DeviceAllocation(self.size)
            self._use(self._allocation)
            self.mem_handle = self._allocation.mem_handle
            self.event_handle = self._allocation.event_handle
            _log.info('%s: exported %d B of device slots (cudaMalloc + cudaIpcGetMemHandle)',
                      self.name, self.size)
            return
        handle = bytes(desc.cuda_ipc_handle)
        exported = _local_exports.get(handle)
        local = exported() if exported is not None else None
        if local is not None:
            # The producer lives in this process: share its allocation (and keep it alive).
            self._allocation = local
            self._use(local)
            return
        self._open(handle, bytes(desc.cuda_event_handle))

    def _use(self, allocation: _DeviceAllocation) -> None:
        if allocation.size < self.size:
            raise SegmentError('bad_ipc_handle', f'{self.name}: allocation of {allocation.size} '
                               f'B is smaller than the {self.size} B of slots')
        self.device_address = allocation.device_address
        self.event = allocation.event

    def _open(self, handle: bytes, event_handle: bytes) -> None:
        runtime = _cupy.cuda.runtime
        began = time.monotonic()
        try:
            address = _call('cudaIpcOpenMemHandle', runtime.ipcOpenMemHandle, handle,
                            IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        except GpuError as error:
            # A handle from a descriptor is input: report it, do not crash the consumer.
            raise SegmentError('bad_ipc_handle', f'{self.name}: {error}') from None
        event = None
        try:
            available = _allocation_size(address)
            if available is not None and available < self.size:
                raise SegmentError('bad_ipc_handle', f'{self.name}: the IPC allocation has '
                                   f'{available} B, the segment describes {self.size} B')
            if event_handle:
                try:
                    event = _call('cudaIpcOpenEventHandle', runtime.ipcOpenEventHandle,
                                  event_handle)
                except GpuError as error:
                    raise SegmentError('bad_event_handle', f'{self.name}: {error}') from None
        except BaseException:
            runtime.ipcCloseMemHandle(address)
            raise
        self.device_address = address
        self.event = event
        _count('ipc_mem_opened', 1)
        if event is not None:
            _count('ipc_events_opened', 1)
        self._finalizer = weakref.finalize(self, _close_ipc, address, event)
        _log.info('%s: opened %d B of CUDA IPC device slots in %.1f ms', self.name, self.size,
                  1e3 * (time.monotonic() - began))

    def handles(self) -> Tuple[bytes, bytes]:
        """Return the (memory, event) IPC handles a producer puts in each descriptor."""
        return self.mem_handle, self.event_handle


class GpuBackend:
    """CuPy kernels over pinned shared memory or CUDA IPC device memory (see module doc)."""

    def __init__(self, name: str, mode: str, info: DeviceInfo, pointer: str = 'auto'):
        """
        Build a backend on the current device; use make_backend() rather than this.

        :param name: 'pinned' or 'cuda_ipc': what a producer with this backend creates
        :param mode: 'zero_copy' or 'copy'
        :param info: the probed device
        :param pointer: 'auto': use host pointers where the device allows it, else
            cudaHostGetDevicePointer; 'device': always cudaHostGetDevicePointer
        """
        cp = _import_cupy()
        self._cp = cp
        self.name = name
        self.mode = mode
        self.memory_kind = MEMORY_HOST_SHM if name == 'pinned' else MEMORY_CUDA_IPC
        self.device = info.description
        self.device_id = info.id
        self._use_device_pointer = pointer == 'device' or not info.host_pointer_usable
        self.pointer_source = 'cudaHostGetDevicePointer' if self._use_device_pointer \
            else 'host pointer'
        self._kernels = _kernels(info)
        self._regions: Dict[object, _Region] = {}
        with cp.cuda.Device(self.device_id):
            self._stream = _call('cudaStreamCreateWithFlags',
                                 lambda: cp.cuda.Stream(non_blocking=True))
            self._join_event = _call('cudaEventCreateWithFlags',
                                     lambda: cp.cuda.Event(disable_timing=True))
            self._scratch = self._kernels.make_scratch()
        self._stage_in = None   # consumer copy mode: the slot's bytes, copied to the device
        self._stage_out = None  # producer copy mode: what the writer fills, then copied out
        self._staged: Optional[Tuple[_Region, int, int]] = None  # what _stage_in holds
        self._pending: Optional[Tuple[_Region, int, int]] = None  # _stage_out not yet copied
        self.closed = False

    # The backend contract (see jetson_shm_ros.core.backend.CpuBackend).

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
            region = _PinnedRegion(segment, desc is None, self._use_device_pointer)
        elif segment.memory_kind == MEMORY_CUDA_IPC:
            region = _IpcRegion(segment, desc)
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
            if self._staged is not None and self._staged[0] is region:
                self._staged = None
            if self._pending is not None and self._pending[0] is region:
                self._pending = None
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
        count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
        if count * np.dtype(dtype).itemsize != nbytes:
            raise ValueError(f'shape {list(shape)} of {dtype} is not {nbytes} bytes')
        address = region.address(offset, nbytes)
        if self.mode == 'copy':
            self._flush_pending()
            if region.writable:
                buffer = self._stage_out = self._grown(self._stage_out, nbytes)
                self._pending = (region, offset, nbytes)
            else:
                if self._staged != (region, address, nbytes):
                    self._copy_in(region, address, nbytes)
                self._staged = None
                # The copy is a snapshot once this returns (the sequence check comes next).
                _call('cudaStreamSynchronize', self._stream.synchronize)
                buffer = self._stage_in
            return buffer[:nbytes].view(dtype).reshape(tuple(shape))
        if region.event is not None and not region.writable:
            # Work the caller queues on its stream starts after the producer's write.
            _call('cudaStreamWaitEvent', cp.cuda.runtime.streamWaitEvent,
                  cp.cuda.get_current_stream().ptr, region.event, 0)
        memory = cp.cuda.UnownedMemory(address, nbytes, region, self.device_id)
        return cp.ndarray(tuple(shape), dtype=dtype, memptr=cp.cuda.MemoryPointer(memory, 0))

    def fill_pattern(self, segment, offset: int, nbytes: int, frame: int) -> None:
        """Queue the GPU kernel writing core.payload.fill_pattern's bytes of `frame`."""
        region = self._region(segment)
        address = region.address(offset, nbytes)
        self._flush_pending()
        self._join_current()
        stream = self._stream
        if self.mode == 'copy':
            self._stage_out = self._grown(self._stage_out, nbytes)
            staged = self._stage_out.data.ptr
            _call('fill kernel launch', self._kernels.fill_async, staged, nbytes, frame, stream)
            _call('cudaMemcpyAsync', self._cp.cuda.runtime.memcpyAsync, address, staged, nbytes,
                  MEMCPY_DEFAULT, stream.ptr)
        else:
            _call('fill kernel launch', self._kernels.fill_async, address, nbytes, frame, stream)

    def checksum(self, segment, offset: int, nbytes: int) -> int:
        """Return the payload's checksum, computed on the GPU (see core.payload.checksum_words)."""
        region = self._region(segment)
        address = region.address(offset, nbytes)
        self._flush_pending()
        self._join_current()
        stream = self._stream
        if self.mode == 'copy':
            self._copy_in(region, address, nbytes)
            address = self._stage_in.data.ptr
        else:
            self._wait_for_writer(region)
        _call('checksum kernel launch', self._kernels.checksum_async, address, nbytes,
              self._scratch, stream)
        result = _call('checksum result (cudaMemcpyAsync + cudaStreamSynchronize)',
                       self._scratch[:1].get, stream)
        return int(result[0])

    def synchronize(self) -> None:
        """Finish every write: staged copies, the caller's current stream, our stream."""
        if self.closed:
            return
        self._flush_pending()
        self._join_current()
        for region in self._regions.values():
            if region.writable and region.event is not None:
                _call('cudaEventRecord', self._cp.cuda.runtime.eventRecord, region.event,
                      self._stream.ptr)
        _call('cudaStreamSynchronize', self._stream.synchronize)

    def ipc_handles(self, segment) -> Tuple[bytes, bytes]:
        """Return (memory handle, event handle) for descriptors; empty for host memory."""
        region = self._regions.get(segment)
        if isinstance(region, _IpcRegion):
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
            self._staged = self._pending = None
            self._stage_in = self._stage_out = self._scratch = None
            self._join_event = self._stream = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA or modules may already be gone
            pass

    # Extras for tools and tests.

    def device_address(self, segment, offset: int, nbytes: int) -> int:
        """Return the device address of segment bytes [offset, offset + nbytes)."""
        return self._region(segment).address(offset, nbytes)

    @property
    def stream(self):
        """Return the backend's own non-blocking CuPy stream."""
        return self._stream

    @property
    def kernels(self):
        """Return the compiled kernels, a jetson_shm_ros.core.cuda_kernels.Kernels."""
        return self._kernels

    # Internals.

    def _region(self, segment) -> _Region:
        region = self._regions.get(segment)
        if region is None:
            raise SegmentError('not_prepared', f'{segment.name} was not prepared for the GPU '
                               'backend (prepare() first)')
        return region

    def _grown(self, buffer, nbytes: int):
        if buffer is None or buffer.size < nbytes:
            with self._cp.cuda.Device(self.device_id):
                buffer = self._cp.empty(nbytes, dtype=self._cp.uint8)
        return buffer

    def _join_current(self) -> None:
        """Make our stream wait for what the caller queued on CuPy's current stream."""
        current = self._cp.cuda.get_current_stream()
        if current.ptr != self._stream.ptr:
            _call('cudaEventRecord', self._join_event.record, current)
            _call('cudaStreamWaitEvent', self._stream.wait_event, self._join_event)

    def _wait_for_writer(self, region: _Region) -> None:
        if region.event is not None and not region.writable:
            _call('cudaStreamWaitEvent', self._cp.cuda.runtime.streamWaitEvent, self._stream.ptr,
                  region.event, 0)

    def _copy_in(self, region: _Region, address: int, nbytes: int) -> None:
        """Queue slot -> private device buffer on our stream (copy mode)."""
        self._join_current()
        self._wait_for_writer(region)
        self._stage_in = self._grown(self._stage_in, nbytes)
        _call('cudaMemcpyAsync', self._cp.cuda.runtime.memcpyAsync, self._stage_in.data.ptr,
              address, nbytes, MEMCPY_DEFAULT, self._stream.ptr)
        self._staged = (region, address, nbytes)

    def _flush_pending(self) -> None:
        """Copy what a copy-mode writer put in the private buffer into its slot."""
        if self._pending is None:
            return
        region, offset, nbytes = self._pending
        self._pending = None
        self._join_current()
        _call('cudaMemcpyAsync', self._cp.cuda.runtime.memcpyAsync,
              region.address(offset, nbytes), self._stage_out.data.ptr, nbytes, MEMCPY_DEFAULT,
              self._stream.ptr)


def make_backend(requested: str = 'auto', mode: str = 'zero_copy', pointer: str = 'auto'):
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
    cp = _import_cupy()
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


__all__ = ['GpuBackend', 'GpuError', 'DeviceInfo', 'live_resources', 'make_backend']
