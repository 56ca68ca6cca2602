"""Bags without ROS: the frame messages, BagWriter and BagReader, read back independently."""

import os

from conftest import damage_file
from jetson_shm_ros.core.errors import BagError
from jetson_shm_ros.core.payload import ALLOWED_DTYPES
from jetson_shm_ros.record.bag_reader import BagReader
from jetson_shm_ros.record.bag_writer import BagWriter
from jetson_shm_ros.record.messages import decode, encode
from jetson_shm_ros.record.replay import Replay
import numpy as np
import pytest

rosbags_rosbag2 = pytest.importorskip('rosbags.rosbag2', reason='rosbags is a test dependency '
                                      '(requirements/record.txt)')
rosbags_typesys = pytest.importorskip('rosbags.typesys')
mcap_ros2_reader = pytest.importorskip('mcap_ros2.reader', reason='mcap-ros2-support is a test '
                                       'dependency (requirements/record.txt)')

T0 = 1_700_000_000_000_000_000


def _typestore():
    return rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_HUMBLE)


def _frames():
    """(topic, array, encoding) of every dtype as a tensor and a few image encodings."""
    out = []
    for dtype in sorted(ALLOWED_DTYPES):
        array = (np.arange(2 * 3 * 4) % 7).astype(dtype).reshape(2, 3, 4)
        out.append((f'/tensor_{dtype[1:]}', array, ''))
    out.append(('/rgb8', (np.arange(5 * 6 * 3) % 256).astype(np.uint8).reshape(5, 6, 3),
                'rgb8'))
    out.append(('/depth', np.arange(4 * 7, dtype='<u2').reshape(4, 7) * 300, '16UC1'))
    out.append(('/float', np.linspace(0, 1, 12, dtype='<f4').reshape(3, 4), '32FC1'))
    return out


def _write(path, frames, repeat=3, **kwargs):
    writer = BagWriter(path, **kwargs)
    time_ns = T0
    for index in range(repeat):
        for topic, array, encoding in frames:
            kind, data = encode(array + index if array.dtype != bool else array,
                                T0 + index, 'cam', encoding)
            assert writer.write(topic, kind, time_ns, data)
            time_ns += 1000
    writer.close()
    return writer


def test_every_frame_reads_back_equal_with_our_reader_rosbags_and_mcap_ros2(tmp_path):
    frames = _frames()
    path = str(tmp_path / 'bag')
    writer = _write(path, frames, compression='zstd', chunk_bytes=300, chunk_crc=True)
    assert writer.error is None
    assert writer.message_count == 3 * len(frames)
    want = {topic: (array, encoding) for topic, array, encoding in frames}
    seen = 0
    for message in BagReader(path).messages():
        array, encoding = want[message.topic]
        decoded = decode(message.kind, message.data)
        assert decoded.array.dtype == array.dtype and decoded.array.shape == array.shape
        assert decoded.encoding == encoding
        seen += 1
    assert seen == 3 * len(frames)

    typestore = _typestore()
    with rosbags_rosbag2.Reader(path) as reader:
        assert reader.message_count == 3 * len(frames)
        counts = {}
        for connection, _, raw in reader.messages():
            array, encoding = want[connection.topic]
            index = counts.get(connection.topic, 0)
            counts[connection.topic] = index + 1
            expected = array + index if array.dtype != bool else array
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            if encoding:
                assert msg.encoding == encoding and msg.header.frame_id == 'cam'
                assert (msg.height, msg.width) == array.shape[:2]
                assert msg.header.stamp.nanosec == T0 % 10**9 + index
                assert bytes(msg.data) == expected.tobytes(), connection.topic
            else:
                data = np.asarray(msg.data)
                assert data.tobytes() == expected.tobytes(), connection.topic
                assert [dim.size for dim in msg.layout.dim][:array.ndim] == list(array.shape)
        assert set(counts.values()) == {3}, counts

    decoded = 0
    for message in mcap_ros2_reader.read_ros2_messages(os.path.join(path, 'bag_0.mcap')):
        assert message.ros_msg is not None
        decoded += 1
    assert decoded == 3 * len(frames)


def test_split_bytes_makes_several_files_that_read_as_one_bag(tmp_path):
    path = str(tmp_path / 'split')
    frame = [('/big', np.zeros((64, 64, 3), np.uint8), 'rgb8')]
    writer = _write(path, frame, repeat=10, split_bytes=20_000, chunk_bytes=10_000)
    assert len(writer.files) >= 3, writer.files
    with rosbags_rosbag2.Reader(path) as reader:
        assert reader.message_count == 10
        assert len(list(reader.messages())) == 10
    assert len(list(BagReader(path).messages())) == 10


