"""shm_recorder and shm_player as processes: round trip, signals, full disk, restarts, damage."""

import os
import shutil
import signal
import subprocess
import uuid

from api_fixtures import spin_until
from conftest import damage_file
from jetson_shm_ros.core.payload import fill_pattern, pattern_words
from jetson_shm_ros.ros.subscription import ShmSubscription
from node_processes import executable, isolated_env, NodeProcess, ros_args
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor

rosbags_rosbag2 = pytest.importorskip('rosbags.rosbag2', reason='rosbags is a test dependency '
                                      '(requirements/record.txt)')
rosbags_typesys = pytest.importorskip('rosbags.typesys')

RUN_TIMEOUT_S = 120.0
FRAMES = 12


def _pattern(shape, dtype, frame: int) -> bytes:
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = np.empty(nbytes, np.uint8)
    fill_pattern(buf, frame, pattern_words(nbytes // 4))
    return buf.tobytes()


def _bag_frames(path):
    """{topic: [payload bytes, ...]} and {topic: type} read by rosbags (an independent reader)."""
    typestore = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)
    frames, types = {}, {}
    with rosbags_rosbag2.Reader(str(path)) as reader:
        for connection, _, raw in reader.messages():
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            frames.setdefault(connection.topic, []).append(np.asarray(msg.data).tobytes())
            types[connection.topic] = connection.msgtype
    return frames, types


def _node(processes, name, params, env, prefix=()):
    return processes.start(NodeProcess(name, params, env, prefix))


def _segment() -> str:
    return f'/jsr_test_{os.getpid()}_{uuid.uuid4().hex[:10]}'


def test_round_trip_producer_recorder_bag_player_consumer_is_byte_equal(
        processes, tmp_path):
    env = isolated_env()
    bag = tmp_path / 'bag'
    recorder = _node(processes, 'shm_recorder', {
        'topics': ['cam', 'tensor'], 'output': str(bag), 'max_frames': 2 * FRAMES,
        'status_period_s': 1.0}, env)
    recorder.wait_for('recording /cam,/tensor')
    shapes = {'/cam': ([48, 64, 3], 'uint8'), '/tensor': ([5, 7], 'float32')}
    _node(processes, 'producer', {
        'topic': 'cam', 'shape': [48, 64, 3], 'encoding': 'rgb8', 'frames': FRAMES,
        'rate_hz': 30.0, 'policy': 'reliable', 'wait_for_consumers': 1, 'frame_id': 'camera',
        'shm_name': _segment()},
        env)
    _node(processes, 'producer', {
        'topic': 'tensor', 'shape': [5, 7], 'dtype': 'float32', 'frames': FRAMES,
        'rate_hz': 30.0, 'policy': 'reliable', 'wait_for_consumers': 1,
        'shm_name': _segment()}, env)
    assert recorder.finish(RUN_TIMEOUT_S) == 0, recorder.output()
    assert f'on_disk={2 * FRAMES} ' in recorder.output(), recorder.output()

    recorded, types = _bag_frames(bag)
    assert types == {'/cam': 'sensor_msgs/msg/Image',
                     '/tensor': 'std_msgs/msg/Float32MultiArray'}
    for topic, (shape, dtype) in shapes.items():
        assert recorded[topic] == [_pattern(shape, dtype, k) for k in range(FRAMES)], topic

    # Replay into this process's subscriptions (reliable: the player waits for us).
    replay_context = rclpy.Context()
    rclpy.init(context=replay_context, domain_id=int(env['ROS_DOMAIN_ID']))
    received = {'/replay/cam': [], '/replay/tensor': []}
    infos = []
    node = rclpy.create_node('replay_consumer', context=replay_context)
    executor = SingleThreadedExecutor(context=replay_context)
    executor.add_node(node)
    subscriptions = []
    try:
        for topic in received:
            subscriptions.append(ShmSubscription(
                node, topic, lambda frame, info, topic=topic: (
                    received[topic].append(frame.tobytes()), infos.append(info)),
                backend='cpu'))
        player = _node(processes, 'shm_player', {
            'bag': str(bag), 'topic_prefix': '/replay', 'policy': 'reliable',
            'wait_for_consumers': 1, 'rate': 0.0, 'release_timeout_s': 10.0}, env)
        assert spin_until(executor, lambda: sum(map(len, received.values())) >= 2 * FRAMES,
                          timeout=RUN_TIMEOUT_S), player.output()
        assert player.finish(RUN_TIMEOUT_S) == 0, player.output()
    finally:
        for subscription in subscriptions:
            subscription.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=replay_context)
    assert received['/replay/cam'] == recorded['/cam']
    assert received['/replay/tensor'] == recorded['/tensor']
    cams = [info for info in infos if info.encoding]
    assert {info.encoding for info in cams} == {'rgb8'}
    assert {info.frame_id for info in cams} == {'camera'}
    assert all(info.verified for info in infos)
    assert {(info.dtype, info.shape) for info in infos if not info.encoding} == \
        {('<f4', (5, 7))}


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_record_leaves_a_bag_with_every_frame_recorded(
        processes, tmp_path, signum):
    env = isolated_env()
    bag = tmp_path / 'bag'
    recorder = _node(processes, 'shm_recorder', {
        'topics': ['cam'], 'output': str(bag), 'status_period_s': 0.2}, env)
    recorder.wait_for('recording /cam')
    _node(processes, 'producer', {'topic': 'cam', 'shape': [32, 32, 3], 'encoding': 'rgb8',
                                  'frames': 0, 'rate_hz': 30.0}, env)
    recorder.wait_for(r'status: frames=\d+ recorded=(?:[1-9]\d)')
    assert recorder.interrupt(signum) == 0, recorder.output()
    summary = recorder.wait_for(r'summary: frames=\d+ recorded=(\d+) on_disk=(\d+)')
    assert summary.group(1) == summary.group(2), summary.group(0)
    recorded, _ = _bag_frames(bag)
    assert len(recorded['/cam']) == int(summary.group(2)) >= 10
    # Every frame is a whole test-pattern frame (latest policy: the numbers may skip).
    patterns = {_pattern([32, 32, 3], 'uint8', k): k for k in range(2000)}
    assert all(frame in patterns for frame in recorded['/cam'])


