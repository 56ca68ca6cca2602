"""
The production CUDA kernels of the GPU backends, compiled once per device through CuPy (NVRTC).

Every kernel takes raw device addresses, so the same code runs on pinned host memory mapped
into the device (zero-copy), on CUDA IPC device memory, and on private device buffers.

- `checksum`: the payload's checksum exactly as core.payload.checksum_words computes it (LE
  uint32 words, the tail zero-padded, summed modulo 2**64). 16-byte loads, several in flight
  per thread, a shared-memory reduction per block, and the last block to finish adds the
  block sums (one kernel launch, no memset, no host round trip before the result). That block
  can also store the result straight into mapped host memory (core.cuda.host_word), so the
  host reads it after one stream synchronize, without a copy back.
- `fill`: exactly the bytes of core.payload.fill_pattern: word i = (i + frame * 0x9E3779B1)
  mod 2**32, tail bytes = frame & 0xff, stored 16 bytes at a time.

Payloads whose address is not 16-byte aligned (never the case for slot starts) take
byte-wise kernels that compute the same values. Kernels that only tests and benchmarks use
live in tool_kernels, so no library process compiles them.

CuPy is imported when a module is compiled, not when this module is imported.
"""

from typing import Dict, Optional, Sequence

from jetson_shm_ros.core.cuda.runtime import call, import_cupy
from jetson_shm_ros.core.payload import FRAME_STRIDE
import numpy as np

THREADS = 512
# Enough resident blocks to keep the host link (or HBM) busy.
BLOCKS_PER_SM = 4
# Checksum load shape; scripts/gpu_tune_checksum.py measures the alternatives.
DEFINES = {'UNROLL': 4, 'LOAD_HINT': 0}

