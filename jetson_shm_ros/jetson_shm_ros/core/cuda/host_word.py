"""
HostWord: one 64-bit word of pinned, mapped host memory that kernels write and the host reads.

A checksum kernel stores its result here, so reading it costs one cudaStreamSynchronize and a
load: no cudaMemcpy back, no CuPy array around the result (together ~20 us a frame on the
H100/H200 hosts, doc/performance.md). The word belongs to one stream: the host reads it only
after synchronizing the stream whose kernel wrote it.
"""

import ctypes

from jetson_shm_ros.core.cuda.runtime import call, host_device_pointer

# cudaHostAllocMapped (driver_types.h): the device can address the allocation.
HOST_ALLOC_MAPPED = 0x02


class HostWord:
    """A pinned, mapped uint64 owned by this object; freed by close()."""

    def __init__(self, cp, device_id: int, use_device_pointer: bool):
        """
        Allocate the word on a device's context.

        :param use_device_pointer: address it through cudaHostGetDevicePointer (devices that
            cannot use host pointers, see core.cuda.device), else by its host address
        """
        self._runtime = cp.cuda.runtime
        with cp.cuda.Device(device_id):
            self._host_address = call('cudaHostAlloc', self._runtime.hostAlloc, 8,
                                      HOST_ALLOC_MAPPED)
        try:
            self.device_address = host_device_pointer(self._host_address) \
                if use_device_pointer else self._host_address
        except BaseException:
            self.close()
            raise
        self._word = ctypes.c_uint64.from_address(self._host_address)
        self._word.value = 0

    def read(self) -> int:
        """Return the word (after synchronizing the stream that wrote it)."""
        return self._word.value

    def close(self) -> None:
        """Free the word. Safe to call twice."""
        if self._host_address:
            address, self._host_address = self._host_address, 0
            self._word = None
            call('cudaFreeHost', self._runtime.freeHost, address)