def _in_small_tmpfs(size: str, command: str) -> list:
    return ['unshare', '-m', 'sh', '-c',
            f'mount -t tmpfs -o size={size} tmpfs "$JSR_TMPFS" && {command}']


def _tmpfs_works(tmp_path) -> bool:
    probe = tmp_path / 'probe'
    probe.mkdir()
    result = subprocess.run(['unshare', '-m', 'sh', '-c',
                             f'mount -t tmpfs -o size=1m tmpfs {probe}'],
                            capture_output=True)
    return result.returncode == 0


def test_a_full_disk_gives_one_line_and_a_readable_bag(processes, tmp_path):
    if shutil.which('unshare') is None or not _tmpfs_works(tmp_path):
        pytest.skip('needs `unshare -m` and a tmpfs mount (root or user namespaces)')
    mount = tmp_path / 'small'
    mount.mkdir()
    copy = tmp_path / 'copy'
    env = isolated_env(JSR_TMPFS=str(mount))
    # The recorder writes into a 2 MiB tmpfs of its own mount namespace; when it exits, the
    # bag is copied out of it (the tmpfs goes with the namespace).
    params = ros_args({'topics': ['cam'], 'output': str(mount / 'bag'),
                       'chunk_bytes': 2**18, 'status_period_s': 0.5})
    command = f'{executable("shm_recorder")} {" ".join(params)}; rc=$?; ' \
              f'cp -r {mount / "bag"} {copy}; exit $rc'
    log = tmp_path / 'recorder.log'
    with open(log, 'w') as out:
        recorder = subprocess.Popen(_in_small_tmpfs('2m', command), env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            _node(processes, 'producer', {'topic': 'cam', 'shape': [128, 128, 3],
                                          'encoding': 'rgb8', 'frames': 0, 'rate_hz': 60.0},
                  env)
            rc = recorder.wait(RUN_TIMEOUT_S)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
    output = log.read_text()
    assert rc == 1, output
    errors = [line for line in output.splitlines() if '[ERROR]' in line or 'Traceback' in line]
    assert len(errors) == 1 and 'No space left on device' in errors[0], output
    assert 'Traceback' not in output
    kept = int(errors[0].split('the bag keeps the ')[1].split(' ')[0])
    assert kept > 0, errors[0]
    recorded, _ = _bag_frames(copy)
    assert len(recorded['/cam']) == kept
    patterns = {_pattern([128, 128, 3], 'uint8', k) for k in range(1000)}
    assert all(frame in patterns for frame in recorded['/cam'])


def test_an_unwritable_output_is_one_fatal_line(processes, tmp_path):
    (tmp_path / 'file').write_text('x')
    recorder = _node(processes, 'shm_recorder', {'output': str(tmp_path / 'file' / 'bag')},
                     isolated_env())
    assert recorder.finish(RUN_TIMEOUT_S) == 2
    lines = [line for line in recorder.output().splitlines() if line.strip()]
    fatal = [line for line in lines if 'FATAL' in line]
    assert len(fatal) == 1 and 'Not a directory' in fatal[0], recorder.output()
    assert 'Traceback' not in recorder.output()


def test_a_restarted_producer_goes_on_being_recorded(processes, tmp_path):
    env = isolated_env()
    bag = tmp_path / 'bag'
    recorder = _node(processes, 'shm_recorder', {
        'topics': ['cam'], 'output': str(bag), 'max_frames': 2 * FRAMES}, env)
    recorder.wait_for('recording /cam')
    params = {'topic': 'cam', 'shape': [16, 16], 'encoding': 'mono8', 'frames': FRAMES,
              'rate_hz': 30.0, 'policy': 'reliable', 'wait_for_consumers': 1}
    first = _node(processes, 'producer', params, env)
    assert first.finish(RUN_TIMEOUT_S) == 0, first.output()
    second = _node(processes, 'producer', params, env)  # same segment name: a new incarnation
    assert second.finish(RUN_TIMEOUT_S) == 0, second.output()
    assert recorder.finish(RUN_TIMEOUT_S) == 0, recorder.output()
    recorded, _ = _bag_frames(bag)
    one_run = [_pattern([16, 16], 'uint8', k) for k in range(FRAMES)]
    assert recorded['/cam'] == one_run + one_run


@pytest.mark.parametrize('damage', ['truncate', 'corrupt'])
def test_the_player_stops_on_a_damaged_bag_with_one_line(processes, tmp_path, damage):
    env = isolated_env()
    bag = tmp_path / 'bag'
    from jetson_shm_ros.record.bag_writer import BagWriter
    from jetson_shm_ros.record.messages import encode
    writer = BagWriter(str(bag), chunk_bytes=5000, chunk_crc=True)
    kind, data = encode(np.zeros((64, 64), np.uint8), 0, '', 'mono8')
    for index in range(8):
        writer.write('/cam', kind, 10**18 + index * 10**6, data)
    writer.close()
    mcap = bag / 'bag_0.mcap'
    damage_file(mcap, damage)
    player = _node(processes, 'shm_player', {'bag': str(bag), 'rate': 0.0}, env)
    assert player.finish(RUN_TIMEOUT_S) == 1, player.output()
    errors = [line for line in player.output().splitlines() if '[ERROR]' in line]
    assert len(errors) == 1 and 'truncated or corrupted' in errors[0], player.output()
    assert 'Traceback' not in player.output()