_SOURCE = r"""
typedef unsigned long long u64;
typedef unsigned int u32;

// Checksum loads: 16-byte loads per thread in flight, and the load's cache hints.
#ifndef UNROLL
#define UNROLL 4
#endif
#ifndef LOAD_HINT
#define LOAD_HINT 0
#endif

__device__ __forceinline__ uint4 load16(const uint4* p) {
    uint4 v;
#if LOAD_HINT == 1  // let L2 fetch 256-byte blocks (bigger reads over the host link)
    asm("ld.global.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
#elif LOAD_HINT == 2  // the same through the read-only path
    asm("ld.global.nc.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
#elif LOAD_HINT == 3  // streaming: read once, evict first
    v = __ldcs(p);
#elif LOAD_HINT == 4  // 128-byte L2 fetches
    asm("ld.global.L2::128B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
#else
    v = *p;
#endif
    return v;
}

__device__ __forceinline__ u64 word_sum(uint4 v) {
    return (u64)v.x + (u64)v.y + (u64)v.z + (u64)v.w;
}

// Sum `acc` over the block; the total is valid in thread 0. blockDim.x is a multiple of 32.
__device__ __forceinline__ u64 block_sum(u64 acc, u64* partial) {
    for (int offset = 16; offset > 0; offset >>= 1)
        acc += __shfl_down_sync(0xffffffffu, acc, offset);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) partial[warp] = acc;
    __syncthreads();
    acc = 0;
    if (warp == 0) {
        acc = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0;
        for (int offset = 16; offset > 0; offset >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, offset);
    }
    return acc;
}

// scratch[0]: the result; scratch[1]: blocks finished (0 between launches); scratch[2 + b]:
// block b's sum. The last block to finish adds the block sums, stores the result (also at
// `host`, mapped host memory, unless 0) and resets the counter, so a launch needs no memset.
__device__ __forceinline__ void finish_sum(u64 acc, u64* scratch, u64 host) {
    __shared__ u64 partial[32];
    __shared__ bool last;
    const u64 total = block_sum(acc, partial);
    if (threadIdx.x == 0) {
        scratch[2 + blockIdx.x] = total;
        __threadfence();
        last = atomicAdd(&scratch[1], 1ull) == (u64)gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    const volatile u64* sums = scratch + 2;
    u64 sum = 0;
    for (u32 b = threadIdx.x; b < gridDim.x; b += blockDim.x) sum += sums[b];
    sum = block_sum(sum, partial);
    if (threadIdx.x == 0) {
        scratch[0] = sum;
        if (host) *(volatile u64*)host = sum;
        scratch[1] = 0;
    }
}

// Payload at a 16-byte aligned address.
extern "C" __global__ void checksum16(u64 address, u64 nbytes, u64 scratch_address,
                                      u64 host_address) {
    const uint4* p = (const uint4*)address;
    const u64 nvec = nbytes >> 4;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u64 acc = 0;
    // UNROLL independent 16-byte loads in flight per thread before any is used.
    for (; i + (UNROLL - 1) * stride < nvec; i += UNROLL * stride) {
        uint4 v[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) v[u] = load16(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) acc += word_sum(v[u]);
    }
    for (; i < nvec; i += stride) acc += word_sum(load16(p + i));
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        // The last nbytes % 16 bytes: byte k of a word weighs 256**(k % 4); zero padding adds 0.
        const unsigned char* tail = (const unsigned char*)address + (nvec << 4);
        const u32 rest = (u32)(nbytes & 15);
        for (u32 k = 0; k < rest; ++k) acc += (u64)tail[k] << (8 * (k & 3));
    }
    finish_sum(acc, (u64*)scratch_address, host_address);
}

// Any address: byte k of the payload adds byte << (8 * (k % 4)), the same sum.
extern "C" __global__ void checksum_bytes(u64 address, u64 nbytes, u64 scratch_address,
                                          u64 host_address) {
    const unsigned char* p = (const unsigned char*)address;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    u64 acc = 0;
    for (u64 k = (u64)blockIdx.x * blockDim.x + threadIdx.x; k < nbytes; k += stride)
        acc += (u64)p[k] << (8 * (k & 3));
    finish_sum(acc, (u64*)scratch_address, host_address);
}

// Payload at a 16-byte aligned address: word i = i + offset (mod 2**32), tail bytes = tail.
extern "C" __global__ void fill16(u64 address, u64 nbytes, u32 offset, u32 tail) {
    uint4* p = (uint4*)address;
    const u64 nvec = nbytes >> 4;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    const u64 first = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    for (u64 i = first; i < nvec; i += stride) {
        const u32 w = (u32)(i << 2) + offset;
        p[i] = make_uint4(w, w + 1u, w + 2u, w + 3u);
    }
    if (first == 0) {
        const u64 nwords = nbytes >> 2;
        u32* words = (u32*)address;
        for (u64 w = nvec << 2; w < nwords; ++w) words[w] = (u32)w + offset;
        unsigned char* bytes = (unsigned char*)address;
        for (u64 k = nwords << 2; k < nbytes; ++k) bytes[k] = (unsigned char)tail;
    }
}

// Any address: the same bytes, one per thread.
extern "C" __global__ void fill_bytes(u64 address, u64 nbytes, u32 offset, u32 tail) {
    unsigned char* p = (unsigned char*)address;
    const u64 whole = nbytes & ~(u64)3;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 k = (u64)blockIdx.x * blockDim.x + threadIdx.x; k < nbytes; k += stride) {
        const u32 w = (u32)(k >> 2) + offset;
        p[k] = k < whole ? (unsigned char)(w >> (8 * (k & 3))) : (unsigned char)tail;
    }
}
"""

KERNEL_NAMES = ('checksum16', 'checksum_bytes', 'fill16', 'fill_bytes')

# Compiled production kernels by device ordinal: one compile per device and process.
_cache: Dict[int, 'Kernels'] = {}


