"""
Kernels for tests and benchmarks only: the library never imports this module.

- `copy16`: a plain 16-byte copy (the benchmark's reference for how fast a kernel can write).
- `scribble`: keeps rewriting a range with garbage for a while, as a writer still busy with
  a slot would (tests of torn reads); with an empty range it only waits (benchmarks queue
  work behind it so CUDA events time the GPU, not Python's launch overhead).
"""

from typing import Dict, Tuple

from jetson_shm_ros.core.cuda.kernels import KernelModule
from jetson_shm_ros.core.cuda.runtime import call
import numpy as np

_SOURCE = r"""
typedef unsigned long long u64;
typedef unsigned int u32;

// dst[i] = src[i] for 16-byte aligned buffers (nbytes a multiple of 16).
extern "C" __global__ void copy16(u64 dst_address, u64 src_address, u64 nbytes) {
    uint4* dst = (uint4*)dst_address;
    const uint4* src = (const uint4*)src_address;
    const u64 nvec = nbytes >> 4;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < nvec; i += stride)
        dst[i] = src[i];
}

// Keep rewriting the words of [address, address + nbytes) with garbage for
// `nanoseconds`, as a writer still busy with a slot would. Launch at most one block per SM.
extern "C" __global__ void scribble(u64 address, u64 nbytes, u64 nanoseconds) {
    u32* p = (u32*)address;
    const u64 nwords = nbytes >> 2;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    u64 start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    u32 pass = 0;
    do {
        for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < nwords; i += stride)
            p[i] = 0x5A5A5A5Au ^ (u32)i ^ (pass * 0x01000193u);
        ++pass;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < nanoseconds);
}
"""

KERNEL_NAMES = ('copy16', 'scribble')

_cache: Dict[Tuple[int, int], 'ToolKernels'] = {}


class ToolKernels(KernelModule):
    """Copy, wait and scribble kernels of one device (see the module doc)."""

    def __init__(self, device_id: int, sm_count: int):
        """Compile the tool kernels for one device (use for_backend() to share them)."""
        super().__init__(_SOURCE, KERNEL_NAMES, device_id, sm_count)

    def copy_async(self, dst: int, src: int, nbytes: int, stream) -> None:
        """Queue a kernel copy of nbytes (a multiple of 16, both addresses 16-byte aligned)."""
        if dst % 16 or src % 16 or nbytes % 16:
            raise ValueError('copy_async needs 16-byte aligned addresses and sizes')
        self._launch('copy16', nbytes // 16,
                     (np.uint64(dst), np.uint64(src), np.uint64(nbytes)), stream)

    def spin_async(self, seconds: float, stream) -> None:
        """Queue a one-block kernel that only waits `seconds` (benchmarks queue work behind it)."""
        self._launch('scribble', 1, (np.uint64(0), np.uint64(0), np.uint64(int(seconds * 1e9))),
                     stream, blocks=1)

    def scribble_async(self, address: int, nbytes: int, seconds: float, stream) -> None:
        """Queue a kernel that keeps overwriting the range with garbage for `seconds` (tests)."""
        self._launch('scribble', nbytes // 4, (np.uint64(address), np.uint64(nbytes),
                                               np.uint64(int(seconds * 1e9))),
                     stream, blocks=self.sm_count)


def for_backend(backend) -> ToolKernels:
    """Return the tool kernels of a GPU backend's device, compiled once per process."""
    key = (backend.device_id, backend.kernels.sm_count)
    kernels = _cache.get(key)
    if kernels is None:
        kernels = _cache[key] = call('NVRTC compile of the tool kernels', ToolKernels, *key)
    return kernels
