"""
python -m bench.record: shm_recorder and shm_player against the disk (issue 17).

Two measurements, each with the installed node executables as separate processes:

1. throughput: a reliable producer of 4 MiB frames as fast as it can, shm_recorder writing
   them into a bag; its rate (bytes on disk / time from the first frame to the bag closed and
   fsync'd) against the disk's own sequential write rate measured in the same run (the same
   number of bytes written in 4 MiB blocks and fsync'd, before and after; the better of the
   two is the ceiling). Target: at least 80 %.
2. streams: a 1920x1080 rgb8 and a 640x480 16UC1 producer at 30 Hz each (latest policy: the
   recorder cannot slow them) for `--seconds`, recorded; frames lost = published - in the bag
   (target 0). Then the bag is replayed by shm_player at the recorded rate into two consumer
   processes: replay rate, the latest frame, and frames the consumers verified.

Results go to bench/results/local/record-<machine>-<date>.json and .md (git-ignored, like
`python -m bench`'s; `--out bench/results` for a run to commit). The load average is recorded
before and after: the build machine is shared.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FRAME_BYTES = 4 * 2**20
PACKAGE = 'jetson_shm_ros'
TARGET_SHARE = 0.8
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'local')
_SUMMARY = re.compile(r'summary: (.*)')


def _executable(name: str) -> str:
    from ament_index_python.packages import get_package_prefix
    return os.path.join(get_package_prefix(PACKAGE), 'lib', PACKAGE, name)


def _args(params: dict) -> list:
    args = ['--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple)):
            value = '[' + ','.join(str(item) for item in value) + ']'
        args += ['-p', f'{key}:={value}']
    return args


class Node:
    """One node executable, its output in a file."""

    def __init__(self, name: str, params: dict, env: dict, log_dir: str, label: str):
        self.label = label
        self.log_path = os.path.join(log_dir, label + '.log')
        self._log = open(self.log_path, 'w')
        self.popen = subprocess.Popen([_executable(name)] + _args(params), env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        with open(self.log_path) as stream:
            return stream.read()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output()):
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f'{self.label}: no {pattern!r}:\n{self.output()[-3000:]}')

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        finally:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait()
            self._log.close()

    def summary(self) -> dict:
        lines = _SUMMARY.findall(self.output())
        if not lines:
            raise RuntimeError(f'{self.label}: no summary line:\n{self.output()[-3000:]}')
        return {key: float(value) if '.' in value else int(value)
                for key, value in re.findall(r'(\w+)=([\d.]+)\b', lines[-1])}


def disk_ceiling(directory: str, total: int) -> float:
    """Write `total` bytes in 4 MiB blocks and fsync; return MB/s (10**6 B/s)."""
    block = os.urandom(FRAME_BYTES)
    path = os.path.join(directory, 'ceiling.bin')
    started = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        written = 0
        while written < total:
            written += os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.monotonic() - started
    os.unlink(path)
    return written / elapsed / 1e6


def _env() -> dict:
    import random
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randrange(100, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    return env


def throughput(directory: str, frames: int) -> dict:
    """Record `frames` 4 MiB frames from a reliable producer; compare with the disk ceiling."""
    total = frames * FRAME_BYTES
    before = disk_ceiling(directory, total)
    env = _env()
    bag = os.path.join(directory, 'throughput')
    recorder = Node('shm_recorder', {'topics': ['bench/frames'], 'output': bag,
                                     'max_frames': frames, 'status_period_s': 5.0},
                    env, directory, 'throughput_recorder')
    recorder.wait_for('recording')
    producer = Node('producer', {
        'topic': 'bench/frames', 'shape': [1024, 1024, 4], 'frames': frames,
        'rate_hz': 10000.0, 'policy': 'reliable', 'wait_for_consumers': 1,
        'release_timeout_s': 60.0, 'shm_name': f'/jetson_shm_ros.bench_record_{os.getpid()}'},
        env, directory, 'throughput_producer')
    recorder_rc = recorder.wait(600)
    producer.wait(120)
    summary = recorder.summary()
    shutil.rmtree(bag)
    after = disk_ceiling(directory, total)
    ceiling = max(before, after)
    return {'frames': frames, 'frame_bytes': FRAME_BYTES, 'recorder_exit': recorder_rc,
            'on_disk': summary['on_disk'], 'recorder_mb_s': summary['write_mb_s'],
            'recorder_elapsed_s': summary['elapsed_s'], 'disk_mb_s_before': round(before, 1),
            'disk_mb_s_after': round(after, 1), 'disk_mb_s': round(ceiling, 1),
            'share': round(summary['write_mb_s'] / ceiling, 3),
            'met': summary['write_mb_s'] >= TARGET_SHARE * ceiling and
            summary['on_disk'] == frames}


STREAMS = {
    'camera/rgb': {'shape': [1080, 1920, 3], 'dtype': 'uint8', 'encoding': 'rgb8'},
    'camera/depth': {'shape': [480, 640], 'dtype': 'uint16', 'encoding': '16UC1'},
}


def streams(directory: str, seconds: float, slots: int = 4) -> dict:
    """Record both 30 Hz streams for `seconds`, then replay the bag into two consumers."""
    frames = int(round(seconds * 30))
    env = _env()
    bag = os.path.join(directory, 'streams')
    recorder = Node('shm_recorder', {'topics': list(STREAMS), 'output': bag,
                                     'status_period_s': 10.0}, env, directory,
                    'streams_recorder')
    recorder.wait_for('recording')
    producers = {}
    for index, (topic, stream) in enumerate(STREAMS.items()):
        producers[topic] = Node('producer', {
            'topic': topic, 'frames': frames, 'rate_hz': 30.0, 'policy': 'latest', 'slots': slots,
            'wait_for_consumers': 1, 'shm_name': f'/jetson_shm_ros.bench_{os.getpid()}_{index}',
            **stream}, env, directory, 'streams_producer_' + str(index))
    published = {}
    for topic, producer in producers.items():
        producer.wait(seconds + 120)
        published[topic] = int(re.findall(r'published=(\d+)', producer.output())[-1])
    recorder.popen.send_signal(signal.SIGINT)
    recorder.wait(120)
    summary = recorder.summary()
    in_bag = _bag_counts(bag)
    lost = {topic: published[topic] - in_bag.get('/' + topic, 0) for topic in STREAMS}
    result = {'seconds': seconds, 'rate_hz': 30.0, 'slots': slots, 'published': published,
              'in_bag': in_bag, 'lost': lost, 'recorder': summary,
              'met': all(value == 0 for value in lost.values())}
    result['replay'] = replay(directory, bag, published, env)
    shutil.rmtree(bag)
    return result


def _bag_info(bag: str) -> dict:
    import yaml
    with open(os.path.join(bag, 'metadata.yaml')) as stream:
        return yaml.safe_load(stream)['rosbag2_bagfile_information']


def _bag_counts(bag: str) -> dict:
    return {entry['topic_metadata']['name']: entry['message_count']
            for entry in _bag_info(bag)['topics_with_message_count']}


def replay(directory: str, bag: str, published: dict, env: dict) -> dict:
    """Replay at the recorded rate into one consumer per topic; report rate and lateness."""
    consumers = {topic: Node('consumer', {'topic': topic, 'idle_timeout_s': 5.0,
                                          'status_period_s': 10.0},
                             env, directory, 'replay_consumer_' + str(index))
                 for index, topic in enumerate(STREAMS)}
    for consumer in consumers.values():
        consumer.wait_for('shm subscription')
    player = Node('shm_player', {'bag': bag, 'wait_for_consumers': 1, 'status_period_s': 10.0},
                  env, directory, 'replay_player')
    player_rc = player.wait(600)
    summary = player.summary()
    received = {}
    for topic, consumer in consumers.items():
        consumer.wait(60)
        received[topic] = consumer.summary()
    frames = summary['published']
    rate = frames / summary['elapsed_s'] if summary.get('elapsed_s') else 0.0
    info = _bag_info(bag)
    # The first and last frame's spacing in the bag, as the player's elapsed_s measures it.
    recorded_rate = info['message_count'] / (info['duration']['nanoseconds'] / 1e9)
    return {'player_exit': player_rc, 'published': frames,
            'elapsed_s': summary.get('elapsed_s'), 'frames_per_s': round(rate, 2),
            'recorded_frames_per_s': round(recorded_rate, 2),
            'late_max_ms': summary.get('late_max_ms'),
            'consumers': {topic: {key: counts.get(key) for key in
                                  ('received', 'verified', 'dropped', 'invalid')}
                          for topic, counts in received.items()},
            'met': rate >= 0.98 * recorded_rate and
            all(counts.get('dropped') == 0 for counts in received.values())}


def machine() -> str:
    """Return e.g. cpu-2core-x86-64."""
    return f'cpu-{os.cpu_count()}core-{platform.machine().replace("_", "-")}'


def report(result: dict) -> str:
    """Return the Markdown summary of a result."""
    t, s = result['throughput'], result['streams']
    r = s['replay']
    return '\n'.join([
        f'# shm_recorder / shm_player on {result["machine"]} ({result["date"]})', '',
        f'Load average before / after: {result["load_before"]} / {result["load_after"]}; '
        f'disk: {result["disk"]}.', '',
        '| measurement | result | target | met |', '|---|---|---|---|',
        f'| record {t["frames"]} x 4 MiB frames | {t["recorder_mb_s"]} MB/s '
        f'({t["share"]:.0%} of the disk\'s {t["disk_mb_s"]} MB/s fsync\'d sequential write; '
        f'{t["on_disk"]}/{t["frames"]} on disk) | >= 80 % | {"yes" if t["met"] else "NO"} |',
        f'| record 1920x1080 rgb8 + 640x480 16UC1 at 30 Hz for {s["seconds"]:.0f} s '
        f'(producers: latest policy, {s["slots"]} slots) | lost '
        f'{s["lost"]} of {s["published"]} | 0 lost | {"yes" if s["met"] else "NO"} |',
        f'| replay of that bag at rate 1 | {r["frames_per_s"]} frames/s (recorded '
        f'{r["recorded_frames_per_s"]}), latest frame {r["late_max_ms"]} ms late, consumers '
        f'{r["consumers"]} | recorded rate, 0 dropped | {"yes" if r["met"] else "NO"} |',
        ''])


def main(argv=None) -> int:
    """Run both measurements and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=400,
                        help='4 MiB frames of the throughput measurement (default 400)')
    parser.add_argument('--seconds', type=float, default=60.0,
                        help='length of the 30 Hz stream recording (default 60)')
    parser.add_argument('--slots', type=int, default=4,
                        help="slots of the stream producers (default 4, the producer's default)")
    parser.add_argument('--dir', default=None, help='where the bags go (default: a temporary '
                        'directory under build/ of this checkout: the disk of the workspace)')
    parser.add_argument('--mode', default='quick', help='ignored: accepted from make bench')
    parser.add_argument('--out', default=RESULTS, help='results directory')
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = args.dir or os.path.join(root, 'build')
    os.makedirs(base, exist_ok=True)
    directory = tempfile.mkdtemp(prefix='bench_record_', dir=base)
    try:
        result = {'machine': machine(), 'date': datetime.date.today().isoformat(),
                  'python': platform.python_version(), 'disk': _disk(directory),
                  'load_before': [round(x, 2) for x in os.getloadavg()]}
        print(f'bench.record: throughput ({args.frames} x 4 MiB) in {directory}', flush=True)
        result['throughput'] = throughput(directory, args.frames)
        print(json.dumps(result['throughput']), flush=True)
        print(f'bench.record: streams for {args.seconds} s, then replay', flush=True)
        result['streams'] = streams(directory, args.seconds, args.slots)
        print(json.dumps(result['streams']), flush=True)
        result['load_after'] = [round(x, 2) for x in os.getloadavg()]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    name = f'record-{result["machine"]}-{result["date"]}'
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name + '.json'), 'w') as stream:
        json.dump(result, stream, indent=2)
    text = report(result)
    with open(os.path.join(args.out, name + '.md'), 'w') as stream:
        stream.write(text)
    print(text)
    return 0 if result['throughput']['met'] and result['streams']['met'] else 1


def _disk(directory: str) -> str:
    found = subprocess.run(['df', '--output=source,fstype', directory], capture_output=True,
                           text=True).stdout.split('\n')
    return ' '.join(found[1].split()) if len(found) > 1 else 'unknown'


if __name__ == '__main__':
    sys.exit(main())
