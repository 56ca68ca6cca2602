"""The bridge nodes in one process: parameters, segment re-creation, refusals (no DDS traffic)."""

import os
import sys

from api_fixtures import spin_until
from conftest import SHM_DIR
from diagnostic_msgs.msg import DiagnosticStatus
from image_client import make_image
from jetson_shm_ros.core.errors import ShmRosError
from jetson_shm_ros.nodes import shm_to_image
from jetson_shm_ros.nodes.image_to_shm import ImageToShmNode
from jetson_shm_ros.nodes.shm_to_image import ShmToImageNode
from jetson_shm_ros.ros.frame_info import FrameInfo
from jetson_shm_ros.ros.subscription import ShmSubscription
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Header


def _make(node_class, context, **params):
    return node_class(context=context, parameter_overrides=[
        Parameter(key, value=value) for key, value in params.items()])


def _close(node):
    node.shutdown()
    node.destroy_node()


def test_every_parameter_is_declared_read_only_with_a_description(context):
    for node in (_make(ImageToShmNode, context), _make(ShmToImageNode, context)):
        try:
            names = node._parameters.keys() - {'use_sim_time'}
            assert len(names) >= 7, names
            for name in names:
                descriptor = node.describe_parameter(name)
                assert descriptor.description, f'{node.get_name()}.{name} has no description'
                assert descriptor.read_only, f'{node.get_name()}.{name} is read at start-up'
        finally:
            _close(node)


@pytest.mark.parametrize('typed', [5, 5.0])
def test_max_rate_takes_an_integer_as_users_type_it(context, typed):
    node = _make(ShmToImageNode, context, max_rate_hz=typed, status_period_s=2)
    try:
        assert node._period_s == pytest.approx(0.2)
    finally:
        _close(node)


@pytest.mark.parametrize('node_class, params', [
    (ShmToImageNode, {'max_rate_hz': -1.0}),
    (ShmToImageNode, {'max_rate_hz': 'fast'}),
    (ShmToImageNode, {'encoding': 'rgb9'}),
    (ShmToImageNode, {'backend': 'tpu'}),
    (ImageToShmNode, {'policy': 'sometimes'}),
    (ImageToShmNode, {'backend': 'tpu'}),
    (ImageToShmNode, {'shm_name': 'no_slash'}),
    (ImageToShmNode, {'status_period_s': 0}),
])
def test_bad_parameters_fail_at_start_up_with_a_reason(context, node_class, params):
    with pytest.raises((ValueError, ShmRosError)) as error:
        _make(node_class, context, **params)
    assert str(error.value)


def _image(encoding, height, width, channels_bytes, frame_id='cam'):
    step = width * channels_bytes
    return make_image(encoding, height, width, step, bytes(step * height), frame_id, 1)


def test_a_new_size_or_encoding_recreates_the_segment_and_hostile_images_change_nothing(
        context, shm_name):
    node = _make(ImageToShmNode, context, shm_name=shm_name)
    try:
        assert node.counts['segments'] == 0 and not os.path.exists(SHM_DIR + shm_name)
        node._on_image(_image('rgb8', 4, 6, 3))
        first = node._publisher.frame_producer.pool.incarnation
        node._on_image(_image('rgb8', 4, 6, 3))
        assert node.counts['segments'] == 1 and node.counts['published'] == 2
        # Hostile images: refused, counted, and the segment stays as it was.
        node._on_image(make_image('rgb8', 4, 6, 5, bytes(20), 'x', 1))
        node._on_image(make_image('nope', 4, 6, 18, bytes(72), 'x', 1))
        assert node.refusals.by_reason == {'bad_step': 1, 'unknown_encoding': 1}
        assert node.counts['segments'] == 1
        assert node._publisher.frame_producer.pool.incarnation == first
        node._on_image(_image('rgb8', 8, 6, 3))   # new size
        second = node._publisher.frame_producer.pool.incarnation
        node._on_image(_image('bgr8', 8, 6, 3))   # same size, new encoding
        third = node._publisher.frame_producer.pool.incarnation
        assert len({first, second, third}) == 3
        assert node._publisher.encoding == 'bgr8' and node._publisher.shape == [8, 6, 3]
        assert node.counts == {'images': 6, 'published': 4, 'no_free_slot': 0, 'segments': 3}
        assert os.path.exists(SHM_DIR + shm_name)
    finally:
        _close(node)
    assert not os.path.exists(SHM_DIR + shm_name)


def test_refusals_raise_the_level_of_their_diagnostics_status(context, shm_name):
    node = _make(ImageToShmNode, context, shm_name=shm_name)
    try:
        status = node.refusals._diagnostics.status
        assert status().level == DiagnosticStatus.OK
        node._on_image(_image('rgb8', 4, 6, 3))
        assert status().level == DiagnosticStatus.OK  # a good image refuses nothing
        node._on_image(make_image('rgb8', 4, 6, 5, bytes(20), 'x', 1))
        node._on_image(make_image('rgb8', 4, 6, 5, bytes(20), 'x', 1))
        node._on_image(make_image('nope', 4, 6, 18, bytes(72), 'x', 1))
        refused = status()
        values = {item.key: item.value for item in refused.values}
        assert refused.level == DiagnosticStatus.WARN and '3 input(s)' in refused.message
        assert values == {'refused': '3', 'refused.bad_step': '2', 'refused.unknown_encoding': '1'}
        assert refused.hardware_id == '/image_raw'
        assert status().level == DiagnosticStatus.OK  # the next period: none refused in it
    finally:
        _close(node)


