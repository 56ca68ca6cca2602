"""
The benchmark's two ROS processes: `python -m bench.peer publish|subscribe PLAN.json`.

The publisher drives every phase of the plan (a size, a measure and one or more transports):
it asks the subscriber on `bench/control` to subscribe, waits until both sides matched, sends
frames, and prints one `RESULT {json}` line per transport and phase. The subscriber
acknowledges each frame on `bench/ack` with the time it held (or had verified) it. Both stamp
CLOCK_MONOTONIC, which all processes of a machine share, so latency is t1 - t0 without any
clock offset. Acks also pace the publisher: one frame in flight for latency, WINDOW for
throughput. A latency phase sends frame k through transport k % T, round after round, so load
from elsewhere on the machine hits every transport alike.

CPU time: each ack carries the subscriber process's CPU time (all its threads) when it held
frame k, and the publisher notes its own when the ack arrives; the difference between frames
k - 1 and k is that frame's cost in each process (median per series). The subscriber spins
with the phase's executor (single, events, multi: the executor dimension).

Split: each ack also carries the time the subscriber's transport callback was entered, and each
publisher keeps the time its send returned, so a latency frame splits into arrival and
consumer, with the producer's own part beside them (SPLIT_PARTS, split_p50_us per series).
"""

import json
import os
import statistics
import sys
import time

from bench.transports import GpuChecksum, make_publisher, make_subscription, SLOTS, Sources
from jetson_shm_ros.ros.executors import make_executor
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

MATCH_TIMEOUT_S = 30.0
CONTROL_RESEND_S = 0.5
# Pause between latency frames: 0.5 ms plus a fifth of the last frame's latency, at most 50 ms.
SETTLE_MIN_S, SETTLE_MAX_S = 0.0005, 0.05
# Throughput: frames in flight. One less than the slots, so the slot a new frame needs was
# released by a callback that already returned (reliable policy; no waiting for a free slot).
WINDOW = SLOTS - 1
# A latency frame's time in parts (split_p50_us): t0 -> the subscriber's transport callback
# entered (arrival: the producer's commit and send, the RMW, the wake-up), then -> the frame
# held or checked (consumer); arrival + consumer = t1 - t0 for each frame. Beside them,
# t0 -> the publisher's send returned (producer), which overlaps the arrival: a subscriber
# can be woken before the send returns. Medians of each part need not add up to p50.
SPLIT_PARTS = ('producer', 'arrival', 'consumer')
# A pause after a ros_msg phase: its big messages are still being freed and acknowledged.
AFTER_ROS_MSG_S = 1.0
THROUGHPUT_WARMUP = 1
# Throughput's longest run when its frames are slow (a plain message of 256 MiB), full mode.
THROUGHPUT_HARD_BUDGET_S = 10.0
# A phase that runs longer than this prints a progress line now and then.
PROGRESS_EVERY_S = 10.0


def _control_qos() -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=256,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def percentile(values: list, fraction: float) -> float:
    """Return the nearest-rank value at `fraction` (p99 of under 100 samples: the largest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.999999) - 1))]


def _split(parts: dict, t0: int, sent_ns: int, frame: tuple) -> None:
    """Add one frame's producer / arrival / consumer ns, when both sides stamped it."""
    t1, arrived = frame[0], frame[4]
    if sent_ns >= t0 and t0 <= arrived <= t1:
        parts['producer'].append(sent_ns - t0)
        parts['arrival'].append(arrived - t0)
        parts['consumer'].append(t1 - arrived)


def latency_summary(values_ms: list) -> dict:
    """p50, p99, n (and mean, min, max) of a latency series in milliseconds."""
    if not values_ms:
        return {'n': 0}
    return {'p50_ms': statistics.median(values_ms), 'p99_ms': percentile(values_ms, 0.99),
            'min_ms': min(values_ms), 'max_ms': max(values_ms),
            'mean_ms': statistics.fmean(values_ms), 'n': len(values_ms)}


