#!/usr/bin/env python3
"""
Try checksum-kernel variants on a pinned slot and rank them against the H2D copy.

Variants: the load's cache hint (LOAD_HINT in core/cuda/kernels.py), 16-byte loads in
flight per thread (UNROLL) and the launch shape (threads per block, blocks per SM). Each
variant's result is checked against the CPU first; times are CUDA-event medians of queued
batches, alternating with the H2D copy round by round (see gpu_bench.py). Used once to
choose core.cuda.kernels.DEFINES / THREADS / BLOCKS_PER_SM; a development tool, not a test.
"""

import argparse
import itertools
import os
import statistics
import sys

import gpu_bench  # sets sys.path for the package; noqa below keeps the order readable
import cupy  # noqa: I100
from jetson_shm_ros.core import gpu_backend
from jetson_shm_ros.core.cuda import tool_kernels
from jetson_shm_ros.core.cuda.device import DeviceInfo
from jetson_shm_ros.core.cuda.kernels import Kernels
from jetson_shm_ros.core.cuda.runtime import MEMCPY_DEFAULT
from jetson_shm_ros.core.payload import expected_pattern_checksum
from jetson_shm_ros.core.slot_pool import SlotPool

HINTS = {0: 'plain', 1: 'L2::256B', 2: 'nc.L2::256B', 3: 'ldcs', 4: 'L2::128B'}
SHAPES = [(256, 4), (256, 8), (512, 2), (512, 4), (1024, 1), (1024, 2)]


def main() -> int:
    """Measure every variant at every size; print them best first."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes-mib', type=int, nargs='+', default=[4, 64])
    parser.add_argument('--reps', type=int, default=7)
    parser.add_argument('--batch', type=int, default=5)
    args = parser.parse_args()
    info = DeviceInfo(cupy)
    backend = gpu_backend.make_backend('pinned')
    base = backend.kernels
    tools = tool_kernels.for_backend(backend)
    stream = backend.stream
    results = []
    try:
        for mib in args.sizes_mib:
            nbytes = mib << 20
            pool = SlotPool.create(f'/jsr_tune_{os.getpid()}_{mib}', 1, nbytes)
            try:
                backend.prepare(pool)
                slot = backend.device_address(pool, pool.slot_bounds(0)[0], nbytes)
                device = cupy.empty(nbytes, dtype=cupy.uint8)
                base.fill_async(slot, nbytes, 5, stream)
                want = expected_pattern_checksum(nbytes, 5)

                def h2d():
                    cupy.cuda.runtime.memcpyAsync(device.data.ptr, slot, nbytes,
                                                  MEMCPY_DEFAULT, stream.ptr)

                for (hint, unroll), (threads, per_sm) in itertools.product(
                        itertools.product(HINTS, (4, 8)), SHAPES):
                    kernels = Kernels(info.id, info.sm_count, threads, per_sm,
                                      {'UNROLL': unroll, 'LOAD_HINT': hint})
                    scratch = kernels.make_scratch()
                    kernels.checksum_async(slot, nbytes, scratch, stream)
                    if int(scratch[:1].get(stream)[0]) != want:
                        print(f'WRONG RESULT: hint {HINTS[hint]} unroll {unroll}')
                        return 1
                    samples = gpu_bench.interleaved(tools, stream, {
                        'h2d': h2d,
                        'sum': lambda: kernels.checksum_async(slot, nbytes, scratch, stream),
                    }, args.reps, args.batch)
                    results.append((mib, HINTS[hint], unroll, threads, per_sm,
                                    nbytes / statistics.median(samples['sum']) / 1e9,
                                    nbytes / statistics.median(samples['h2d']) / 1e9,
                                    gpu_bench.median_ratio(samples['h2d'], samples['sum'])))
            finally:
                backend.forget(pool)
                pool.close()
    finally:
        backend.close()
    print(f'{"MiB":>4} {"hint":>12} {"unroll":>6} {"threads":>7} {"blk/SM":>6} '
          f'{"sum GB/s":>8} {"H2D GB/s":>8} {"ratio":>6}')
    for row in sorted(results, key=lambda r: (r[0], -r[7])):
        print(f'{row[0]:>4} {row[1]:>12} {row[2]:>6} {row[3]:>7} {row[4]:>6} {row[5]:>8.1f} '
              f'{row[6]:>8.1f} {row[7]:>6.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
