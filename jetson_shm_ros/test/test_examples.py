"""The README's examples run as written: two user nodes, separate processes, both signals."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid

from conftest import project_segments
from node_processes import default_signals, isolated_env
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, '..', 'examples')
README = os.path.join(HERE, '..', '..', 'README.md')
DEADLINE_S = 60.0


def _start(name: str, env: dict, log, namespace: str):
    # A namespace of its own (rclpy.init() reads --ros-args from sys.argv): another run of the
    # examples on this host (another test session) uses other topics and another segment.
    return subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name), '--ros-args', '-r',
                             f'__ns:=/{namespace}'], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_signals)


def test_the_readme_shows_the_examples_verbatim():
    """The README shows each example's node class as it is, and describes their main()."""
    with open(README, encoding='utf-8') as readme:
        text = readme.read()
    for name in ('camera_publisher.py', 'frame_subscriber.py'):
        with open(os.path.join(EXAMPLES, name), encoding='utf-8') as example:
            source = example.read()
        node_class = source[source.index('\nclass ') + 1:source.index('\n\n\ndef main')]
        assert node_class + '\n```' in text, \
            f'README.md does not show the class of examples/{name} as it is'
        main = source[source.index('\ndef main'):]
        for call in ('rclpy.init()', 'make_executor()', 'executor.spin_once(timeout_sec=1.0)',
                     'node.destroy_node()', 'rclpy.try_shutdown()'):
            assert call in main and f'`{call}`' in text, f'{name}: main() and README: {call}'


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_the_examples_exchange_frames_and_clean_up(tmp_path, signum):
    env = isolated_env()
    namespace = f'jsr_test_{uuid.uuid4().hex[:10]}'
    segment = f'jetson_shm_ros.{namespace}.camera_publisher'
    before = set(os.listdir('/dev/shm'))
    with open(tmp_path / 'pub.log', 'w') as pub_log, open(tmp_path / 'sub.log', 'w') as sub_log:
        subscriber = _start('frame_subscriber.py', env, sub_log, namespace)
        publisher = _start('camera_publisher.py', env, pub_log, namespace)
        try:
            deadline = time.monotonic() + DEADLINE_S
            lines = []
            while len(lines) < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
                lines = re.findall(r'rgb8 \(480, 640, 3\) seq=(\d+) value=(\d+) frame_id=camera',
                                   (tmp_path / 'sub.log').read_text())
            assert len(lines) >= 5, (tmp_path / 'sub.log').read_text()
            sequences = [int(sequence) for sequence, _ in lines]
            assert sequences == sorted(sequences)
            segments = set(os.listdir('/dev/shm')) - before
            assert any(name.startswith(segment) for name in segments), \
                (tmp_path / 'pub.log').read_text()
            for process in (publisher, subscriber):
                process.send_signal(signum)
            assert publisher.wait(30) == 0, (tmp_path / 'pub.log').read_text()
            assert subscriber.wait(30) == 0, (tmp_path / 'sub.log').read_text()
        finally:
            for process in (publisher, subscriber):
                if process.poll() is None:
                    process.kill()
                    process.wait()
    assert not project_segments(segment), 'segment left behind'
    assert 'Traceback' not in (tmp_path / 'pub.log').read_text()
