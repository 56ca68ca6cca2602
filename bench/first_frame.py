"""
Time to the first frame when the subscriber is already up: `python -m bench.first_frame`.

Each run starts a subscriber process (ShmSubscription), waits until it is up and has been
announcing itself for a while, then starts a publisher process (ShmPublisher at `--rate-hz`,
frame k carrying frame_id k) and measures, on CLOCK_REALTIME shared by both processes:

- ttff_ms: from the publisher process's start to the subscriber's first frame;
- after_ctor_ms: from the end of the ShmPublisher constructor to that frame;
- ctor_ms: how long the constructor took (process start to its end);
- first: the number of the first frame that arrived (0: nothing was lost);
- matched_at: the number of the frame the publisher was about to send when it first counted
  the subscription as matched (None: the frame arrived before it counted it).

Every process may run on its own RMW (`--pub-rmw`, `--sub-rmw`: mixed Fast DDS <-> Cyclone
DDS needs both installed, e.g. a sourced build of rmw_cyclonedds_cpp). Prints one JSON line a
run and a summary (medians) at the end. A benchmark script, not a test: nothing is asserted.
"""

import argparse
import json
import os
import platform
import random
import select
import statistics
import subprocess
import sys
import time

UP_TIMEOUT_S = 30.0
FIRST_FRAME_TIMEOUT_S = 30.0


def _subscriber(topic: str) -> int:
    import rclpy
    from rclpy.node import Node
    from jetson_shm_ros.ros.subscription import ShmSubscription

    rclpy.init()
    node = Node('first_frame_sub')
    got = []

    def on_frame(frame, info):
        if not got:
            got.append((time.time(), info.header.frame_id))

    sub = ShmSubscription(node, topic, on_frame, backend='cpu', diagnostics_period_s=0.0)
    print('UP', flush=True)
    deadline = time.monotonic() + UP_TIMEOUT_S + FIRST_FRAME_TIMEOUT_S
    while not got and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if got:
        print(f'FIRST {got[0][0]:.6f} {got[0][1]}', flush=True)
    sub.close()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0 if got else 1


