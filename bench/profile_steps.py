"""
Where one frame's time goes, step by step: `python -m bench.profile_steps --backend pinned`.

In one process, without DDS transit, through the public API (ShmPublisher.loan() with the
frame filled on its device, then ShmSubscription.handle_descriptor() of the descriptor the
publisher sent): every step of the producer and the consumer is wrapped with two clocks,
the calling thread's CPU time and wall time, and the table gives microseconds per frame
for each (median frame and mean), with what the steps leave unaccounted as "Python glue".
CPU time below wall time is waiting (a device synchronize, a kernel's completion).
"""

import argparse
import os
import time

import numpy as np

# (owner, attribute, label): the producer's steps, in the order they run.
PRODUCER_STEPS = [
    ('frames', 'begin', 'take a slot (acquire, claim CAS, sequence odd)'),
    ('frames', 'array', 'slot as an array'),
    ('fill', None, 'fill the frame (one device kernel or memset)'),
    ('backend', 'copy_into', 'publish(array): copy the source into the slot'),
    ('backend', 'checksum', 'checksum of the slot'),
    ('backend', 'synchronize', 'device synchronize'),
    ('pool', 'end_write', 'sequence even, claim dropped'),
    ('backend', 'ipc_handles', 'CUDA IPC handles'),
    ('messages', 'to_msg', 'descriptor -> DataDescriptor message'),
    ('rclpy', 'publish', 'rclpy publish (serialize, hand to the RMW)'),
]
CONSUMER_STEPS = [
    ('subscription_module', 'from_msg', 'message -> descriptor'),
    ('consumer_module', 'validate_static', 'static checks'),
    ('consumer', '_segment_for', 'look the mapped segment up'),
    ('consumer', '_validate_against', 'checks against the mapping (fstat, bounds)'),
    ('consumer', '_claim', 'claim the slot (CAS)'),
    ('backend', 'checksum', 'verify the checksum'),
    ('segment', 'owner_alive', 'producer alive (pidfd poll)'),
    ('backend', 'array', 'slot as an array'),
    ('callback', None, 'user callback (reads nothing)'),
    ('backend', 'synchronize', 'device synchronize after the callback'),
    ('segment', 'unclaim', 'unclaim'),
    ('segment', 'release', 'release store'),
]


class Timed:
    """A wrapper that adds each call's CPU and wall time to its step's totals."""

    def __init__(self, function, totals: dict, label: str):
        self.function, self.totals, self.label = function, totals, label
        totals.setdefault(label, [[], []])

    def __call__(self, *args, **kwargs):
        """Call the wrapped function, timing it."""
        cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
        try:
            return self.function(*args, **kwargs)
        finally:
            entry = self.totals[self.label]
            entry[0].append(time.thread_time_ns() - cpu)
            entry[1].append(time.perf_counter_ns() - wall)


def _wrap(owners: dict, steps: list, totals: dict, side: str) -> None:
    for owner, attribute, label in steps:
        if attribute is None:
            continue
        target = owners[owner]
        setattr(target, attribute, Timed(getattr(target, attribute), totals,
                                         f'{side}: {label}'))


def _per_frame(values: list, frames: int) -> tuple:
    """Median over frames of the per-frame sum, and the mean (steps may run twice a frame)."""
    array = np.asarray(values, dtype=np.float64) / 1e3
    per = array.reshape(frames, -1).sum(axis=1) if array.size % frames == 0 and array.size \
        else array
    return float(np.median(per)) if per.size else 0.0, float(array.sum() / frames)