class KernelModule:
    """One compiled CUDA source and its launch shape; every launch goes to the given stream."""

    def __init__(self, source: str, names: Sequence[str], device_id: int, sm_count: int,
                 threads: int = THREADS, blocks_per_sm: int = BLOCKS_PER_SM,
                 defines: Optional[dict] = None):
        """
        Compile (or load from CuPy's cache) `source` for one device.

        :param source: CUDA C++ with extern "C" kernels
        :param names: the kernels to look up in it
        :param device_id: CUDA device ordinal
        :param sm_count: the device's multiprocessor count (sizes the grids)
        :param threads: threads per block (a multiple of 32, at most 1024)
        :param blocks_per_sm: resident blocks per multiprocessor the grids aim for
        :param defines: preprocessor macros
        """
        cp = import_cupy()
        self.device_id = device_id
        self.sm_count = sm_count
        self.threads = threads
        self.blocks_per_sm = blocks_per_sm
        options = ('-std=c++17',) + tuple(f'-D{key}={value}'
                                          for key, value in (defines or {}).items())
        with cp.cuda.Device(device_id):
            module = cp.RawModule(code=source, options=options)
            self._functions = {name: module.get_function(name) for name in names}

    def _grid(self, items: int) -> int:
        return max(1, min((items + self.threads - 1) // self.threads,
                          self.sm_count * self.blocks_per_sm))

    def _launch(self, name: str, items: int, args: tuple, stream, blocks: Optional[int] = None):
        with stream:
            self._functions[name]((blocks or self._grid(items),), (self.threads,), args)


class Kernels(KernelModule):
    """The checksum and fill-pattern kernels of one device."""

    def __init__(self, device_id: int, sm_count: int, threads: int = THREADS,
                 blocks_per_sm: int = BLOCKS_PER_SM, defines: Optional[dict] = None):
        """
        Compile the production kernels for one device (use kernels_for() to share them).

        :param defines: macros (UNROLL, LOAD_HINT) over DEFINES, for tuning experiments
        """
        super().__init__(_SOURCE, KERNEL_NAMES, device_id, sm_count, threads, blocks_per_sm,
                         {**DEFINES, **(defines or {})})

    def make_scratch(self):
        """Return a zeroed scratch buffer for checksum_async (one per stream that uses it)."""
        cp = import_cupy()
        with cp.cuda.Device(self.device_id):
            return cp.zeros(2 + self.sm_count * self.blocks_per_sm, dtype=cp.uint64)

    def checksum_async(self, address: int, nbytes: int, scratch, stream,
                       host_address: int = 0) -> None:
        """
        Queue the checksum of [address, address + nbytes); the result lands in scratch[0].

        :param scratch: from make_scratch(); launches that share one must share a stream
        :param host_address: device address of a mapped host word that gets the result too
            (a core.cuda.host_word.HostWord), or 0
        """
        if address % 16 == 0:
            name, items = 'checksum16', max(1, nbytes // 16)
        else:
            name, items = 'checksum_bytes', nbytes
        self._launch(name, items, (np.uint64(address), np.uint64(nbytes),
                                   np.uint64(scratch.data.ptr), np.uint64(host_address)), stream)

    def fill_async(self, address: int, nbytes: int, frame: int, stream) -> None:
        """Queue core.payload.fill_pattern's bytes of `frame` into [address, address + nbytes)."""
        offset = np.uint32((frame * FRAME_STRIDE) & 0xFFFFFFFF)
        tail = np.uint32(frame & 0xFF)
        if address % 16 == 0:
            self._launch('fill16', nbytes // 16 or 1,
                         (np.uint64(address), np.uint64(nbytes), offset, tail), stream)
        else:
            self._launch('fill_bytes', nbytes, (np.uint64(address), np.uint64(nbytes), offset,
                                                tail), stream)


def kernels_for(device_id: int, sm_count: int) -> Kernels:
    """Return the production kernels of a device, compiled on first use in this process."""
    kernels = _cache.get(device_id)
    if kernels is None:
        kernels = call('NVRTC compile of the jetson_shm_ros kernels', Kernels, device_id,
                       sm_count)
        _cache[device_id] = kernels
    return kernels
