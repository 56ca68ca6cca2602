"""sensor_msgs/Image fields as arrays and back: packing, byte order, hostile fields (no ROS)."""

import array

from jetson_shm_ros.core.errors import ShmRosError
from jetson_shm_ros.core.image_encodings import encoding_layout, supported_encodings
from jetson_shm_ros.core.image_layout import (
    image_fields, image_layout, image_view, ImageError, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE,
    pack_image, REASONS)
import numpy as np
import pytest

HEIGHT, WIDTH = 5, 7
ISSUE_ENCODINGS = ['mono8', 'mono16', 'rgb8', 'bgr8', 'rgba8', 'bgra8', 'rgb16', 'bgr16'] + \
    [f'{bits}C{count}' for bits in ('8U', '16U', '32F') for count in range(1, 5)]


def _row_nbytes(encoding, width=WIDTH):
    dtype, channels = encoding_layout(encoding)
    return width * channels * np.dtype(dtype).itemsize


def _padded_image(encoding, padding, seed=0):
    """Return random bytes laid out as an Image with `padding` extra bytes per row."""
    step = _row_nbytes(encoding) + padding
    data = np.random.default_rng(seed).integers(0, 256, step * HEIGHT, dtype=np.uint8)
    return step, data.tobytes()


def _unpadded(data, step, row_nbytes, height=HEIGHT):
    """Join the pixel bytes of each row: what a receiver must see (written independently)."""
    return b''.join(data[row * step:row * step + row_nbytes] for row in range(height))


def test_the_issue_encodings_are_all_supported():
    missing = set(ISSUE_ENCODINGS) - set(supported_encodings())
    assert not missing, missing


@pytest.mark.parametrize('padding', [0, 1, 13])
@pytest.mark.parametrize('encoding', supported_encodings())
def test_every_encoding_packs_padded_rows_and_comes_back_byte_for_byte(encoding, padding):
    step, data = _padded_image(encoding, padding)
    packed = pack_image(encoding, HEIGHT, WIDTH, step, 0, data)
    dtype, channels = encoding_layout(encoding)
    assert packed.dtype.str == dtype and packed.flags.c_contiguous
    assert packed.shape == ((HEIGHT, WIDTH) if channels == 1 else (HEIGHT, WIDTH, channels))
    expected = _unpadded(data, step, _row_nbytes(encoding))
    assert packed.tobytes() == expected
    fields = image_fields(packed, encoding)
    assert (fields.encoding, fields.height, fields.width) == (encoding, HEIGHT, WIDTH)
    assert fields.step == _row_nbytes(encoding) and fields.is_bigendian == 0
    assert fields.data.tobytes() == expected


@pytest.mark.parametrize('encoding', ['mono16', 'rgb16', '16UC3', '32FC2', '64FC1', '16SC4'])
def test_big_endian_data_is_byte_swapped(encoding):
    step, data = _padded_image(encoding, padding=3)
    dtype = np.dtype(encoding_layout(encoding)[0])
    rows = _unpadded(data, step, _row_nbytes(encoding))
    # Reverse the bytes of every element by hand: what little-endian data of the same values is.
    item = dtype.itemsize
    swapped = b''.join(rows[i:i + item][::-1] for i in range(0, len(rows), item))
    assert pack_image(encoding, HEIGHT, WIDTH, step, 1, data).tobytes() == swapped


def test_big_endian_flag_changes_nothing_for_byte_sized_elements():
    step, data = _padded_image('rgb8', padding=2)
    assert pack_image('rgb8', HEIGHT, WIDTH, step, 1, data).tobytes() == \
        pack_image('rgb8', HEIGHT, WIDTH, step, 0, data).tobytes()


def test_view_copies_nothing_and_one_assignment_packs_and_swaps():
    step, data = _padded_image('mono16', padding=4)
    buffer = np.frombuffer(data, dtype=np.uint8)
    view = image_view('mono16', HEIGHT, WIDTH, step, 1, buffer)
    assert np.shares_memory(view, buffer) and not view.flags.writeable
    slot = np.empty((HEIGHT, WIDTH), dtype='<u2')
    slot[...] = view
    assert slot.tobytes() == pack_image('mono16', HEIGHT, WIDTH, step, 1, data).tobytes()


@pytest.mark.parametrize('make', [bytes, bytearray, lambda raw: array.array('B', raw),
                                  lambda raw: np.frombuffer(raw, np.uint8), list])