def main() -> int:
    """Profile one backend at one size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--backend', default='cpu', help='cpu, pinned or cuda_ipc')
    parser.add_argument('--mode', default='zero_copy')
    parser.add_argument('--side', type=int, default=64, help='frame is side x side bytes')
    parser.add_argument('--frames', type=int, default=2000)
    parser.add_argument('--checksum', type=int, default=1, help='1: producer sends checksums')
    parser.add_argument('--pause-ms', type=float, default=0.0,
                        help='sleep before the producer and before the consumer: their code '
                             'then runs cold, as in a stream of spaced frames')
    parser.add_argument('--publish', action='store_true',
                        help='publish(array) of a source on the device (CuPy; NumPy on cpu) '
                             'instead of a loan filled in place')
    args = parser.parse_args()

    import rclpy
    from rclpy.node import Node
    from jetson_shm_ros import ShmPublisher, ShmSubscription
    import jetson_shm_ros.core.frame_consumer as consumer_module
    import jetson_shm_ros.ros.subscription as subscription_module

    rclpy.init()
    node = Node('bench_profile_steps')
    pub = ShmPublisher(node, 'bench/steps', dtype='uint8', shape=[args.side, args.side],
                       slots=4, policy='reliable', backend=args.backend, mode=args.mode,
                       checksum=bool(args.checksum), shm_name=f'/jsr_bench_steps_{os.getpid()}')
    sub = ShmSubscription(node, 'bench/steps_in', lambda frame, info: None,
                          backend=args.backend, mode=args.mode)
    sent = []
    rclpy_publish = pub._publisher.publish
    pub._publisher.publish = lambda msg: (sent.append(msg), rclpy_publish(msg))[1]
    totals: dict = {}
    frame_value = [0]

    def fill(frame):
        frame_value[0] = (frame_value[0] + 1) % 251
        frame.fill(frame_value[0])

    sources = None
    if args.publish:
        rng = np.random.default_rng(1)
        sources = [rng.integers(0, 256, (args.side, args.side), dtype=np.uint8)
                   for _ in range(2)]
        if args.backend != 'cpu':
            import cupy
            sources = [cupy.asarray(source) for source in sources]

    pause_s = args.pause_ms / 1e3

    def one_frame(timed: bool):
        sent.clear()
        if pause_s:
            time.sleep(pause_s)
        began = (time.thread_time_ns(), time.perf_counter_ns())
        if sources is not None:
            frame_value[0] += 1
            pub.publish(sources[frame_value[0] % 2], frame_id='1')
        else:
            with pub.loan(frame_id='1') as frame:
                if timed:
                    Timed(fill, totals, 'producer: fill the frame (one device kernel or memset)')(
                        frame)
                else:
                    fill(frame)
        produced = (time.thread_time_ns(), time.perf_counter_ns())
        if pause_s:
            time.sleep(pause_s)
        middle = (time.thread_time_ns(), time.perf_counter_ns())
        status = sub.handle_descriptor(sent[0])
        end = (time.thread_time_ns(), time.perf_counter_ns())
        if status != 'verified' and args.checksum:
            raise SystemExit(f'frame not verified: {status} {sub.summary()}')
        if timed:
            for label, start, stop in (('producer total', began, produced),
                                       ('consumer total', middle, end)):
                entry = totals.setdefault(label, [[], []])
                entry[0].append(stop[0] - start[0])
                entry[1].append(stop[1] - start[1])

    try:
        for _ in range(100):
            one_frame(False)
        segment = sub.frame_consumer._segments[pub.shm_name]
        producer_owners = {'frames': pub.frame_producer, 'backend': pub.backend,
                           'pool': pub.frame_producer.pool, 'messages': pub._messages,
                           'rclpy': pub._publisher}
        pub._publisher.publish = lambda msg: (sent.append(msg), rclpy_publish(msg))[1]
        _wrap(producer_owners, PRODUCER_STEPS, totals, 'producer')
        consumer_owners = {'subscription_module': subscription_module,
                           'consumer_module': consumer_module, 'consumer': sub.frame_consumer,
                           'backend': sub.backend, 'segment': segment}
        _wrap(consumer_owners, CONSUMER_STEPS, totals, 'consumer')
        for _ in range(args.frames):
            one_frame(True)
    finally:
        sub.close()
        pub.close()
        node.destroy_node()
        rclpy.try_shutdown()

    print(f'per-frame time by step, backend {args.backend} ({args.mode}), {args.side}x{args.side}'
          f' B, {"publish(array)" if args.publish else "loan"}, checksum '
          f'{"on" if args.checksum else "off"}, {args.frames} frames, one process'
          f'{f", {args.pause_ms:g} ms pause before each side" if pause_s else ""}'
          ' (no DDS transit); us per frame: CPU median / CPU mean / wall median / wall mean')
    for side in ('producer', 'consumer'):
        total_cpu, total_cpu_mean = _per_frame(totals[f'{side} total'][0], args.frames)
        total_wall, total_wall_mean = _per_frame(totals[f'{side} total'][1], args.frames)
        accounted = [0.0, 0.0]
        for label in [key for key in totals if key.startswith(side + ':')]:
            cpu, cpu_mean = _per_frame(totals[label][0], args.frames)
            wall, wall_mean = _per_frame(totals[label][1], args.frames)
            accounted[0] += cpu_mean
            accounted[1] += wall_mean
            print(f'  {cpu:8.1f} {cpu_mean:8.1f} {wall:8.1f} {wall_mean:8.1f}  {label}')
        print(f'  {"":8} {total_cpu_mean - accounted[0]:8.1f} {"":8} '
              f'{total_wall_mean - accounted[1]:8.1f}  {side}: Python glue (not in a step above;'
              ' includes the timers)')
        print(f'  {total_cpu:8.1f} {total_cpu_mean:8.1f} {total_wall:8.1f} {total_wall_mean:8.1f}'
              f'  {side}: TOTAL')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