def test_max_bytes_stops_taking_messages(tmp_path):
    writer = BagWriter(str(tmp_path / 'limited'), max_bytes=50_000)
    kind, data = encode(np.zeros((100, 100), np.uint8), 0, '', 'mono8')
    taken = sum(writer.write('/m', kind, T0 + i, data) for i in range(20))
    writer.close()
    assert taken == 4 and writer.limit_reached and not writer.accepting
    with rosbags_rosbag2.Reader(str(tmp_path / 'limited')) as reader:
        assert reader.message_count == 4


def test_an_existing_bag_or_an_unwritable_place_is_one_line(tmp_path):
    _write(str(tmp_path / 'bag'), _frames()[:1])
    with pytest.raises(BagError) as error:
        BagWriter(str(tmp_path / 'bag'))
    assert error.value.reason == 'bag_exists'
    (tmp_path / 'file').write_text('not a directory')
    with pytest.raises(BagError) as error:
        BagWriter(str(tmp_path / 'file' / 'bag'))
    assert error.value.reason == 'unwritable' and '\n' not in str(error.value)
    assert 'Not a directory' in error.value.detail


@pytest.mark.parametrize('damage', ['truncate', 'corrupt'])
def test_a_damaged_bag_gives_its_good_frames_then_one_error(tmp_path, damage):
    path = str(tmp_path / 'bag')
    frame = [('/img', np.arange(64 * 64, dtype=np.uint8).reshape(64, 64), 'mono8')]
    _write(path, frame, repeat=6, chunk_bytes=5000, chunk_crc=True)
    mcap = os.path.join(path, 'bag_0.mcap')
    damage_file(mcap, damage)
    got = 0
    with pytest.raises(BagError) as error:
        for _ in Replay(path, rate=0).frames():
            got += 1
    assert error.value.reason in ('corrupt_bag', 'bad_message'), error.value
    assert 0 < got < 6, f'{got} frames before the damage'
    assert '\n' not in str(error.value)


def test_replay_keeps_the_recorded_spacing_and_the_offset(tmp_path):
    path = str(tmp_path / 'bag')
    writer = BagWriter(path)
    kind, data = encode(np.zeros((2, 2), np.uint8), 0, '', 'mono8')
    for index in range(5):
        writer.write('/m', kind, T0 + index * 100_000_000, data)  # 10 Hz
    writer.close()
    now = [50.0]
    frames = list(Replay(path, rate=2.0, start_offset_s=0.1, clock=lambda: now[0]).frames())
    assert [round(frame.due - 50.0, 6) for frame in frames] == [0.0, 0.05, 0.1, 0.15]
    looped = Replay(path, rate=0, loop=True, clock=lambda: now[0]).frames()
    assert len([next(looped) for _ in range(12)]) == 12


def test_a_tensor_keeps_its_stamp_through_the_bag(tmp_path):
    path = str(tmp_path / 'bag')
    writer = BagWriter(path)
    kind, data = encode(np.arange(6, dtype=np.float32), 0, '', '')
    writer.write('/t', kind, T0 + 5, data, publish_time_ns=T0 - 123)
    writer.close()
    (frame,) = Replay(path, rate=0).frames()
    assert frame.frame.stamp_ns == T0 - 123 and frame.log_time_ns == T0 + 5


def _ros2_bag() -> bool:
    import shutil
    import subprocess
    if shutil.which('ros2') is None:
        return False
    return subprocess.run(['ros2', 'bag', '--help'], capture_output=True).returncode == 0


@pytest.mark.skipif(not _ros2_bag(), reason='`ros2 bag` (rosbag2) is not installed here: no '
                    'rosbag2 wheel on PyPI, and the scratch ROS 2 stack does not build it')
def test_ros2_bag_info_reads_the_bag(tmp_path):
    import subprocess
    path = str(tmp_path / 'bag')
    _write(path, _frames())
    result = subprocess.run(['ros2', 'bag', 'info', path], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    import re
    assert re.search(rf'Messages:\s+{3 * len(_frames())}\b', result.stdout), result.stdout
    assert 'sensor_msgs/msg/Image' in result.stdout
