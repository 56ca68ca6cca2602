"""Checksum, pattern, dtype and static descriptor rules (no shared memory needed)."""

from dataclasses import replace

from jetson_shm_ros.core.descriptor import (
    Descriptor, DescriptorError, MEMORY_CUDA_IPC, validate_shm_name, validate_static)
from jetson_shm_ros.core.payload import (
    checksum_words, expected_pattern_checksum, fill_pattern, normalize_dtype, pattern_words)
import numpy as np
import pytest


def test_checksum_of_the_seeds_sixteen_ints_is_136():
    assert checksum_words(np.arange(1, 17, dtype='<i4').view(np.uint8)) == 136


def test_checksum_zero_pads_a_partial_last_word():
    payload = np.array([1, 0, 0, 0, 2, 3], dtype=np.uint8)
    assert checksum_words(payload) == 1 + (2 + 3 * 256)


def test_checksum_wraps_modulo_2_to_the_64():
    words = np.full(4, 0xFFFFFFFF, dtype='<u4')
    assert checksum_words(words.view(np.uint8)) == 4 * 0xFFFFFFFF
    # The Python-level fold keeps the result below 2**64 even for a huge tail.
    assert checksum_words(np.zeros(3, dtype=np.uint8)) == 0


def _numpy_checksum(payload: np.ndarray) -> int:
    """Compute the definition with NumPy: what the C extension must agree with."""
    payload = np.ascontiguousarray(payload)
    whole = payload.size - payload.size % 4
    total = int(payload[:whole].view('<u4').sum(dtype=np.uint64))
    tail = bytes(payload[whole:]) + bytes((4 - payload.size % 4) % 4)
    return (total + int.from_bytes(tail, 'little')) % (1 << 64)


@pytest.mark.parametrize('nbytes', [0, 1, 2, 3, 4, 5, 15, 16, 17, 4095, 4096, 65535, 65536,
                                    65537, (1 << 20) + 3])
def test_the_c_checksum_agrees_with_numpy_at_every_length_and_alignment(nbytes):
    rng = np.random.default_rng(nbytes)
    data = rng.integers(0, 256, nbytes + 7, dtype=np.uint8)
    for start in range(4):  # word-aligned and not
        payload = data[start:start + nbytes]
        assert checksum_words(payload) == _numpy_checksum(payload), f'start {start}'
    assert checksum_words(memoryview(data[:nbytes].tobytes())) == _numpy_checksum(data[:nbytes])


def test_a_strided_view_is_summed_as_its_bytes_in_order():
    data = np.random.default_rng(7).integers(0, 256, 2 * 4099, dtype=np.uint8)
    assert checksum_words(data[::2]) == _numpy_checksum(data[::2])


def test_a_large_buffer_summed_without_the_gil_gives_the_same_sum():
    # From 64 KiB on the extension releases the GIL; all words at their maximum.
    words = np.full(1 << 22, 0xFFFFFFFF, dtype='<u4')
    assert checksum_words(words.view(np.uint8)) == (1 << 22) * 0xFFFFFFFF


def test_pattern_changes_every_frame_and_matches_its_checksum():
    buf = np.empty(4099, dtype=np.uint8)
    base = pattern_words(buf.size // 4)
    sums = set()
    for frame in range(5):
        fill_pattern(buf, frame, base)
        assert checksum_words(buf) == expected_pattern_checksum(buf.size, frame)
        sums.add(checksum_words(buf))
    assert len(sums) == 5


@pytest.mark.parametrize('name, canonical', [
    ('uint8', '|u1'), ('float32', '<f4'), ('<i4', '<i4'), ('int16', '<i2'), ('bool', '|b1')])
def test_normalize_dtype_accepts_plain_numeric_types(name, canonical):
    assert normalize_dtype(name) == canonical


@pytest.mark.parametrize('name', ['object', '>i4', 'complex64', 'U8', 'no-such-type'])
def test_normalize_dtype_refuses_others(name):
    with pytest.raises(ValueError):
        normalize_dtype(name)


@pytest.mark.parametrize('name', ['/cam', '/jetson_shm_ros.ns.producer', '/a-b_c.9'])
def test_valid_shm_names(name):
    assert validate_shm_name(name) == name


@pytest.mark.parametrize('name', ['', 'cam', '/', '/..', '/.hidden', '/a/b', '//a', '/a b',
                                  '/' + 'x' * 202, '/a\n', 5])
def test_invalid_shm_names(name):
    with pytest.raises(DescriptorError) as error:
        validate_shm_name(name)
    assert error.value.reason == 'bad_name'


GOOD = Descriptor(shm_name='/cam', incarnation=7, slot=0, sequence=2, offset=4096, nbytes=24,
                  dtype='<i4', shape=[2, 3])


@pytest.mark.parametrize('change, reason', [
    ({'shm_name': 'cam'}, 'bad_name'),
    ({'dtype': 'O'}, 'bad_dtype'),
    ({'dtype': '>i4'}, 'bad_dtype'),
    ({'shape': [2, 4]}, 'size_mismatch'),
    ({'nbytes': 25}, 'size_mismatch'),
    ({'shape': []}, 'bad_shape'),
    ({'shape': [1] * 9, 'nbytes': 4}, 'bad_shape'),
    ({'shape': [0], 'nbytes': 0}, 'bad_shape'),
    ({'sequence': 3}, 'bad_sequence'),
    ({'sequence': 0}, 'bad_sequence'),
    ({'memory_kind': 9}, 'bad_memory_kind'),
    ({'memory_kind': MEMORY_CUDA_IPC, 'cuda_ipc_handle': b'\0' * 63}, 'bad_ipc_handle'),
    ({'cuda_event_handle': b'\0' * 10}, 'bad_event_handle'),
])
def test_static_validation_names_the_broken_rule(change, reason):
    validate_static(GOOD)
    with pytest.raises(DescriptorError) as error:
        validate_static(replace(GOOD, **change))
    assert error.value.reason == reason