def test_many_re_created_segments_still_close_with_the_node(context, shm_name):
    # Each ShmPublisher closes with its node; re-creating one per new image size must not pile
    # up wrappers (destroy_node once failed with RecursionError after ~1000 re-creations).
    node = _make(ImageToShmNode, context, shm_name=shm_name, diagnostics_period_s=0)
    for index in range(sys.getrecursionlimit() + 100):
        width = 4 + index % 2
        node._on_image(make_image('mono8', 2, width, width, bytes(2 * width), 'cam', 1))
    assert node.counts['segments'] == sys.getrecursionlimit() + 100
    assert os.path.exists(SHM_DIR + shm_name)
    node.destroy_node()  # no shutdown() first: destroy_node alone must unlink the segment
    assert not os.path.exists(SHM_DIR + shm_name)


class _Clock:
    """A monotonic clock the test moves by hand, so the throttle is checked without timing."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _info(encoding='', shape=(4, 6), dtype='|u1', index=0):
    header = Header(frame_id=f'cam/{index}')
    header.stamp.sec, header.stamp.nanosec = 1_700_000_000 + index, 123
    return FrameInfo(header=header, stamp_ns=(1_700_000_000 + index) * 10**9 + 123,
                     frame_id=f'cam/{index}', dtype=dtype, shape=tuple(shape),
                     encoding=encoding, sequence=2, shm_name='/jsr_test_x', slot=0,
                     nbytes=int(np.prod(shape)), verified=True)


def _to_image(context, published, **params):
    node = _make(ShmToImageNode, context, **params)
    node._publisher.publish = published.append  # what would go out on the topic
    return node


def test_plain_tensors_take_the_encoding_parameter_and_are_refused_without_one(context):
    published = []
    node = _to_image(context, published, encoding='mono8', max_rate_hz=0)
    other = _to_image(context, [], max_rate_hz=0)
    try:
        frame = np.arange(24, dtype=np.uint8).reshape(4, 6)
        node._on_frame(frame, _info())
        assert len(published) == 1 and published[0].encoding == 'mono8'
        assert bytes(published[0].data) == frame.tobytes()
        assert published[0].header.frame_id == 'cam/0'
        assert (published[0].header.stamp.sec, published[0].header.stamp.nanosec) == \
            (1_700_000_000, 123)
        other._on_frame(frame, _info())
        assert other.refusals.by_reason == {'no_encoding': 1}
        # The descriptor's own encoding wins over the parameter; a mismatch is refused.
        node._on_frame(frame, _info(encoding='rgb8'))
        assert node.refusals.by_reason == {'encoding_mismatch': 1}
        assert node.counts == {'frames': 2, 'published': 1, 'skipped': 0}
    finally:
        _close(node)
        _close(other)


def test_throttle_publishes_five_of_a_hundred_frames_a_second(context, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(shm_to_image.time, 'monotonic', clock)
    published = []
    node = _to_image(context, published, encoding='mono8', max_rate_hz=5)
    try:
        frame = np.zeros((4, 6), dtype=np.uint8)
        start = clock.now
        for index in range(300):  # 3 s at 100 Hz
            clock.now = start + index / 100
            node._on_frame(frame, _info(index=index))
        indices = [int(msg.header.frame_id.split('/')[1]) for msg in published]
        assert len(indices) == 15 and indices[0] == 0, indices
        # Evenly spread: every 20th frame (one later where the clock's rounding lands late).
        assert all(19 <= later - earlier <= 21 for earlier, later in zip(indices, indices[1:]))
        assert node.counts == {'frames': 300, 'published': 15, 'skipped': 285}
        # After a pause the next frame goes out at once, and the cadence restarts from it.
        clock.now += 10.0
        node._on_frame(frame, _info(index=1000))
        node._on_frame(frame, _info(index=1001))
        assert [msg.header.frame_id for msg in published[-1:]] == ['cam/1000']
    finally:
        _close(node)


@pytest.mark.parametrize('backend_copy', [False, True], ids=['loan', 'backend_copy'])
def test_both_write_paths_pack_padded_rows_and_swap_big_endian_bytes(
        context, shm_name, backend_copy):
    # GPU backends write through ShmPublisher.publish (the backend's copy); with no GPU here,
    # that path is taken on the CPU backend by naming it otherwise.
    node = _make(ImageToShmNode, context, shm_name=shm_name, diagnostics_period_s=0)
    reader = rclpy.create_node('reader', context=context)
    received = []
    subscription = ShmSubscription(reader, 'jetson_shm/descriptors',
                                   lambda frame, info: received.append((frame.copy(), info)),
                                   diagnostics_period_s=0)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(reader)
    try:
        width, height, step = 5, 3, 5 * 2 + 6
        values = (np.arange(width * height).reshape(height, width) * 257 + 1).astype('>u2')
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :width * 2] = values.view(np.uint8).reshape(height, width * 2)
        image = make_image('mono16', height, width, step, padded.tobytes(), 'cam/be', 7,
                           is_bigendian=1)
        node._on_image(image)  # creates the segment
        if backend_copy:
            node._publisher.backend.name = 'any GPU backend'
        assert spin_until(executor, lambda: subscription.counts['verified'] >= 1)
        node._on_image(image)
        assert spin_until(executor, lambda: len(received) >= 2), subscription.summary()
        frame, info = received[-1]
        assert info.encoding == 'mono16' and info.frame_id == 'cam/be' and info.stamp_ns == 7
        assert frame.dtype.str == '<u2' and frame.tobytes() == values.astype('<u2').tobytes()
        assert node.counts['published'] == 2
    finally:
        executor.shutdown()
        subscription.close()
        reader.destroy_node()
        _close(node)
