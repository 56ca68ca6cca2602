#!/usr/bin/env python3
"""
Soak: stream many frames through the installed nodes while they restart, and check for leaks.

One consumer runs from start to end (it sees every producer restart and must remap without
growing); a second consumer restarts every --consumer-restart frames; the producer restarts
every --producer-restart frames until --frames frames were published. Every process is sampled
about twice a second (open fds, file mappings in /proc/PID/maps but the middleware's own, RSS,
and the GPU resources a GPU backend reports in its status line); the first sample after the
warm-up is compared with the last one. /dev/shm is checked for this soak's segments at the
start and the end.

    python3 scripts/soak.py                       # what `make soak` runs: 100,000 frames
    python3 scripts/soak.py --frames 3000 --consumer-restart 1000 --producer-restart 1500

Run it in a built and sourced environment (scripts/env.sh); --bin names another install.
Exit status 0 when every bound held, every consumer reported no invalid frame, and no segment
was left behind; 1 otherwise.
"""

import argparse
from collections import Counter
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

SHM_DIR = '/dev/shm'
SAMPLE_PERIOD_S = 0.25
STOP_TIMEOUT_S = 60.0
# Consumer status/summary lines say received=N, producer status/done lines published=N.
_COUNT = re.compile(r'(?:status: received|summary: received|published)=(\d+)')
_GPU = re.compile(r'gpu_resources=(\S+)')
# What a node logs once it stops (consumer: its summary; producer: its done line).
_FINISHING = re.compile(r'\]: (summary|done): ')
_SUMMARY = re.compile(r'summary: (.*)')


def installed_bin() -> str:
    from ament_index_python.packages import get_package_prefix
    return os.path.join(get_package_prefix('jetson_shm_ros'), 'lib', 'jetson_shm_ros')


def ros_args(params: dict) -> list:
    args = ['--ros-args']
    for key, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ['-p', f'{key}:={text}']
    return args


_MIDDLEWARE_SHM = '/dev/shm/fastdds_'


def _mapped_file(maps_line: str) -> str:
    parts = maps_line.split(maxsplit=5)
    return parts[5].strip() if len(parts) > 5 else ''


def sample(pid: int) -> dict:
    """Open fds, mapping lines and RSS (KiB) of one process; empty when it is gone."""
    try:
        fds = len(os.listdir(f'/proc/{pid}/fd'))
        with open(f'/proc/{pid}/maps') as maps:
            # The mapped file of each line (the sixth field), '' for anonymous memory.
            names = Counter(_mapped_file(line) for line in maps)
        with open(f'/proc/{pid}/status') as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith('VmRSS:'))
    except (OSError, StopIteration):
        return {}
    # Bounded: mappings the process made, less anonymous memory (thread stacks and glibc's
    # per-thread arenas; the RSS bound covers memory) and Fast DDS's own shared-memory
    # transport, which maps every peer participant's segment and keeps a departed one's mapped
    # (seen: +3 of those and +6 anonymous in a consumer that lived through 2 producer restarts,
    # while none of ours grew). Our segments are counted, and checked by name below.
    bounded = sum(count for name, count in names.items()
                  if name and not name.startswith(_MIDDLEWARE_SHM))
    return {'fds': fds, 'maps': bounded, 'rss_kib': rss, 'names': names}


