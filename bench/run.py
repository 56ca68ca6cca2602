"""
One benchmark run: `python -m bench [--mode quick|full]` (what `make bench` runs).

Measures the ceilings, starts the subscriber and the publisher process (bench/peer.py) on an
isolated ROS domain, prints a line per phase while it runs, and writes
bench/results/local/<machine>-<date>.json, .md and .png (bench/report.py; git ignores
local/: pass --out-dir bench/results to add a run to the committed ones).
"""

import argparse
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from bench import ceilings, iceoryx, report
from bench.transports import GPU_ONLY, MEASURES, NO_EXECUTOR, OPTIONAL, TRANSPORTS

KIB, MIB = 1 << 10, 1 << 20
SIZES = {'quick': [4 * KIB, 64 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB],
         'full': [4 * KIB, 64 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB]}
# Per phase: latency stops after n_max samples, or n_min once budget_s passed, or 3 once
# hard_budget_s passed (quick mode only: a plain message of 256 MiB takes a second); throughput
# runs duration_s. The first `warmup` frames (mapping, pinning, first allocations) do not
# count. Full mode takes n_max samples of every latency series (a p99 of 200 samples is the
# 2nd largest), n_big_ros_msg of ros_msg at BIG_ROS_MSG bytes and more.
BUDGETS = {'quick': {'n_min': 20, 'n_max': 300, 'budget_s': 1.5, 'hard_budget_s': 10.0,
                     'duration_s': 1.5, 'warmup': 3, 'n_big_ros_msg': 3},
           'full': {'n_min': 200, 'n_max': 200, 'budget_s': 0.0, 'hard_budget_s': None,
                    'duration_s': 1.0, 'warmup': 3, 'n_big_ros_msg': 30}}
BIG_ROS_MSG = 64 << 20
# The executor dimension: the subscriber spins each of these in phases of their own at the
# smallest size (the default phases use 'single').
EXECUTOR_PHASES = ('events', 'multi')
# rclpy's MultiThreadedExecutor (before the fix of ros2/rclpy#1452, e.g. Kilted's 9.1.2) spins
# hot while a callback waits in its thread pool: 25 to 250 ms a frame. Its phases stop after
# MULTI_BUDGET_S once they have MULTI_MIN_SAMPLES per series (doc/performance.md).
MULTI_MIN_SAMPLES, MULTI_BUDGET_S = 30, 20.0
MULTI_FRAME_S = 0.07
# For the run-length estimate: seconds per frame = FRAME_S + bytes * NS_PER_BYTE / 1e9, for
# every byte a transport moves or reads in the phase's measure: end to end fills and reads the
# frame, a hand-over only copies what the transport itself copies (HANDOVER_COPIES).
FRAME_S = 0.0012
NS_PER_BYTE = {'ros_msg': 5.0, 'cpu': 0.5, 'cpu_sum': 0.5, 'iceoryx2': 0.4, 'pinned': 0.15,
               'pinned_copy': 0.15, 'pinned_publish': 0.15, 'cuda_ipc': 0.02, 'descriptor': 0.0}
HANDOVER_COPIES = ('ros_msg', 'pinned_copy', 'pinned_publish')
SUBSCRIBER_EXIT_S = 15.0
ROS_MSG_ALONE_ABOVE = MIB


def size_label(size: int) -> str:
    """4096 -> '4 KiB', 1 << 20 -> '1 MiB'."""
    return f'{size // MIB} MiB' if size >= MIB else f'{size // KIB} KiB'