class Publisher:
    """Drives the phases; keeps the acks of the current phase."""

    def __init__(self, plan: dict):
        self.plan = plan
        self.node = Node('bench_publisher')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.control = self.node.create_publisher(String, 'bench/control', _control_qos())
        self.node.create_subscription(String, 'bench/ack', self._on_ack, _control_qos())
        self.phase_id, self.ready, self.closed = None, False, None
        self.frames = {}
        self._sources = {}

    def _on_ack(self, msg: String) -> None:
        kind, phase_id, rest = (msg.data.split(' ', 2) + [''])[:3]
        if int(phase_id) != self.phase_id:
            return
        if kind == 'frame':
            k, t1, ok, cpu, arrived = rest.split()
            # (t1, ok, the subscriber's CPU ns then, the publisher's CPU ns now, the time the
            # subscriber's transport callback was entered)
            self.frames[int(k)] = (int(t1), ok == '1', int(cpu), time.process_time_ns(),
                                   int(arrived))
        elif kind == 'ready':
            self.ready = True
        elif kind == 'closed':
            self.closed = json.loads(rest)

    def spin(self, seconds: float) -> None:
        """Handle acks for up to `seconds`."""
        self.executor.spin_once(timeout_sec=seconds)

    def sources(self, side: int) -> Sources:
        """Return the source frames of one size, made once."""
        if side not in self._sources:
            self._sources[side] = Sources(side, self.plan['gpu'])
        return self._sources[side]

    def _handshake(self, message: str, done) -> None:
        deadline, last = time.monotonic() + MATCH_TIMEOUT_S, 0.0
        while not done():
            if time.monotonic() - last > CONTROL_RESEND_S:
                self.control.publish(String(data=message))
                last = time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f'no answer from the subscriber to {message[:60]!r}')
            self.spin(0.02)

    def send(self, tx, k: int, timeout_s: float):
        """Send frame k, retrying while no slot is free; return t0 or None."""
        deadline = time.monotonic() + timeout_s
        while True:
            t0 = tx.send(k)
            if t0 is not None or time.monotonic() > deadline:
                return t0
            self.spin(0.0005)

    def run_phase(self, phase: dict) -> list:
        """Run one phase; return a result per transport."""
        self.phase_id, self.ready, self.closed, self.frames = phase['id'], False, None, {}
        side, txs = phase['side'], []
        try:
            for index, transport in enumerate(phase['transports']):
                txs.append(make_publisher(
                    self.node, transport, f'bench/p{phase["id"]}_{index}', side,
                    self.sources(side), phase['measure'],
                    f'{self.plan["shm_prefix"]}_{phase["id"]}_{index}'))
            self._handshake('start ' + json.dumps(phase),
                            lambda: self.ready and all(tx.matched() for tx in txs))
            began = time.monotonic()
            if phase['measure'] == 'throughput':
                stats = [self.throughput(txs[0], phase)]
            else:
                stats = self.latency(txs, phase)
            seconds = time.monotonic() - began
            self._handshake(f'end {phase["id"]}', lambda: self.closed is not None)
        finally:
            for tx in txs:
                tx.close()
        if 'ros_msg' in phase['transports']:
            time.sleep(AFTER_ROS_MSG_S)
        common = {key: value for key, value in phase.items() if key != 'transports'}
        return [dict(common, transport=transport, seconds=seconds, **stat,
                     no_free_slot=getattr(txs[index], 'no_free_slot', 0),
                     subscriber_counts=self.closed.get(str(index), {}))
                for index, (transport, stat) in enumerate(zip(phase['transports'], stats))]

    def latency(self, txs: list, phase: dict) -> list:
        """One frame in flight, transports in turn; t1 - t0 per frame after the warm-up."""
        timeout_s = 5.0 + phase['size'] / 20e6
        count = len(txs)
        values, pub_side = [[] for _ in txs], [[] for _ in txs]
        split = [{part: [] for part in SPLIT_PARTS} for _ in txs]
        lost, bad, sent = [0] * count, [0] * count, [0] * count
        began, k, reported = time.monotonic(), 0, time.monotonic()
        hard = phase.get('hard_budget_s')
        while True:
            elapsed, fewest = time.monotonic() - began, min(len(v) for v in values)
            if fewest >= phase['n_max'] or k > count * (2 * phase['n_max'] + phase['warmup']) \
                    or (fewest >= phase['n_min'] and elapsed >= phase['budget_s']) or \
                    (hard is not None and fewest >= 3 and elapsed >= hard):
                break
            if time.monotonic() - reported > PROGRESS_EVERY_S:
                reported = time.monotonic()
                print(f'  ... phase {phase["id"]}: {fewest}/{phase["n_max"]} samples per '
                      f'series after {elapsed:.0f} s', flush=True)
            index = k % count
            t0 = self.send(txs[index], k, timeout_s)
            if t0 is not None and sent[index] >= phase['warmup'] and \
                    getattr(txs[index], 'pub_side_ns', None):
                pub_side[index].append(txs[index].pub_side_ns / 1e6)
            deadline = time.monotonic() + timeout_s
            while t0 is not None and k not in self.frames and time.monotonic() < deadline:
                self.spin(0.01)
            if k not in self.frames:
                lost[index] += 1
            elif not self.frames[k][1]:
                bad[index] += 1
            elif sent[index] >= phase['warmup']:
                values[index].append((self.frames[k][0] - t0) / 1e6)
                _split(split[index], t0, getattr(txs[index], 'sent_ns', 0), self.frames[k])
            if k in self.frames:
                # Let both sides finish the frame (release, free, DDS acknowledgements) before
                # the next one is timed.
                time.sleep(min(SETTLE_MAX_S, SETTLE_MIN_S + (self.frames[k][0] - t0) / 5e9))
            sent[index] += 1
            k += 1
        cpu = self._cpu_per_frame(count, count * phase['warmup'])
        return [dict(latency_summary(values[i]), sent=sent[i], lost=lost[i], bad=bad[i],
                     **cpu[i], **({'pub_side_p50_ms': statistics.median(pub_side[i]),
                                   'pub_side_p99_ms': percentile(pub_side[i], 0.99)}
                                  if pub_side[i] else {}),
                     **({'split_p50_us': {part: statistics.median(series) / 1e3
                                          for part, series in split[i].items()}}
                        if split[i]['producer'] else {}))
                for i in range(count)]

    def _cpu_per_frame(self, count: int, first: int) -> list:
        """Median CPU us per frame of each process, per transport (frame k: k % count)."""
        pub, sub = [[] for _ in range(count)], [[] for _ in range(count)]
        for k in sorted(self.frames):
            if k >= max(first, 1) and k - 1 in self.frames:
                pub[k % count].append((self.frames[k][3] - self.frames[k - 1][3]) / 1e3)
                sub[k % count].append((self.frames[k][2] - self.frames[k - 1][2]) / 1e3)
        return [{'pub_cpu_us': statistics.median(pub[i]), 'sub_cpu_us': statistics.median(sub[i])}
                if pub[i] else {} for i in range(count)]

    def throughput(self, tx, phase: dict) -> dict:
        """Up to WINDOW frames in flight for duration_s; rate from the subscriber's stamps."""
        timeout_s = 5.0 + phase['size'] / 20e6
        # One frame of warm-up: the rate needs frames in a row, and a plain message of 256 MiB
        # takes a second or more each.
        warmup = THROUGHPUT_WARMUP
        in_flight, lost, k = {}, 0, 0
        began = time.monotonic()
        hard_budget_s = phase.get('hard_budget_s') or THROUGHPUT_HARD_BUDGET_S
        while time.monotonic() - began < phase['duration_s'] or len(self.frames) < 3 + \
                warmup and time.monotonic() - began < hard_budget_s:
            for done in [key for key in in_flight if key in self.frames]:
                del in_flight[done]
            for stale in [key for key, t in in_flight.items() if time.monotonic() - t > timeout_s]:
                del in_flight[stale]
                lost += 1
            if len(in_flight) < WINDOW and self.send(tx, k, timeout_s) is not None:
                in_flight[k] = time.monotonic()
                k += 1
            else:
                self.spin(0.0005)
        deadline = time.monotonic() + timeout_s
        while any(key not in self.frames for key in in_flight) and time.monotonic() < deadline:
            self.spin(0.01)
        lost += sum(key not in self.frames for key in in_flight)
        good = sorted(entry[0] for key, entry in self.frames.items() if entry[1] and key >= warmup)
        bad = sum(not entry[1] for entry in self.frames.values())
        result = {'sent': k, 'lost': lost, 'bad': bad, 'n': len(good)}
        if len(good) >= 2:
            fps = (len(good) - 1) / ((good[-1] - good[0]) / 1e9)
            result.update(fps=fps, GBps=fps * phase['size'] / 1e9)
            keys = sorted(key for key in self.frames if key >= warmup)
            first, last = self.frames[keys[0]], self.frames[keys[-1]]
            result.update(pub_cpu_us=(last[3] - first[3]) / 1e3 / (len(keys) - 1),
                          sub_cpu_us=(last[2] - first[2]) / 1e3 / (len(keys) - 1))
        return result


