"""
Where a shared-memory frame's time goes besides DDS: `python -m bench.profile_frame`.

In one process, without DDS transit, with the API's defaults (diagnostics on) and the
benchmark's reliable policy: ShmPublisher.loan() + commit (to_msg, rclpy publish with no
subscriber) and ShmSubscription.handle_descriptor() of the same message (from_msg,
validation, checksum, callback, release), against constructing and publishing an empty
DataDescriptor. Prints CPU microseconds per frame per part (best of rounds), the CPU checksum
against host memcpy, and the cProfile top of the whole per-frame path.

Those figures are hot: frame after frame, everything in the CPU's caches. A camera at 30 Hz
runs each frame's code cold. The wall-time table beside them (median us) repeats producer,
consumer and the empty descriptor with a pause before each (0.5 ms, as the benchmark's
latency phases), then with the caches evicted too (a walk over 32 MiB instead of the pause).
"""

import argparse
import cProfile
import os
import pstats
import time

from bench.ceilings import host_memcpy_GBps
from jetson_shm_ros.core.payload import checksum_words
import numpy as np


def best_us(function, frames: int, rounds: int = 5, clock=time.process_time) -> float:
    """
    Return the best over rounds of the mean microseconds per call.

    CPU time of the process (all its threads) by default: on a shared machine wall time
    mostly measures the neighbours.
    """
    best = float('inf')
    for _ in range(rounds):
        began = clock()
        for _ in range(frames):
            function()
        best = min(best, (clock() - began) / frames * 1e6)
    return best


COLD_PAUSE_S = 0.0005
EVICT_BYTES = 32 << 20


def wall_us(steps: dict, frames: int, before=None) -> dict:
    """Median wall us of each step over `frames` rounds, `before()` run ahead of every step."""
    samples = {name: [] for name in steps}
    for _ in range(frames):
        for name, step in steps.items():
            if before is not None:
                before()
            began = time.perf_counter_ns()
            step()
            samples[name].append(time.perf_counter_ns() - began)
    return {name: float(np.median(values)) / 1e3 for name, values in samples.items()}


def main() -> int:
    """Profile the per-frame path at one size."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--side', type=int, default=64, help='frame is side x side bytes')
    parser.add_argument('--frames', type=int, default=2000)
    parser.add_argument('--backend', default='cpu')
    args = parser.parse_args()

    import rclpy
    from rclpy.node import Node
    from jetson_shm_ros import ShmPublisher, ShmSubscription
    from jetson_shm_ros.ros.conversion import from_msg, to_msg
    from jetson_shm_ros_interfaces.msg import DataDescriptor

    rclpy.init()
    node = Node('bench_profile')
    pub = ShmPublisher(node, 'bench/profile', dtype='uint8', shape=[args.side, args.side],
                       slots=4, policy='reliable', backend=args.backend,
                       shm_name=f'/jsr_bench_prof_{os.getpid()}')
    sub = ShmSubscription(node, 'bench/profile_in', lambda frame, info: None,
                          backend=args.backend)
    plain = node.create_publisher(DataDescriptor, 'bench/profile_plain', 4)
    captured = []
    publish = pub._publisher.publish
    pub._publisher.publish = lambda msg: (captured.append(msg), publish(msg))
    try:
        def produce():
            with pub.loan(frame_id='1'):
                pass

        def one_frame():
            captured.clear()
            produce()
            assert sub.handle_descriptor(captured[0]) == 'verified'

        for _ in range(50):
            one_frame()
        msg = captured[0]
        desc = from_msg(msg)

        def split():
            """Time producer and consumer CPU of the same frames apart (a fresh frame each)."""
            producer = consumer = 0.0
            for _ in range(args.frames):
                captured.clear()
                began = time.process_time()
                produce()
                middle = time.process_time()
                assert sub.handle_descriptor(captured[0]) == 'verified'
                consumer += time.process_time() - middle
                producer += middle - began
            return producer / args.frames * 1e6, consumer / args.frames * 1e6

        parts = {
            'whole frame (loan + commit + publish, then handle_descriptor)': one_frame,
            '  of which to_msg': lambda: to_msg(desc),
            '  of which from_msg': lambda: from_msg(msg),
            'empty DataDescriptor: construct + rclpy publish': lambda: plain.publish(
                DataDescriptor()),
        }
        print(f'per-frame CPU time, {args.side}x{args.side} B, backend {args.backend}, policy '
              f'reliable, no DDS transit (best of 5 x {args.frames}):')
        costs = {name: best_us(function, args.frames) for name, function in parts.items()}
        rounds = [split() for _ in range(5)]
        costs['producer: loan + commit + rclpy publish'] = min(r[0] for r in rounds)
        costs['consumer: handle_descriptor (from_msg, checks, checksum, callback, release)'] = \
            min(r[1] for r in rounds)
        for name, cost in costs.items():
            print(f'  {cost:8.1f} us  {name}')
        empty = costs['empty DataDescriptor: construct + rclpy publish']
        print(f'  {costs["producer: loan + commit + rclpy publish"] - empty:8.1f} us  producer '
              'above an empty descriptor (target <= 60)')
        print_cold(produce, lambda: sub.handle_descriptor(captured[0]) == 'verified',
                   lambda: plain.publish(DataDescriptor()), min(args.frames, 1000))
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.frames):
            one_frame()
        profile.disable()
        pstats.Stats(profile).sort_stats('tottime').print_stats(20)
    finally:
        sub.close()
        pub.close()
        node.destroy_node()
        rclpy.try_shutdown()

    size = 64 << 20
    payload = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    seconds = best_us(lambda: checksum_words(payload), 3, clock=time.perf_counter) / 1e6
    print(f'CPU checksum of 64 MiB: {size / seconds / 1e9:.2f} GB/s; host memcpy 64 MiB: '
          f'{host_memcpy_GBps(size):.2f} GB/s (bytes copied per second)')
    return 0


def print_cold(produce, consume, publish_empty, frames: int) -> None:
    """Print the wall-time table: hot, after a pause, with the caches evicted."""
    captured_ok = []

    def producer_then_consumer():
        # One step each, in order: the consumer's step reads what the producer just sent.
        return {'producer: loan + commit + rclpy publish': produce,
                'consumer: handle_descriptor': lambda: captured_ok.append(consume()),
                'empty DataDescriptor: construct + rclpy publish': publish_empty}

    junk = np.zeros(EVICT_BYTES, dtype=np.uint8)

    def evict():
        junk[::64] += 1  # one write per cache line

    columns = {'hot': None, f'{COLD_PAUSE_S * 1e3:g} ms pause': lambda: time.sleep(
        COLD_PAUSE_S), 'caches evicted': evict}
    tables = {label: wall_us(producer_then_consumer(), frames, before)
              for label, before in columns.items()}
    assert all(captured_ok), 'a frame was not verified'
    print(f'per-frame wall time, median us of {frames} frames: ' + ' | '.join(columns))
    for name in producer_then_consumer():
        print(f'  {"  ".join(f"{tables[label][name]:8.1f}" for label in columns)}  {name}')


if __name__ == '__main__':
    raise SystemExit(main())
