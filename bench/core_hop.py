"""
One frame between two processes through the core alone: `python -m bench.core_hop`.

The bench's end-to-end series mix our code with rclpy and DDS. This takes them out: a
FrameProducer in this process and a FrameConsumer in a spawned one, the Descriptor carried by
a pipe, closed loop (the consumer answers each frame). As in the bench's end to end, the
producer fills the slot before t0 (the fill is the producer's work), then commits and sends;
the consumer handles the descriptor (checks, claim, checksum verified, a callback that reads
nothing, release) and answers with what its steps took. Per backend, with the producer's
checksum on and off, the table gives median microseconds of wall time: the round trip, the
producer's commit, the consumer's handle() and its checksum and synchronize steps, the same
pipe carrying the same descriptor with no handling (the floor), and what is left over.

What is left over on a GPU backend and not on cpu is time that neither process spends in its
own steps: the GPU passing from one process's context to the other's (bench.gpu_costs).
"""

import argparse
import multiprocessing
import os
import statistics
import time

SIDE = 64
SLOTS = 4


class _Clocked:
    """Wrap a method: add each call's wall time (ns) to `spent[label]`."""

    def __init__(self, function, spent: dict, label: str):
        self.function, self.spent, self.label = function, spent, label
        spent[label] = 0

    def __call__(self, *args, **kwargs):
        """Call the wrapped method, timing it."""
        began = time.perf_counter_ns()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.spent[self.label] += time.perf_counter_ns() - began


def _consume(connection, backend_name: str) -> None:
    """Handle each descriptor in the second process; answer with the steps' wall times."""
    from jetson_shm_ros.core.backend import select_backend
    from jetson_shm_ros.core.frame_consumer import FrameConsumer, VERIFIED, UNVERIFIED
    backend = select_backend(backend_name)
    consumer = FrameConsumer(backend, process=lambda frame, desc: None)
    spent = {}
    backend.checksum = _Clocked(backend.checksum, spent, 'checksum')
    backend.synchronize = _Clocked(backend.synchronize, spent, 'synchronize')
    connection.send('ready')
    try:
        while True:
            message = connection.recv()
            if message is None:
                break
            kind, desc = message
            if kind == 'bare':
                connection.send((True, 0, 0, 0))
                continue
            for label in spent:
                spent[label] = 0
            began = time.perf_counter_ns()
            status = consumer.handle(desc)
            took = time.perf_counter_ns() - began
            connection.send((status in (VERIFIED, UNVERIFIED), took, spent['checksum'],
                             spent['synchronize']))
    finally:
        consumer.close()


def run(backend_name: str, checksum: bool, frames: int) -> dict:
    """Median microseconds per frame of one backend, the producer's checksum on or off."""
    from jetson_shm_ros.core.backend import select_backend
    from jetson_shm_ros.core.frame_producer import FrameProducer
    context = multiprocessing.get_context('spawn')
    here, there = context.Pipe()
    child = context.Process(target=_consume, args=(there, backend_name))
    child.start()
    backend = select_backend(backend_name)
    producer = FrameProducer(f'/jsr_core_hop_{os.getpid()}', SLOTS, 'uint8', [SIDE, SIDE],
                             policy='latest', checksum=checksum, backend=backend)
    columns = {name: [] for name in ('round trip', 'producer commit', 'consumer handle',
                                     'consumer checksum', 'consumer synchronize', 'pipe floor')}
    failed = 0
    try:
        here.recv()
        for k in range(frames + 50):
            write = producer.begin()
            backend.fill_pattern(producer.pool, write.offset, producer.nbytes, k)
            backend.synchronize()  # the fill is the producer's work, before t0
            t0 = time.perf_counter_ns()
            desc = producer.commit(write)
            committed = time.perf_counter_ns()
            here.send(('frame', desc))
            ok, handle_ns, checksum_ns, sync_ns = here.recv()
            t1 = time.perf_counter_ns()
            here.send(('bare', desc))
            here.recv()
            floor = time.perf_counter_ns() - t1
            if k < 50:  # warm-up: first mapping, first kernels
                continue
            failed += not ok
            for name, value in zip(columns, (t1 - t0, committed - t0, handle_ns, checksum_ns,
                                             sync_ns, floor)):
                columns[name].append(value)
    finally:
        here.send(None)
        child.join(timeout=30)
        producer.close()
        backend.close()
    result = {name: statistics.median(values) / 1e3 for name, values in columns.items()}
    result['left over'] = (result['round trip'] - result['producer commit'] -
                           result['consumer handle'] - result['pipe floor'])
    result['frames not verified'] = failed
    return result


def main(argv=None) -> int:
    """Print one table: a row per step, a column per backend and checksum setting."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backends', nargs='+', default=['cpu', 'pinned', 'cuda_ipc'])
    parser.add_argument('--frames', type=int, default=2000)
    args = parser.parse_args(argv)
    from bench.ceilings import mps_on
    runs = {}
    for name in args.backends:
        for checksum in (True, False):
            label = name if checksum else f'{name}, no checksum'
            runs[label] = run(name, checksum, args.frames)
    print(f'| {SIDE * SIDE} B frame, median us of wall time, {args.frames} frames'
          f'{", CUDA MPS on" if mps_on() else ""} | ' + ' | '.join(runs) + ' |')
    print('|---|' + '---|' * len(runs))
    for row in next(iter(runs.values())):
        cells = [f'{result[row]:.1f}' if isinstance(result[row], float) else str(result[row])
                 for result in runs.values()]
        print(f'| {row} | ' + ' | '.join(cells) + ' |')
    return 1 if any(result['frames not verified'] for result in runs.values()) else 0


if __name__ == '__main__':
    raise SystemExit(main())