class Peer:
    """One node process, its output in a file, and its samples."""

    def __init__(self, role: str, index: int, exe: str, params: dict, env: dict):
        self.label = f'{role}#{index}'
        self.log = tempfile.TemporaryFile(mode='w+')
        self.popen = subprocess.Popen([exe] + ros_args(params), env=env, stdout=self.log,
                                      stderr=subprocess.STDOUT)
        self.samples = []

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def count(self, text: str) -> int:
        counts = _COUNT.findall(text)
        return int(counts[-1]) if counts else 0

    def take_sample(self) -> None:
        if self.popen.poll() is not None:
            return
        text = self.output()
        if _FINISHING.search(text):
            # Tearing down (unpinning, destroying the participant) is not steady state: on the
            # H100 a sample taken then once showed RSS 55 MB above every sample before it.
            return
        found = sample(self.popen.pid)
        if found:
            gpu = _GPU.findall(text)
            found.update(frames=self.count(text), gpu=gpu[-1] if gpu else '')
            self.samples.append(found)

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
        try:
            return self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()

    def summary(self) -> dict:
        lines = _SUMMARY.findall(self.output())
        return {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', lines[-1])} if lines else {}


def wait_for_start(peer: Peer) -> None:
    """Wait until a node logged its start-up line (its endpoints exist), or fail."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while 'rmw=' not in peer.output():
        if peer.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f'{peer.label} did not start:\n{peer.output()}')
        time.sleep(0.05)


def growth(peer: Peer, warmup: int) -> dict:
    """Compare the first sample at or after `warmup` frames with the last one."""
    if not peer.samples:
        return {}
    # A short-lived process warms up for a fifth of its frames at most.
    warmup = min(warmup, peer.samples[-1]['frames'] // 5)
    warm = [s for s in peer.samples if s['frames'] >= max(warmup, 1)]
    if not warm:
        return {}
    first, last = warm[0], peer.samples[-1]
    result = {key: (first[key], last[key]) for key in ('fds', 'maps', 'rss_kib', 'frames')}
    result['gpu'] = (first['gpu'], last['gpu'])
    result['new_maps'] = last['names'] - first['names']
    return result


def our_segments(prefix: str) -> list:
    return sorted(name for name in os.listdir(SHM_DIR) if name.startswith(prefix))


def run(opts) -> int:
    exe = opts.bin or installed_bin()
    env = dict(os.environ, PYTHONUNBUFFERED='1', ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               ROS_DOMAIN_ID=str(random.SystemRandom().randrange(100, 200)))
    prefix = f'jsr_soak_{os.getpid()}'
    segment = '/' + prefix
    shm_before = our_segments(prefix)
    # A topic of its own too: other ROS graphs on this host may draw the same domain id.
    topic = f'{prefix}/descriptors'
    consumer_params = {'topic': topic, 'backend': opts.backend, 'mode': opts.mode,
                       'status_period_s': 0.5, 'queue_depth': 16}
    # Both consumers subscribed before a frame goes out (a producer can finish before a busy
    # consumer discovered it). A restarted consumer registers with its first frame, so the
    # producer waits up to release_timeout_s for it once per restart, then goes on (logged).
    producer_params = {'topic': topic, 'shm_name': segment, 'shape': opts.shape,
                       'dtype': opts.dtype, 'rate_hz': opts.rate_hz, 'slots': 4,
                       'policy': 'reliable', 'wait_for_consumers': 2, 'release_timeout_s': 1.0,
                       'backend': opts.backend, 'mode': opts.mode, 'status_period_s': 0.5}
    started = time.monotonic()
    steady = Peer('steady-consumer', 0, os.path.join(exe, 'consumer'), consumer_params, env)
    peers, producers, restarting = [steady], [], []
    published, most_segments, failures = 0, 0, []

    def start_restarting():
        peer = Peer('restarting-consumer', len(restarting), os.path.join(exe, 'consumer'),
                    dict(consumer_params, frames=opts.consumer_restart), env)
        restarting.append(peer)
        peers.append(peer)

    try:
        wait_for_start(steady)
        start_restarting()
        wait_for_start(restarting[-1])
        while published < opts.frames:
            frames = min(opts.producer_restart, opts.frames - published)
            producer = Peer('producer', len(producers), os.path.join(exe, 'producer'),
                            dict(producer_params, frames=frames), env)
            producers.append(producer)
            peers.append(producer)
            while producer.popen.poll() is None:
                if time.monotonic() - started > opts.timeout_s:
                    raise TimeoutError(f'soak did not finish within {opts.timeout_s} s')
                if restarting[-1].popen.poll() is not None:
                    start_restarting()
                for peer in peers:
                    peer.take_sample()
                most_segments = max(most_segments, len(our_segments(prefix)))
                time.sleep(SAMPLE_PERIOD_S)
            if producer.popen.returncode != 0:
                failures.append(f'{producer.label} exited with {producer.popen.returncode}')
            done = producer.count(producer.output())
            published += done
            print(f'soak: {producer.label} published {done} (total {published}) at '
                  f'{time.monotonic() - started:.0f} s', flush=True)
            if done == 0:
                failures.append(f'{producer.label} published nothing')
                break
        steady.take_sample()  # the long-lived consumer after the last producer left
    except (RuntimeError, TimeoutError) as error:
        failures.append(str(error))
    finally:
        # A consumer restarted just before the end gets to start before it is stopped: a
        # signal while Python still imports rclpy ends it with a KeyboardInterrupt and no
        # summary (doc/lifecycle.md, Known limits), which is not what a soak measures.
        for peer in restarting:
            if peer.popen.poll() is None and 'rmw=' not in peer.output():
                try:
                    wait_for_start(peer)
                except RuntimeError as error:
                    failures.append(str(error))
        codes = {peer.label: peer.stop() for peer in reversed(peers)}
    elapsed = time.monotonic() - started
    return report(opts, peers, steady, restarting, codes, published, elapsed, prefix,
                  shm_before, our_segments(prefix), most_segments, failures)


def report(opts, peers, steady, restarting, codes, published, elapsed, prefix, shm_before,
           shm_after, most_segments, failures) -> int:
    print(f'soak: {published} frames published in {elapsed:.0f} s '
          f'({published / max(elapsed, 1e-9):.0f}/s), {len(restarting)} consumer and '
          f'{len([p for p in peers if p.label.startswith("producer")])} producer runs')
    bounds = {'fds': opts.fd_bound, 'maps': opts.maps_bound, 'rss_kib': opts.rss_bound_mib * 1024}
    for peer in peers:
        result = growth(peer, opts.warmup)
        if not result:
            print(f'  {peer.label}: not sampled while streaming (too short-lived)')
            if peer is steady:
                failures.append(f'{peer.label}: never sampled')
            continue
        line = ' '.join(f'{key}={result[key][0]}->{result[key][1]}'
                        for key in ('fds', 'maps', 'rss_kib', 'frames'))
        if result['gpu'][0]:
            line += f' gpu={result["gpu"][0]}->{result["gpu"][1]}'
            if result['gpu'][0] != result['gpu'][1]:
                failures.append(f'{peer.label}: GPU resources changed {result["gpu"]}')
        print(f'  {peer.label}: {line} exit={codes[peer.label]} {peer.summary() or ""}')
        if result['new_maps']:
            print(f'    new mappings: {dict(result["new_maps"].most_common(4))}')
        for key, bound in bounds.items():
            first, last = result[key]
            if last - first > bound:
                failures.append(f'{peer.label}: {key} grew {first} -> {last} (bound +{bound}); '
                                'every sample (frames:value): ' + ' '.join(
                                    f'{s["frames"]}:{s[key]}' for s in peer.samples))
    consumers = [steady] + restarting
    for peer in consumers:
        counts = peer.summary()
        if not counts or counts['invalid'] or \
                counts['verified'] + counts['dropped'] != counts['received']:
            failures.append(f'{peer.label}: bad summary {counts}')
    # Remapping must drop the old segment: the long-lived consumer maps at most one of ours.
    held = sum(count for name, count in steady.samples[-1]['names'].items()
               if name.startswith(SHM_DIR + '/' + prefix)) if steady.samples else 0
    print(f'  steady consumer maps {held} of our segments at the end')
    if held > 1:
        failures.append(f'steady consumer still maps {held} of our segments')
    # The long-lived consumer followed every producer: it mapped each new segment.
    runs = len([p for p in peers if p.label.startswith('producer')])
    remaps = steady.output().count('mapped /' + prefix)
    if remaps < runs:
        failures.append(f'steady consumer mapped {remaps} of {runs} producer segments')
    print(f'  /dev/shm: {len(shm_before)} of our segments before, at most {most_segments} '
          f'during, {len(shm_after)} after')
    if shm_after or most_segments > 1:
        failures.append(f'/dev/shm: {shm_after} left, at most {most_segments} at once')
    if published < opts.frames:
        failures.append(f'only {published} of {opts.frames} frames published')
    for failure in failures:
        print('soak: FAILED: ' + failure)
    if failures:
        print('soak: the long-lived consumer said:\n' + steady.output()[-3000:])
    print('soak: OK' if not failures else 'soak: FAILED')
    return 0 if not failures else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=100_000)
    parser.add_argument('--consumer-restart', type=int, default=10_000)
    parser.add_argument('--producer-restart', type=int, default=25_000)
    parser.add_argument('--warmup', type=int, default=2_000,
                        help='frames a process handles before its first compared sample')
    parser.add_argument('--shape', default='[64,64]')
    parser.add_argument('--dtype', default='uint8')
    parser.add_argument('--rate-hz', type=float, default=2000.0)
    parser.add_argument('--backend', default='cpu')
    parser.add_argument('--mode', default='zero_copy')
    parser.add_argument('--bin', default='', help='folder with the producer and consumer '
                        'executables (default: the installed jetson_shm_ros)')
    parser.add_argument('--fd-bound', type=int, default=2)
    parser.add_argument('--maps-bound', type=int, default=8)
    parser.add_argument('--rss-bound-mib', type=float, default=16.0)
    parser.add_argument('--timeout-s', type=float, default=3600.0)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