class Subscriber:
    """Subscribes per phase as told; acknowledges every frame."""

    def __init__(self, plan: dict):
        self.node = Node('bench_subscriber')
        self.executor_kind = 'single'
        self.executor = make_executor(self.executor_kind)
        self.executor.add_node(self.node)
        self.pending_ready = None  # (phase id, executor) to answer once spun by that executor
        self.acks = self.node.create_publisher(String, 'bench/ack', _control_qos())
        self.node.create_subscription(String, 'bench/control', self._on_control, _control_qos())
        self.gpu_checksum = GpuChecksum() if plan['gpu'] else None
        self.phase_id, self.rxs, self.finished = None, [], False

    def _ack(self, text: str) -> None:
        self.acks.publish(String(data=text))

    def _on_control(self, msg: String) -> None:
        kind, _, rest = msg.data.partition(' ')
        if kind == 'quit':
            self.finished = True
        elif kind == 'start':
            phase = json.loads(rest)
            if phase['id'] != self.phase_id:
                self._close()
                self.phase_id = phase['id']
                self.rxs = [make_subscription(self.node, transport,
                                              f'bench/p{phase["id"]}_{index}', phase['measure'],
                                              self._on_frame, self.gpu_checksum)
                            for index, transport in enumerate(phase['transports'])]
            self.pending_ready = (phase['id'], phase.get('executor', 'single'))
        elif kind == 'end' and int(rest) == self.phase_id:
            counts = self._close()
            self._ack(f'closed {rest} {json.dumps(counts)}')
        elif kind == 'end':
            self._ack(f'closed {rest} {{}}')

    def _on_frame(self, k: int, t1: int, ok: bool, arrived: int = 0) -> None:
        self._ack(f'frame {self.phase_id} {k} {t1} {int(ok)} {time.process_time_ns()} '
                  f'{arrived}')

    def serve_once(self) -> None:
        """Spin once; switch to the executor a new phase asked for, then say ready."""
        self.executor.spin_once(timeout_sec=0.1)
        if self.pending_ready is None:
            return
        phase_id, kind = self.pending_ready
        self.pending_ready = None
        if kind != self.executor_kind:
            self.executor.remove_node(self.node)
            self.executor.shutdown()
            self.executor = make_executor(kind)
            self.executor.add_node(self.node)
            self.executor_kind = kind
        self._ack(f'ready {phase_id}')

    def _close(self) -> dict:
        counts = {}
        for index, rx in enumerate(self.rxs):
            counts[str(index)] = rx.counts()
            rx.close(self.node)
        self.rxs = []
        return counts


