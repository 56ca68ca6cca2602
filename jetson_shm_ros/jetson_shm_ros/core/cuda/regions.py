"""
Slot memory the GPU can reach, one object per segment and process.

- PinnedRegion: the slot area of a host-shm mapping, registered with
  cudaHostRegister(Portable | Mapped); kernels reach it through the host pointer or the
  pointer from cudaHostGetDevicePointer.
- DeviceAllocation: a producer's cudaMalloc'ed slots with their IPC memory and event handles.
- IpcRegion: the device slots of a cuda_ipc segment, exported (producer) or opened from the
  first descriptor's handles (consumer).

Each region releases what it took through a weakref finalizer that holds no reference to
it, so a CuPy array that still owns a region (UnownedMemory) keeps it alive, and the release
happens when the last one is gone. live_resources() counts what this process holds.
"""

import time
from typing import Dict, Optional, Tuple
import weakref

from jetson_shm_ros.core.cuda.runtime import (
    allocation_size, call, cupy_runtime, EVENT_DISABLE_TIMING, EVENT_INTERPROCESS,
    host_device_pointer, HOST_REGISTER_MAPPED, HOST_REGISTER_PORTABLE,
    IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
from jetson_shm_ros.core.errors import GpuError, SegmentError
from jetson_shm_ros.core.logs import get_logger

_log = get_logger('jetson_shm_ros.gpu')

# What this process holds right now (tests check that it does not grow with frames).
_live = {'host_registrations': 0, 'registered_bytes': 0, 'device_allocations': 0,
         'device_bytes': 0, 'ipc_mem_opened': 0, 'ipc_events_opened': 0}
# Allocations this process exported, by IPC handle: a consumer in the same process cannot
# cudaIpcOpenMemHandle its own export, so it uses the allocation directly.
_local_exports: Dict[bytes, 'weakref.ref[DeviceAllocation]'] = {}


def live_resources() -> Dict[str, int]:
    """Return counts of the CUDA resources this process holds (registrations, IPC, memory)."""
    return dict(_live)


def _count(key: str, delta: int) -> None:
    _live[key] += delta


# Finalizers: module-level functions holding no reference to their region.

def _unregister_host(host_address: int, size: int, name: str, mapping_view) -> None:
    # mapping_view (unused here) kept the mapping alive until now; it is dropped after this.
    try:
        call('cudaHostUnregister', cupy_runtime().hostUnregister, host_address)
    except Exception as error:  # a finalizer must not raise; say it loudly instead
        _log.error('%s: %s', name, error)
    finally:
        _count('host_registrations', -1)
        _count('registered_bytes', -size)


def _free_device(device_address: int, size: int, event: int, handle: bytes) -> None:
    exported = _local_exports.get(handle)
    if exported is not None and exported() is None:  # ours (dead by now), not a newer one's
        del _local_exports[handle]
    runtime = cupy_runtime()
    for name, function, arg in (('cudaEventDestroy', runtime.eventDestroy, event),
                                ('cudaFree', runtime.free, device_address)):
        try:
            call(name, function, arg)
        except Exception as error:
            _log.error('releasing CUDA IPC slots: %s', error)
    _count('device_allocations', -1)
    _count('device_bytes', -size)


def _close_ipc(device_address: int, event: Optional[int]) -> None:
    runtime = cupy_runtime()
    try:
        call('cudaIpcCloseMemHandle', runtime.ipcCloseMemHandle, device_address)
    except Exception as error:
        _log.error('closing CUDA IPC memory: %s', error)
    _count('ipc_mem_opened', -1)
    if event is not None:
        try:
            call('cudaEventDestroy', runtime.eventDestroy, event)
        except Exception as error:
            _log.error('closing CUDA IPC event: %s', error)
        _count('ipc_events_opened', -1)


class Region:
    """Device-accessible bytes of one segment in this process; base of the two kinds."""

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


class PinnedRegion(Region):
    """The slot area of one host-shm mapping, registered with cudaHostRegister(Portable|Mapped)."""

    def __init__(self, segment, writable: bool, use_device_pointer: bool):
        """
        Pin the slot area of a mapped segment.

        :param segment: a SlotPool or AttachedSegment in host shared memory
        :param writable: the producer's region (True) or a consumer's (False)
        :param use_device_pointer: reach the memory through cudaHostGetDevicePointer
        :raises GpuError: for a failing CUDA call
        """
        runtime = cupy_runtime()
        self.name = segment.name
        self.writable = writable
        self.start = segment.data_offset
        self.size = segment.size - self.start
        # This view keeps the mapping alive for as long as it stays registered.
        host = segment.view(self.start, self.size)
        self.host_address = host.ctypes.data
        began = time.monotonic()
        call('cudaHostRegister', runtime.hostRegister, self.host_address, self.size,
             HOST_REGISTER_PORTABLE | HOST_REGISTER_MAPPED)
        try:
            self.device_address = host_device_pointer(self.host_address) \
                if use_device_pointer else self.host_address
        except BaseException:
            call('cudaHostUnregister', runtime.hostUnregister, self.host_address)
            raise
        _count('host_registrations', 1)
        _count('registered_bytes', self.size)
        self._finalizer = weakref.finalize(self, _unregister_host, self.host_address, self.size,
                                           self.name, host)
        _log.info('%s: pinned %d B of slots for the GPU in %.1f ms (device pointer %s host '
                  'pointer)', self.name, self.size, 1e3 * (time.monotonic() - began),
                  '==' if self.device_address == self.host_address else '!=')


class DeviceAllocation:
    """A producer's cudaMalloc'ed slots, exported with an IPC memory handle and an IPC event."""

    def __init__(self, size: int):
        """Allocate, zero and export `size` bytes of device memory plus an IPC event."""
        runtime = cupy_runtime()
        self.size = size
        self.device_address = call('cudaMalloc', runtime.malloc, size)
        self.event = None
        try:
            # No stale device memory of an earlier user may reach a consumer.
            call('cudaMemset', runtime.memset, self.device_address, 0, size)
            self.mem_handle = bytes(call('cudaIpcGetMemHandle', runtime.ipcGetMemHandle,
                                         self.device_address))
            self.event = call('cudaEventCreateWithFlags', runtime.eventCreateWithFlags,
                              EVENT_DISABLE_TIMING | EVENT_INTERPROCESS)
            self.event_handle = bytes(call('cudaIpcGetEventHandle', runtime.ipcGetEventHandle,
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


class IpcRegion(Region):
    """The device slots of a cuda_ipc segment: exported (producer) or opened (consumer)."""

    def __init__(self, segment, desc=None):
        """
        Export (desc None: a producer) or open (a consumer's first descriptor) the slots.

        :raises SegmentError: for IPC handles that cannot be opened (bad input)
        :raises GpuError: for a failing CUDA call
        """
        self.name = segment.name
        self.start = 0
        self.size = segment.slot_count * segment.slot_size
        self.mem_handle = self.event_handle = b''
        self._allocation = None
        if desc is None:
            self.writable = True
            self._allocation = DeviceAllocation(self.size)
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

    def _use(self, allocation: DeviceAllocation) -> None:
        if allocation.size < self.size:
            raise SegmentError('bad_ipc_handle', f'{self.name}: allocation of {allocation.size} '
                               f'B is smaller than the {self.size} B of slots')
        self.device_address = allocation.device_address
        self.event = allocation.event

    def _open(self, handle: bytes, event_handle: bytes) -> None:
        runtime = cupy_runtime()
        began = time.monotonic()
        try:
            address = call('cudaIpcOpenMemHandle', runtime.ipcOpenMemHandle, handle,
                           IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        except GpuError as error:
            # A handle from a descriptor is input: report it, do not crash the consumer.
            raise SegmentError('bad_ipc_handle', f'{self.name}: {error}') from None
        event = None
        try:
            available = allocation_size(address)
            if available is not None and available < self.size:
                raise SegmentError('bad_ipc_handle', f'{self.name}: the IPC allocation has '
                                   f'{available} B, the segment describes {self.size} B')
            if event_handle:
                try:
                    event = call('cudaIpcOpenEventHandle', runtime.ipcOpenEventHandle,
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