def make_plan(transports, sizes, measures, budget: dict, gpu: bool,
              executors=EXECUTOR_PHASES) -> dict:
    """
    Every phase, size by size.

    A latency phase (hand-over, end to end) runs the transports at once, frame by frame in
    turn, the descriptor among them; above ROS_MSG_ALONE_ABOVE bytes ros_msg runs alone (it
    is up to 100 times slower there, and its big messages would disturb the others). A
    throughput phase runs one transport.
    """
    # A first phase that is not recorded: both processes' first frames (imports, allocator,
    # DDS discovery of the ack topic) would otherwise land in the first series.
    smallest = int(round(min(sizes) ** 0.5))
    phases = [dict(budget, id=0, measure='e2e', transports=list(transports), warm_up=True,
                   size=smallest * smallest, side=smallest, executor='single')]
    for size in sizes:
        side = int(round(size ** 0.5))
        common = dict(budget, size=side * side, side=side, executor='single')
        for measure in measures:
            group = list(transports)
            if measure == 'throughput':
                groups = [[t] for t in group]
            elif size > ROS_MSG_ALONE_ABOVE:
                groups = [[t] for t in group if t == 'ros_msg'] + \
                    [[t for t in group if t != 'ros_msg']]
            else:
                groups = [group]
            for members in groups:
                phase = dict(common, id=len(phases), measure=measure, transports=members)
                if members == ['ros_msg'] and size >= BIG_ROS_MSG:
                    phase.update(n_min=min(phase['n_min'], budget['n_big_ros_msg']),
                                 n_max=budget['n_big_ros_msg'])
                phases.append(phase)
    side = int(round(min(sizes) ** 0.5))
    for executor in executors:
        bounded = {'n_min': min(budget['n_min'], MULTI_MIN_SAMPLES),
                   'budget_s': max(budget['budget_s'], MULTI_BUDGET_S)} \
            if executor == 'multi' else {}
        for measure in [m for m in measures if m != 'throughput']:
            phases.append(dict(budget, id=len(phases), measure=measure, size=side * side,
                               side=side, executor=executor, **bounded,
                               transports=[t for t in transports if t not in NO_EXECUTOR]))
    return {'gpu': gpu, 'phases': phases, 'shm_prefix': f'/jsr_bench_{os.getpid()}'}


def estimate_s(plan: dict) -> float:
    """Roughly how long the transports' phases take (printed before the run starts)."""
    total = 0.0
    for phase in plan['phases']:
        if phase['measure'] == 'throughput':
            total += phase['duration_s'] + 1.0
            continue
        frame_s = MULTI_FRAME_S if phase.get('executor') == 'multi' else FRAME_S
        moved = [t for t in phase['transports']
                 if phase['measure'] != 'handover' or t in HANDOVER_COPIES]
        # One round: a frame of each transport in turn.
        round_s = len(phase['transports']) * frame_s + sum(
            phase['size'] * NS_PER_BYTE.get(t, 0.5) / 1e9 for t in moved)
        seconds = (phase['n_max'] + phase['warmup']) * round_s
        # A phase ends at its budget once it has n_min samples per series (or 3, past
        # hard_budget_s).
        least = (phase['n_min'] + phase['warmup']) * round_s
        seconds = min(seconds, max(least, phase['budget_s']))
        if phase.get('hard_budget_s') is not None:
            seconds = min(seconds, max(phase['hard_budget_s'], 3 * round_s))
        total += 1.0 + seconds
    return total


def _describe(result: dict) -> str:
    if result.get('error'):
        return f'ERROR {result["error"]}'
    if result['measure'] == 'throughput':
        if 'fps' not in result:
            return f'no rate (n={result.get("n", 0)})'
        return (f'{result["fps"]:9.1f} frames/s {result["GBps"]:7.3f} GB/s '
                f'(n={result["n"]}, lost={result["lost"]})')
    if not result.get('n'):
        return f'no sample (lost={result.get("lost")})'
    cpu = f', cpu pub/sub {result["pub_cpu_us"]:.0f}/{result["sub_cpu_us"]:.0f} us' \
        if 'pub_cpu_us' in result else ''
    return (f'p50 {result["p50_ms"]:9.3f} ms  p99 {result["p99_ms"]:9.3f} ms  '
            f'(n={result["n"]}, lost={result["lost"]}, bad={result["bad"]}{cpu})')


def _has_events() -> bool:
    from jetson_shm_ros.ros.executors import events_executor_class
    return events_executor_class() is not None


