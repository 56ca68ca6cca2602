"""The atomics extension: values, refused addresses, and atomicity across processes."""

import mmap
import multiprocessing
import os

from jetson_shm_ros.core import _atomics
from jetson_shm_ros.core.atomics import AtomicWords, fence_acquire, fence_release
import numpy as np
import pytest

MAX_U64 = (1 << 64) - 1


@pytest.fixture
def words():
    buffer = np.zeros(8, dtype='<u8')
    return AtomicWords(buffer), buffer


def test_load_and_store_round_trip_every_bit(words):
    atomic, buffer = words
    for value in (0, 1, 1 << 63, MAX_U64, 0x0123456789ABCDEF):
        atomic.store(3, value)
        assert atomic.load(3) == value and int(buffer[3]) == value
    assert int(buffer[2]) == 0 and int(buffer[4]) == 0, 'neighbours untouched'


def test_compare_exchange_swaps_only_on_a_match_and_reports_what_it_found(words):
    atomic, buffer = words
    atomic.store(0, 5)
    assert atomic.compare_exchange(0, 4, 9) == (False, 5)
    assert int(buffer[0]) == 5
    assert atomic.compare_exchange(0, 5, MAX_U64) == (True, 5)
    assert atomic.load(0) == MAX_U64


def test_fetch_add_and_fetch_and_return_the_previous_value_and_wrap(words):
    atomic, _ = words
    atomic.store(1, MAX_U64)
    assert atomic.fetch_add(1, 2) == MAX_U64
    assert atomic.load(1) == 1, 'modulo 2**64'
    atomic.store(1, 0b1111)
    assert atomic.fetch_and(1, 0b0101) == 0b1111
    assert atomic.load(1) == 0b0101


def test_fences_can_be_called():
    fence_acquire()
    fence_release()


def test_an_index_outside_the_words_is_refused(words):
    atomic, _ = words
    for index in (-1, 8, 1 << 40):
        with pytest.raises(IndexError):
            atomic.load(index)
        with pytest.raises(IndexError):
            atomic.store(index, 1)


def test_misaligned_or_wrong_arrays_are_refused():
    raw = np.zeros(80, dtype=np.uint8)
    with pytest.raises(ValueError, match='aligned'):
        AtomicWords(raw[4:68].view('<u8'))
    with pytest.raises(ValueError):
        AtomicWords(raw[:64].view('<u4'))
    with pytest.raises(ValueError):
        AtomicWords(np.zeros((2, 2), dtype='<u8'))
    with pytest.raises(ValueError):
        AtomicWords(np.zeros(8, dtype='<u8')[::2])


def test_the_extension_refuses_null_misaligned_addresses_and_bad_values(words):
    atomic, _ = words
    address = atomic.address(0)
    for bad in (0, address + 4, address + 1):
        with pytest.raises(ValueError, match='aligned'):
            _atomics.load_acquire(bad)
        with pytest.raises(ValueError):
            _atomics.compare_exchange(bad, 0, 1)
    with pytest.raises(OverflowError):
        _atomics.store_release(address, -1)
    with pytest.raises(OverflowError):
        _atomics.store_release(address, 1 << 64)
    with pytest.raises(TypeError):
        _atomics.load_acquire(address, 1)


COUNTER_ADDS = 20000


def _add_in_another_process(path, rounds, use_cas, start):
    with open(path, 'r+b') as handle:
        mapping = mmap.mmap(handle.fileno(), 4096)
    atomic = AtomicWords(np.frombuffer(mapping, dtype='<u8'))
    start.wait()
    for _ in range(rounds):
        if use_cas:
            value = atomic.load(0)
            while True:
                swapped, value = atomic.compare_exchange(0, value, value + 1)
                if swapped:
                    break
        else:
            atomic.fetch_add(1, 1)


@pytest.mark.parametrize('use_cas', [False, True], ids=['fetch_add', 'compare_exchange'])
def test_read_modify_writes_lose_no_update_across_processes(tmp_path, use_cas):
    """Two processes add to one word of a shared file mapping at once: no update is lost."""
    path = str(tmp_path / 'words')
    with open(path, 'wb') as handle:
        handle.write(bytes(4096))
    ctx = multiprocessing.get_context('spawn')
    start = ctx.Barrier(2)
    children = [ctx.Process(target=_add_in_another_process,
                            args=(path, COUNTER_ADDS, use_cas, start)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0]
    with open(path, 'rb') as handle:
        counters = np.frombuffer(handle.read(16), dtype='<u8')
    assert int(counters[1 if not use_cas else 0]) == 2 * COUNTER_ADDS, counters


PAYLOAD_WORDS = 512
SEQLOCK_FRAMES = 3000


def _seqlock_writer(path, frames, start):
    """Writer side of the sequence lock, exactly as SlotPool does it."""
    with open(path, 'r+b') as handle:
        mapping = mmap.mmap(handle.fileno(), 8 * (1 + PAYLOAD_WORDS))
    words = np.frombuffer(mapping, dtype='<u8')
    sequence, payload = AtomicWords(words[:1]), words[1:]
    start.wait()
    for frame in range(1, frames + 1):
        sequence.store(0, 2 * frame - 1)  # odd: writing
        fence_release()
        payload[:] = frame
        sequence.store(0, 2 * frame)  # even, release: the payload is complete


def test_the_sequence_lock_accepts_no_torn_payload_across_processes(tmp_path):
    """
    A reader process races a writer process; every read it accepts holds one frame only.

    On x86 (total store order) the hardware cannot reorder these stores, so this checks the
    protocol (odd/even, re-check after reading); on Arm it also checks the fences.
    """
    path = str(tmp_path / 'seqlock')
    with open(path, 'wb') as handle:
        handle.write(bytes(8 * (1 + PAYLOAD_WORDS)))
    with open(path, 'r+b') as handle:
        mapping = mmap.mmap(handle.fileno(), 8 * (1 + PAYLOAD_WORDS))
    words = np.frombuffer(mapping, dtype='<u8')
    sequence, payload = AtomicWords(words[:1]), words[1:]
    ctx = multiprocessing.get_context('spawn')
    start = ctx.Barrier(2)
    writer = ctx.Process(target=_seqlock_writer, args=(path, SEQLOCK_FRAMES, start))
    writer.start()
    start.wait()
    accepted = torn_accepted = rejected = 0
    while True:
        before = sequence.load(0)  # acquire
        copy = payload.copy()
        fence_acquire()
        if before % 2 == 0 and sequence.load(0) == before:
            accepted += 1
            torn_accepted += int(np.any(copy != before // 2))
            if before == 2 * SEQLOCK_FRAMES:
                break
        else:
            rejected += 1
        if not writer.is_alive() and sequence.load(0) != 2 * SEQLOCK_FRAMES:
            break  # the writer failed: its exit code is checked below
    writer.join(60)
    del copy, words, sequence, payload
    mapping.close()
    os.unlink(path)
    assert writer.exitcode == 0
    assert torn_accepted == 0, f'{torn_accepted} torn of {accepted} accepted reads'
    assert accepted > 0