def _publisher(topic: str, policy: str, rate_hz: float, shm_name: str, start: float) -> int:
    import rclpy
    from rclpy.node import Node
    from jetson_shm_ros.ros.publisher import ShmPublisher

    rclpy.init()
    node = Node('first_frame_pub')
    pub = ShmPublisher(node, topic, dtype='uint8', shape=[64, 64, 3], policy=policy,
                       backend='cpu', shm_name=shm_name, diagnostics_period_s=0.0)
    print(f'CTOR {time.time():.6f}', flush=True)
    frame, next_at, matched = 0, time.monotonic(), False
    deadline = time.monotonic() + FIRST_FRAME_TIMEOUT_S
    while time.monotonic() < deadline:
        if not matched and pub.subscription_count():
            print(f'MATCHED {frame}', flush=True)
            matched = True
        # Until the driver says stop (stdin closes) or the deadline.
        if select.select([sys.stdin], [], [], 0)[0] and not sys.stdin.readline():
            break
        try:
            pub.publish_test_pattern(frame_id=str(frame))
            frame += 1
        except Exception:  # noqa: B902 - reliable: no free slot yet; try at the next tick
            pass
        next_at += 1.0 / rate_hz
        time.sleep(max(0.0, next_at - time.monotonic()))
    pub.close()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def _env(rmw: str, domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED='1',
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    if rmw:
        env['RMW_IMPLEMENTATION'] = rmw
    return env


def _line(process, prefix: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.1)[0]:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line.split(maxsplit=1)[1].strip() if ' ' in line.strip() else ''
    raise RuntimeError(f'no {prefix} line within {timeout_s} s')


def one_run(args, run: int) -> dict:
    """Start a subscriber, then a publisher; return the run's figures."""
    domain = random.SystemRandom().randrange(100, 200)
    topic = f'first_frame_{os.getpid()}_{run}'
    me = [sys.executable, '-m', 'bench.first_frame']
    sub = subprocess.Popen(me + ['--role', 'sub', '--topic', topic], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           env=_env(args.sub_rmw, domain))
    pub = None
    try:
        _line(sub, 'UP', UP_TIMEOUT_S)
        time.sleep(args.settle_s)  # the subscriber is "already up": discoverable for a while
        start = time.time()
        pub = subprocess.Popen(
            me + ['--role', 'pub', '--topic', topic, '--policy', args.policy,
                  '--rate-hz', str(args.rate_hz), '--shm-name', f'/jsr_ff_{os.getpid()}_{run}'],
            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=_env(args.pub_rmw, domain))
        ctor = float(_line(pub, 'CTOR', UP_TIMEOUT_S))
        first_time, first = _line(sub, 'FIRST', FIRST_FRAME_TIMEOUT_S).split()
        first_time = float(first_time)
        try:  # the frame number the publisher was at when it first counted the subscription
            matched = int(_line(pub, 'MATCHED', 2.0))
        except (RuntimeError, ValueError):
            matched = None  # the subscription had its frame before the publisher counted it
        return {'run': run, 'first': int(first), 'matched_at': matched,
                'ttff_ms': (first_time - start) * 1e3,
                'after_ctor_ms': (first_time - ctor) * 1e3, 'ctor_ms': (ctor - start) * 1e3}
    finally:
        for process in (pub, sub):
            if process is None:
                continue
            if process is pub:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv=None) -> int:
    """Run the roles, or drive `--runs` measurements and print them."""
    parser = argparse.ArgumentParser(prog='python -m bench.first_frame', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--role', choices=('drive', 'sub', 'pub'), default='drive')
    parser.add_argument('--topic', default='first_frame')
    parser.add_argument('--policy', choices=('latest', 'reliable'), default='reliable')
    parser.add_argument('--rate-hz', type=float, default=50.0)
    parser.add_argument('--shm-name', default='/jsr_first_frame')
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--settle-s', type=float, default=2.0,
                        help='how long the subscriber runs before the publisher starts')
    parser.add_argument('--pub-rmw', default='', help='RMW_IMPLEMENTATION of the publisher')
    parser.add_argument('--sub-rmw', default='', help='RMW_IMPLEMENTATION of the subscriber')
    args = parser.parse_args(argv)
    if args.role == 'sub':
        return _subscriber(args.topic)
    if args.role == 'pub':
        return _publisher(args.topic, args.policy, args.rate_hz, args.shm_name, time.time())
    results = []
    for run in range(args.runs):
        try:
            result = one_run(args, run)
        except RuntimeError as error:
            result = {'run': run, 'error': str(error)}
        results.append(result)
        print(json.dumps(result), flush=True)
    done = [result for result in results if 'error' not in result]
    summary = {'machine': f'{platform.node()} {platform.machine()} {os.cpu_count()} cpu',
               'pub_rmw': args.pub_rmw or os.environ.get('RMW_IMPLEMENTATION', 'default'),
               'sub_rmw': args.sub_rmw or os.environ.get('RMW_IMPLEMENTATION', 'default'),
               'policy': args.policy, 'rate_hz': args.rate_hz, 'runs': len(results),
               'failed': len(results) - len(done),
               'frame0_arrived': sum(result['first'] == 0 for result in done),
               # The first frame after the publisher counted the subscription, or an earlier one.
               'first_after_match_arrived': sum(
                   result['matched_at'] is None or result['first'] <= result['matched_at']
                   for result in done),
               'first_frames': [result['first'] for result in done]}
    for key in ('ttff_ms', 'after_ctor_ms', 'ctor_ms'):
        if done:
            summary[f'median_{key}'] = round(statistics.median(r[key] for r in done), 1)
    print('SUMMARY ' + json.dumps(summary), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
