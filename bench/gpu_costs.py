"""
What one GPU step costs on this machine: `python -m bench.gpu_costs [--bytes N] [--rounds N]`.

The per-frame floor of a GPU transport is set by steps that no code of ours can shorten: a
kernel launch, a stream synchronize, and, between two processes, the GPU passing from one
process's context to the other's. This measures each of them (median microseconds of wall
time, a 4 KiB payload in device memory by default) beside the ways a checksum result can come
back to the host, so a transport's measured cost can be set against them (doc/performance.md).

In one process: a kernel launch alone, launch + synchronize, a synchronize of an idle stream,
the caller's stream joined to ours (event record + wait), and the checksum with its result
copied back (cudaMemcpy of a CuPy array, how the backend did it before) against the
result stored by the kernel in mapped host memory (core.cuda.host_word, how it does it now).
Across two processes: a pipe ping-pong with no GPU work, then with each side launching a kernel
and synchronizing before it answers, as a producer and a consumer of cuda_ipc do.
"""

import argparse
import multiprocessing
import statistics
import time

PAYLOAD = 4096


def _median_us(step, rounds: int) -> float:
    for _ in range(min(50, rounds)):
        step()
    samples = []
    for _ in range(rounds):
        began = time.perf_counter_ns()
        step()
        samples.append(time.perf_counter_ns() - began)
    return statistics.median(samples) / 1e3


def in_process(nbytes: int, rounds: int) -> dict:
    """Median us per step in this process."""
    from jetson_shm_ros.core import gpu_backend
    import cupy
    backend = gpu_backend.make_backend('cuda_ipc', 'zero_copy')
    kernels, stream = backend.kernels, backend.stream
    buffer = cupy.zeros(nbytes, dtype=cupy.uint8)
    address = buffer.data.ptr
    scratch = kernels.make_scratch()

    def launch():
        kernels.fill_async(address, nbytes, 1, stream)

    def launch_sync():
        kernels.fill_async(address, nbytes, 1, stream)
        stream.synchronize()

    def checksum_copied_back():
        kernels.checksum_async(address, nbytes, scratch, stream)
        return int(scratch[:1].get(stream)[0])

    def checksum_host_word():
        return backend.checksum_device(address, nbytes)

    work = backend._work  # the backend's WorkStream: its join is what every frame pays
    try:
        result = {'kernel launch (no wait)': _median_us(launch, rounds)}
        stream.synchronize()
        result.update({
            'kernel launch + stream synchronize': _median_us(launch_sync, rounds),
            'stream synchronize, idle stream': _median_us(stream.synchronize, rounds),
            "join the caller's stream (event record + wait)": _median_us(
                work.join_current, rounds),
            'checksum, result copied back (cudaMemcpy + sync)': _median_us(
                checksum_copied_back, rounds),
            'checksum, result in mapped host memory (+ sync)': _median_us(
                checksum_host_word, rounds),
        })
        assert checksum_copied_back() == checksum_host_word()
        return result
    finally:
        backend.close()


def _gpu_step(nbytes: int):
    """Return (a function that launches a kernel and synchronizes, its backend)."""
    from jetson_shm_ros.core import gpu_backend
    import cupy
    backend = gpu_backend.make_backend('cuda_ipc', 'zero_copy')
    buffer = cupy.zeros(nbytes, dtype=cupy.uint8)

    def step():
        backend.kernels.fill_async(buffer.data.ptr, nbytes, 2, backend.stream)
        backend.stream.synchronize()
    return step, backend


def _echo(connection, nbytes: int, gpu: bool) -> None:
    """Answer each message (the second process), after a GPU step when `gpu`."""
    step = _gpu_step(nbytes)[0] if gpu else None
    connection.send(b'r')
    while True:
        message = connection.recv_bytes()
        if message == b'q':
            break
        if step is not None:
            step()
        connection.send_bytes(b'a')


def ping_pong(nbytes: int, rounds: int, gpu: bool) -> float:
    """Median us of one round trip between two processes (each side's GPU step when `gpu`)."""
    context = multiprocessing.get_context('spawn')
    here, there = context.Pipe()
    child = context.Process(target=_echo, args=(there, nbytes, gpu))
    child.start()
    step = backend = None
    try:
        if gpu:
            step, backend = _gpu_step(nbytes)
        here.recv()  # the child is ready

        def round_trip():
            if step is not None:
                step()
            here.send_bytes(b'p')
            here.recv_bytes()
        return _median_us(round_trip, rounds)
    finally:
        here.send_bytes(b'q')
        child.join(timeout=30)
        if backend is not None:
            backend.close()


def measure(nbytes: int = PAYLOAD, rounds: int = 2000) -> dict:
    """Every figure of this module, in microseconds."""
    result = in_process(nbytes, rounds)
    bare = ping_pong(nbytes, rounds, gpu=False)
    with_gpu = ping_pong(nbytes, rounds, gpu=True)
    result.update({
        'two processes: pipe round trip, no GPU work': bare,
        'two processes: round trip, each side kernel + synchronize': with_gpu,
        'two processes: GPU work per side (half the difference)': (with_gpu - bare) / 2,
    })
    return result


def main(argv=None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--bytes', type=int, default=PAYLOAD)
    parser.add_argument('--rounds', type=int, default=2000)
    args = parser.parse_args(argv)
    figures = measure(args.bytes, args.rounds)
    from bench.ceilings import mps_on
    print(f'| GPU step, {args.bytes} B in device memory'
          f'{", CUDA MPS on" if mps_on() else ""} | median us |')
    print('|---|---|')
    for name, value in figures.items():
        print(f'| {name} | {value:.1f} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
