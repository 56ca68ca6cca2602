#!/usr/bin/env python3
"""
Benchmark the GPU kernels against the copy engine on the same pinned shared-memory slot.

For each size a one-slot segment is created in /dev/shm and pinned exactly as the pinned
backend does it (cudaHostRegister Portable|Mapped), then each operation is timed with CUDA
events on the backend's stream. Each measurement queues --batch operations behind a short
waiting kernel, so the events time what the GPU does, not Python's launch overhead; the
median of --reps measurements is reported. Operations:

  H2D copy     cudaMemcpyAsync slot -> device buffer: the host link's ceiling for reads
  checksum     the checksum kernel reading the slot in place (zero-copy)
  copy kernel  a plain 16-byte copy kernel, device buffer -> slot: the ceiling for kernel writes
  fill         the fill-pattern kernel writing the slot in place
  dev checksum the checksum kernel over device memory (what cuda_ipc consumers read)

Every result is checked against the CPU reference first. Prints a table, the ratios, and
exits 1 when the checksum kernel reaches less than --min-ratio of the H2D copy at some size.
This is a benchmark, not a test: nothing here runs in CI.
"""

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'jetson_shm_ros'))

try:
    import cupy
except ImportError as error:
    raise SystemExit(f'gpu_bench: needs CuPy and a CUDA GPU ({error})')
from jetson_shm_ros.core import gpu_backend  # noqa: E402
from jetson_shm_ros.core.cuda import tool_kernels  # noqa: E402
from jetson_shm_ros.core.cuda.runtime import MEMCPY_DEFAULT  # noqa: E402
from jetson_shm_ros.core.payload import checksum_words, expected_pattern_checksum  # noqa: E402
from jetson_shm_ros.core.slot_pool import SlotPool  # noqa: E402
import numpy as np  # noqa: E402

MIB = 1 << 20


def gpu_seconds(tools, stream, launch, batch: int) -> float:
    """Return the GPU seconds of one launch() on `stream`: a queued batch timed by events."""
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    tools.spin_async(1e-3, stream)  # the GPU waits here while the batch is queued
    start.record(stream)
    for _ in range(batch):
        launch()
    end.record(stream)
    end.synchronize()
    return cupy.cuda.get_elapsed_time(start, end) / 1e3 / batch


def interleaved(tools, stream, operations: dict, reps: int, batch: int,
                warmup: int = 2) -> dict:
    """
    Time every operation once per round, round after round; return seconds per round.

    :param tools: a core.cuda.tool_kernels.ToolKernels (its spin kernel holds the stream)
    """
    samples = {key: [] for key in operations}
    for index in range(warmup + reps):
        for key, launch in operations.items():
            seconds = gpu_seconds(tools, stream, launch, batch)
            if index >= warmup:
                samples[key].append(seconds)
    return samples


def median_ratio(faster: list, slower: list) -> float:
    """Median over rounds of slower/faster time (the rate ratio within one round)."""
    return statistics.median(a / b for a, b in zip(faster, slower))


def bench_size(backend, nbytes: int, reps: int, batch: int) -> dict:
    """Measure one size; return GB/s per operation (after checking every result)."""
    kernels, stream = backend.kernels, backend.stream
    tools = tool_kernels.for_backend(backend)
    runtime = cupy.cuda.runtime
    pool = SlotPool.create(f'/jsr_bench_{os.getpid()}_{nbytes}', 1, nbytes)
    try:
        backend.prepare(pool)
        start = pool.slot_bounds(0)[0]
        slot = backend.device_address(pool, start, nbytes)
        device = cupy.empty(nbytes, dtype=cupy.uint8)
        scratch = kernels.make_scratch()

        def checksum(address):
            kernels.checksum_async(address, nbytes, scratch, stream)

        def h2d():
            runtime.memcpyAsync(device.data.ptr, slot, nbytes, MEMCPY_DEFAULT, stream.ptr)

        # Correctness first: fill the slot, check it on the CPU, the kernel and the copy.
        frame = 7
        kernels.fill_async(slot, nbytes, frame, stream)
        stream.synchronize()
        want = expected_pattern_checksum(nbytes, frame)
        if checksum_words(pool.view(start, nbytes)) != want:
            raise SystemExit(f'{nbytes} B: the fill kernel wrote wrong bytes')
        checksum(slot)
        if int(scratch[:1].get(stream)[0]) != want:
            raise SystemExit(f'{nbytes} B: the checksum kernel disagrees with the CPU')
        h2d()
        checksum(device.data.ptr)
        if int(scratch[:1].get(stream)[0]) != want:
            raise SystemExit(f'{nbytes} B: checksum of the H2D copy disagrees with the CPU')

        samples = interleaved(tools, stream, {
            'h2d': h2d,
            'checksum': lambda: checksum(slot),
            'copy_kernel': lambda: tools.copy_async(slot, device.data.ptr, nbytes, stream),
            'fill': lambda: kernels.fill_async(slot, nbytes, frame, stream),
            'dev_checksum': lambda: checksum(device.data.ptr),
        }, reps, batch)
        stream.synchronize()
        if checksum_words(pool.view(start, nbytes)) != want:
            raise SystemExit(f'{nbytes} B: the slot changed while timing')
        rates = {key: nbytes / statistics.median(value) / 1e9 for key, value in samples.items()}
        rates['read_ratio'] = median_ratio(samples['h2d'], samples['checksum'])
        rates['write_ratio'] = median_ratio(samples['copy_kernel'], samples['fill'])
        return rates
    finally:
        backend.forget(pool)
        pool.close()