def main(argv) -> int:
    """Run one side; the publisher prints INFO and RESULT lines on stdout."""
    role, plan_path = argv[1], argv[2]
    with open(plan_path) as plan_file:
        plan = json.load(plan_file)
    # Warnings and errors only: each phase's endpoints would log their start-up lines.
    rclpy.init(args=['--ros-args', '--log-level', 'warn'])
    try:
        if role == 'subscribe':
            side = Subscriber(plan)
            while rclpy.ok() and not side.finished:
                side.serve_once()
            side._close()
            return 0
        side = Publisher(plan)
        from rclpy.utilities import get_rmw_implementation_identifier
        print('INFO ' + json.dumps({'rmw': get_rmw_implementation_identifier(),
                                    'pid': os.getpid()}), flush=True)
        for phase in plan['phases']:
            try:
                results = side.run_phase(phase)
            except Exception as error:  # noqa: B902 - one broken phase must not end the run
                common = {key: value for key, value in phase.items() if key != 'transports'}
                results = [dict(common, transport=transport, n=0,
                                error=f'{type(error).__name__}: {error}')
                           for transport in phase['transports']]
            for result in results:
                print('RESULT ' + json.dumps(result), flush=True)
        side.control.publish(String(data='quit'))
        side.spin(0.2)
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