def test_data_may_be_any_byte_container(make):
    step, data = _padded_image('bgr8', padding=1)
    packed = pack_image('bgr8', HEIGHT, WIDTH, step, 0, make(data))
    assert packed.tobytes() == _unpadded(data, step, _row_nbytes('bgr8'))


def test_image_fields_of_a_contiguous_array_is_a_view_and_of_a_strided_one_a_copy():
    image = np.arange(HEIGHT * WIDTH * 3, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3)
    assert np.shares_memory(image_fields(image, 'rgb8').data, image)
    strided = np.arange(HEIGHT * 2 * WIDTH, dtype='<f4').reshape(HEIGHT, 2 * WIDTH)[:, ::2]
    fields = image_fields(strided, '32FC1')
    assert fields.step == WIDTH * 4
    assert fields.data.tobytes() == np.ascontiguousarray(strided).tobytes()
    single = np.zeros((HEIGHT, WIDTH, 1), dtype=np.uint8)
    assert image_fields(single, 'mono8').width == WIDTH


def _reason(call, *args):
    with pytest.raises(ImageError) as error:
        call(*args)
    assert isinstance(error.value, ShmRosError) and error.value.reason in REASONS
    assert error.value.detail  # a reason alone says too little
    return error.value.reason


ROW = _row_nbytes('rgb8')
GOOD = bytes(ROW * HEIGHT)


@pytest.mark.parametrize('fields, reason', [
    (('no_such_encoding', HEIGHT, WIDTH, ROW, 0, GOOD), 'unknown_encoding'),
    (('', HEIGHT, WIDTH, ROW, 0, GOOD), 'unknown_encoding'),
    (('rgb8', 0, WIDTH, ROW, 0, b''), 'bad_size'),
    (('rgb8', HEIGHT, 0, 0, 0, b''), 'bad_size'),
    (('rgb8', MAX_IMAGE_SIDE + 1, WIDTH, ROW, 0, GOOD), 'bad_size'),
    (('rgb8', HEIGHT, 2**32 - 1, ROW, 0, GOOD), 'bad_size'),
    (('rgb8', -1, WIDTH, ROW, 0, GOOD), 'bad_size'),
    (('64FC4', MAX_IMAGE_SIDE, MAX_IMAGE_SIDE, 2**21, 0, GOOD), 'too_large'),
    (('rgb8', HEIGHT, WIDTH, ROW - 1, 0, GOOD), 'bad_step'),
    (('rgb8', HEIGHT, WIDTH, 0, 0, GOOD), 'bad_step'),
    (('rgb8', HEIGHT, WIDTH, ROW, 2, GOOD), 'bad_endianness'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, GOOD[:-1]), 'data_too_short'),
    (('rgb8', HEIGHT, WIDTH, ROW + 8, 0, GOOD), 'data_too_short'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, b''), 'data_too_short'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, GOOD + b'x'), 'data_too_long'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, [256] * len(GOOD)), 'bad_data'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, 12345), 'bad_data'),
    (('rgb8', HEIGHT, WIDTH, ROW, 0, np.zeros(len(GOOD) // 4, '<u4')), 'bad_data'),
])
def test_hostile_images_are_refused_with_a_reason(fields, reason):
    assert _reason(image_view, *fields) == reason
    assert _reason(pack_image, *fields) == reason


def test_limits_leave_room_for_real_cameras():
    # An 8K image of four floats per pixel still fits; the limits are about hostile fields.
    layout = image_layout('32FC4', 4320, 7680)
    assert layout.nbytes <= MAX_IMAGE_BYTES and layout.shape == (4320, 7680, 4)
    assert image_layout('mono8', 1, MAX_IMAGE_SIDE).row_nbytes == MAX_IMAGE_SIDE  # line scan


@pytest.mark.parametrize('array_, encoding, reason', [
    (np.zeros((HEIGHT, WIDTH, 3), np.uint8), 'mono8', 'encoding_mismatch'),
    (np.zeros((HEIGHT, WIDTH), np.uint16), 'mono8', 'encoding_mismatch'),
    (np.zeros((HEIGHT, WIDTH), np.uint8), 'nope', 'unknown_encoding'),
    (np.zeros((HEIGHT, WIDTH), np.uint8), '', 'unknown_encoding'),
    (np.zeros(WIDTH, np.uint8), 'mono8', 'encoding_mismatch'),
    (np.zeros((0, WIDTH), np.uint8), 'mono8', 'bad_size'),
])
def test_image_fields_refuses_arrays_that_do_not_match_the_encoding(array_, encoding, reason):
    assert _reason(image_fields, array_, encoding) == reason