def end_to_end_us(backend, nbytes: int, reps: int = 200) -> float:
    """Median microseconds of backend.checksum() on a pinned slot (launch + result + sync)."""
    import time
    pool = SlotPool.create(f'/jsr_bench_e2e_{os.getpid()}', 1, nbytes)
    try:
        backend.prepare(pool)
        start = pool.slot_bounds(0)[0]
        backend.fill_pattern(pool, start, nbytes, 3)
        times = []
        for _ in range(reps):
            began = time.perf_counter()
            backend.checksum(pool, start, nbytes)
            times.append(time.perf_counter() - began)
        return statistics.median(times) * 1e6
    finally:
        backend.forget(pool)
        pool.close()


def main() -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes-mib', type=int, nargs='+', default=[4, 64, 256])
    parser.add_argument('--reps', type=int, default=15)
    parser.add_argument('--batch', type=int, default=5)
    parser.add_argument('--min-ratio', type=float, default=0.90)
    args = parser.parse_args()

    backend = gpu_backend.make_backend('pinned', 'zero_copy')
    try:
        print(f'GPU: {backend.device}; slot pointer: {backend.pointer_source}; '
              f'CuPy {cupy.__version__}; CUDA events, median of {args.reps} x {args.batch} queued '
              'operations')
        header = (f'{"size":>8} | {"H2D memcpy":>10} | {"checksum":>9} | {"ratio":>5} | '
                  f'{"copy kern":>9} | {"fill kern":>9} | {"ratio":>5} | {"dev chksum":>10}')
        print(header)
        print('-' * len(header))
        worst = None
        for mib in args.sizes_mib:
            rates = bench_size(backend, mib * MIB, args.reps, args.batch)
            read_ratio, write_ratio = rates['read_ratio'], rates['write_ratio']
            worst = read_ratio if worst is None else min(worst, read_ratio)
            print(f'{mib:>4} MiB | {rates["h2d"]:>5.1f} GB/s | {rates["checksum"]:>4.1f} GB/s | '
                  f'{read_ratio:>5.2f} | {rates["copy_kernel"]:>4.1f} GB/s | '
                  f'{rates["fill"]:>4.1f} GB/s | {write_ratio:>5.2f} | '
                  f'{rates["dev_checksum"]:>5.0f} GB/s')
        print('GB/s = 1e9 bytes/s (median). ratio 1: checksum / H2D memcpy of the same pinned '
              'slot; ratio 2: fill / copy kernel writing the same slot (medians of per-round '
              'ratios, the operations alternating round by round).')
        for size in (4096, 4 * MIB):
            print(f'backend.checksum() end to end (launch, result, sync), {size} B pinned slot: '
                  f'{end_to_end_us(backend, size):.1f} us median')
        verdict = 'PASS' if worst >= args.min_ratio else 'FAIL'
        print(f'verdict: checksum kernel >= {args.min_ratio:.0%} of the H2D copy at every size: '
              f'{verdict} (worst {worst:.2f})')
        return 0 if verdict == 'PASS' else 1
    finally:
        backend.close()


if __name__ == '__main__':
    np.seterr(all='ignore')
    sys.exit(main())