def run_peers(plan: dict) -> tuple:
    """Start both processes, relay progress, return (info, results)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=os.environ.get('BENCH_DOMAIN_ID',
                                            str(random.SystemRandom().randrange(100, 200))))
    with tempfile.NamedTemporaryFile('w', suffix='.json', delete=False) as plan_file:
        json.dump(plan, plan_file)
    command = [sys.executable, '-m', 'bench.peer']
    root = ceilings.ROOT
    subscriber = subprocess.Popen(command + ['subscribe', plan_file.name], cwd=root, env=env)
    info, results = {}, []
    try:
        publisher = subprocess.Popen(command + ['publish', plan_file.name], cwd=root, env=env,
                                     stdout=subprocess.PIPE, text=True)
        total = sum(len(phase['transports']) for phase in plan['phases']
                    if not phase.get('warm_up'))
        print(f'bench: {total} series in {len(plan["phases"])} phases, about '
              f'{estimate_s(plan) / 60:.1f} min (estimate)', flush=True)
        began = time.monotonic()
        for line in publisher.stdout:
            if line.startswith('INFO '):
                info = json.loads(line[5:])
                print(f'bench: rmw={info["rmw"]}, ROS_DOMAIN_ID={env["ROS_DOMAIN_ID"]}, '
                      f'{total} series in {len(plan["phases"])} phases', flush=True)
            elif line.startswith('RESULT '):
                result = json.loads(line[7:])
                if result.get('warm_up'):
                    continue
                results.append(result)
                print(f'[{len(results):3d}/{total} {time.monotonic() - began:5.0f} s] '
                      f'{result["transport"]:<11} {size_label(result["size"]):>7} '
                      f'{result["measure"]:<10} {result.get("executor", ""):<6} '
                      f'{_describe(result)}', flush=True)
            else:
                print(line, end='', flush=True)
        publisher.wait()
        subscriber.wait(timeout=SUBSCRIBER_EXIT_S)
    finally:
        for process in (subscriber,):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=SUBSCRIBER_EXIT_S)
        os.unlink(plan_file.name)
    return info, results


def measure_ceilings(sizes, gpu: bool, before: dict = None) -> dict:
    """
    Host memcpy per size, and on a GPU the H2D / kernel-read ceilings per size.

    Run before and after the transports (`before`: the first run's result); the best of the
    two counts, as a ceiling is what the machine can do.
    """
    result = {'host_memcpy_GBps': {}, 'cpu_checksum_GBps': {}}
    for size in sizes:
        for key, measure in (('host_memcpy_GBps', ceilings.host_memcpy_GBps),
                             ('cpu_checksum_GBps', ceilings.cpu_checksum_GBps)):
            result[key][size] = max(measure(size), (before or {}).get(key, {}).get(size, 0.0))
        print(f'bench: ceiling host memcpy {size_label(size):>7}: '
              f'{result["host_memcpy_GBps"][size]:6.2f} GB/s; the CPU checksum reads '
              f'{result["cpu_checksum_GBps"][size]:6.2f} GB/s', flush=True)
    if gpu and before is not None:
        for key in before:
            result.setdefault(key, before[key])  # the GPU's are measured once, before
    elif gpu:
        for size, rates in ceilings.gpu_GBps(sizes).items():
            for key, value in rates.items():
                result.setdefault(f'{key}_GBps', {})[size] = value
            print(f'bench: ceiling GPU {size_label(size):>7}: pinned H2D {rates["h2d"]:6.1f} '
                  f'GB/s, kernel read of a mapped slot {rates["kernel_read"]:6.1f} GB/s, '
                  f'device read {rates["device_read"]:7.1f} GB/s', flush=True)
    return result


def main(argv=None) -> int:
    """Plan, measure, write; exit status 1 if a phase failed or got no sample."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mode', choices=sorted(SIZES), default='quick')
    parser.add_argument('--transports', nargs='+', choices=TRANSPORTS)
    parser.add_argument('--sizes', nargs='+', type=int, help='bytes (default: by mode)')
    parser.add_argument('--measures', nargs='+', choices=MEASURES, default=list(MEASURES))
    parser.add_argument('--executors', nargs='*', choices=EXECUTOR_PHASES,
                        default=list(EXECUTOR_PHASES),
                        help='subscriber executors measured beside single (at the smallest '
                             'size); none: leave the dimension out')
    # A local run's files go where git ignores them; --out-dir bench/results to commit one.
    parser.add_argument('--out-dir', default=os.path.join(ceilings.ROOT, 'bench', 'results',
                                                          'local'))
    args = parser.parse_args(argv)

    machine = ceilings.machine()
    gpu = bool(machine['gpu'].get('name'))
    # CUDA IPC memory handles do not exist on an integrated GPU (Jetson).
    integrated = machine['gpu'].get('integrated', False)
    missing = {'iceoryx2': not iceoryx.available()}
    transports = args.transports or [name for name in TRANSPORTS
                                     if (gpu or name not in GPU_ONLY) and
                                     not (integrated and name == 'cuda_ipc') and
                                     not (name in OPTIONAL and missing[name])]
    unusable = [name for name in transports
                if (name in GPU_ONLY and not gpu) or (name == 'cuda_ipc' and integrated) or
                (name in OPTIONAL and missing[name])]
    if unusable:
        # Asked for by name: say so now rather than fail every phase of the run.
        print(f'bench: cannot run {unusable} here (GPU: '
              f'{machine["gpu"].get("name") or machine["gpu"]["why_none"]}; iceoryx2 '
              f'{"missing" if missing["iceoryx2"] else "importable"})', flush=True)
        return 2
    for name in OPTIONAL:
        if missing[name] and name not in transports:
            print(f'bench: {name} left out: not importable here (pip install -r '
                  'requirements/bench.txt)', flush=True)
    executors = [kind for kind in args.executors if kind != 'events' or _has_events()]
    if len(executors) < len(args.executors):
        print('bench: this rclpy has no EventsExecutor (before Jazzy): left out', flush=True)
    sizes = args.sizes or SIZES[args.mode]
    print(f'bench: {args.mode} mode on {machine["cpu"]} ({machine["cores"]} cores), GPU: '
          f'{machine["gpu"].get("name") or "none (" + machine["gpu"]["why_none"] + ")"}; '
          f'transports {transports}; sizes {[size_label(size) for size in sizes]}', flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    limits = measure_ceilings(sizes, gpu)
    plan = make_plan(transports, sizes, args.measures, BUDGETS[args.mode], gpu, executors)
    info, results = run_peers(plan)
    limits = measure_ceilings(sizes, gpu, before=limits)
    document = {'mode': args.mode, 'started_utc': started.isoformat(timespec='seconds'),
                'seconds': (datetime.datetime.now(datetime.timezone.utc) -
                            started).total_seconds(),
                'machine': machine, 'versions': dict(ceilings.versions(), rmw=info.get('rmw')),
                # Other processes' load: 1-minute load average before and after (cores: machine).
                'load_average_1min': [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
                'ceilings': limits, 'budgets': BUDGETS[args.mode], 'results': results}
    os.makedirs(args.out_dir, exist_ok=True)
    base = os.path.join(args.out_dir, f'{ceilings.machine_slug(machine)}-'
                        f'{started:%Y-%m-%d}' + ('' if args.mode == 'quick' else '-full'))
    paths = report.write_all(document, base)
    print(open(paths['md']).read())
    print('bench: wrote ' + ', '.join(paths.values()))
    failed = [r for r in results if r.get('error') or not r.get('n')]
    for result in failed:
        print(f'bench: FAILED {result["transport"]} {size_label(result["size"])} '
              f'{result["measure"]}: {_describe(result)}')
    expected = sum(len(phase['transports']) for phase in plan['phases']
                   if not phase.get('warm_up'))
    return 1 if failed or len(results) != expected else 0
