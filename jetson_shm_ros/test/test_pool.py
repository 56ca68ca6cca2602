"""The shared-memory slot pool in one process: layout, modes, stale segments, both policies."""

import multiprocessing
import os
import signal
import stat

from jetson_shm_ros.core.attachment import AttachedSegment
from jetson_shm_ros.core.descriptor import MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.segment import layout, MAGIC, PAGE_BYTES, SHM_DIR
from jetson_shm_ros.core.slot_pool import SlotPool
import pytest


def _create(name, **kwargs):
    options = {'slot_count': 3, 'slot_size': 1000}
    options.update(kwargs)
    return SlotPool.create(name, **options)


def test_segment_is_private_page_aligned_and_unlinked_on_close(shm_name):
    old_umask = os.umask(0)  # a permissive umask must not make the segment public
    try:
        pool = _create(shm_name)
    finally:
        os.umask(old_umask)
    info = os.stat(SHM_DIR + shm_name)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert pool.slot_size % PAGE_BYTES == 0 and pool.slot_size >= 1000
    starts = [pool.slot_bounds(slot)[0] for slot in range(3)]
    assert all(start % PAGE_BYTES == 0 for start in starts)
    assert info.st_size == layout(3, 1000, MEMORY_HOST_SHM)[2] == starts[-1] + pool.slot_size
    pool.close()
    pool.close()  # idempotent
    assert not os.path.exists(SHM_DIR + shm_name)


def test_create_refuses_a_segment_of_a_live_producer(shm_name):
    pool = _create(shm_name)
    try:
        with pytest.raises(SegmentError) as error:
            _create(shm_name)
        assert error.value.reason == 'in_use' and str(os.getpid()) in str(error.value)
    finally:
        pool.close()


def _create_and_die(name, ready):
    pool = SlotPool.create(name, 2, 64)  # held: a collected pool unlinks its segment
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)
    pool.close()  # never reached


def test_stale_segment_of_a_killed_producer_is_replaced(shm_name):
    ctx = multiprocessing.get_context('spawn')
    ready = ctx.Event()
    child = ctx.Process(target=_create_and_die, args=(shm_name, ready))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL and ready.is_set()
    assert os.path.exists(SHM_DIR + shm_name), 'SIGKILL leaves the segment behind'
    old = AttachedSegment.attach(shm_name)
    old_incarnation = old.incarnation
    old.close()
    pool = _create(shm_name)
    try:
        assert pool.incarnation != old_incarnation
        assert pool.owner_pid == os.getpid()
    finally:
        pool.close()


def test_create_refuses_to_remove_a_foreign_file(shm_name):
    with open(SHM_DIR + shm_name, 'wb') as foreign:
        foreign.write(b'not ours' * 100)
    try:
        with pytest.raises(SegmentError) as error:
            _create(shm_name)
        assert 'not a jetson_shm_ros segment' in str(error.value)
        assert os.path.exists(SHM_DIR + shm_name)
    finally:
        os.unlink(SHM_DIR + shm_name)


@pytest.mark.parametrize('kwargs', [{'slot_count': 0}, {'slot_size': 0},
                                    {'slot_count': 5000}, {'policy': 'sometimes'}])
def test_create_rejects_bad_layouts(shm_name, kwargs):
    with pytest.raises(SegmentError):
        _create(shm_name, **kwargs)
    assert not os.path.exists(SHM_DIR + shm_name)


def test_a_segment_larger_than_the_free_space_is_refused_before_any_byte_is_taken(
        shm_name, monkeypatch):
    import jetson_shm_ros.core.shm_room as shm_room
    reserved = []
    real_statvfs = os.statvfs

    def little_room(path):
        stats = real_statvfs(path)
        return os.statvfs_result((stats.f_bsize, 4096, stats.f_blocks, 2, 2) + tuple(stats)[5:])
    monkeypatch.setattr(shm_room.os, 'statvfs', little_room)
    monkeypatch.setattr(shm_room.os, 'posix_fallocate', lambda *args: reserved.append(args))
    with pytest.raises(SegmentError) as refused:
        _create(shm_name)
    assert refused.value.reason == 'no_space' and 'has 8192 free' in str(refused.value)
    assert not reserved, 'fallocate ran: it would fill /dev/shm before failing'
    assert not os.path.exists(SHM_DIR + shm_name)


def test_attach_checks_existence_mode_and_magic(shm_name):
    with pytest.raises(SegmentError) as error:
        AttachedSegment.attach(shm_name)
    assert error.value.reason == 'no_segment'
    pool = _create(shm_name)
    try:
        os.chmod(SHM_DIR + shm_name, 0o666)
        with pytest.raises(SegmentError) as error:
            AttachedSegment.attach(shm_name)
        assert error.value.reason == 'bad_mode'
        os.chmod(SHM_DIR + shm_name, 0o660)
        AttachedSegment.attach(shm_name, allow_group_access=True).close()
        os.chmod(SHM_DIR + shm_name, 0o600)
        pool._header['magic'] = b'XXXXXXXX'
        with pytest.raises(SegmentError) as error:
            AttachedSegment.attach(shm_name)
        assert error.value.reason == 'bad_segment'
        pool._header['magic'] = MAGIC
        os.truncate(SHM_DIR + shm_name, pool.size - PAGE_BYTES)
        with pytest.raises(SegmentError) as error:
            AttachedSegment.attach(shm_name)
        assert error.value.reason == 'bad_segment'
    finally:
        pool.close()


def test_sequences_are_odd_while_writing_and_order_frames(shm_name):
    pool = _create(shm_name)
    reader = AttachedSegment.attach(shm_name)
    try:
        published = []
        for _ in range(5):
            slot = pool.acquire()
            pool.begin_write(slot)
            assert reader.sequence(slot) % 2 == 1
            published.append((slot, pool.end_write(slot)))
        assert published == [(0, 2), (1, 4), (2, 6), (0, 8), (1, 10)]
        assert [reader.sequence(slot) for slot in range(3)] == [8, 10, 6]
    finally:
        reader.close()
        pool.close()


def _publish(pool, required=0):
    slot = pool.acquire(required)
    if slot is None:
        return None
    pool.begin_write(slot)
    return slot, pool.end_write(slot)


def test_latest_policy_never_waits_for_readers(shm_name):
    pool = _create(shm_name, slot_count=2)
    reader = AttachedSegment.attach(shm_name)
    try:
        reader.register(first_sequence=2)
        assert all(_publish(pool) is not None for _ in range(10))
    finally:
        reader.close()
        pool.close()


def test_reliable_policy_waits_for_release(shm_name):
    pool = _create(shm_name, slot_count=2, policy='reliable', release_timeout_s=60)
    reader = AttachedSegment.attach(shm_name)
    try:
        first = _publish(pool)
        reader.register(first_sequence=first[1])
        second = _publish(pool)
        assert _publish(pool) is None, 'slot 0 is held by the reader'
        assert reader.release(*first)
        third = _publish(pool)
        assert third[0] == 0
        assert _publish(pool) is None, 'slot 1 is still held'
        reader.release(*second)
        assert _publish(pool) is not None
        assert not pool.all_released()
    finally:
        reader.close()
        pool.close()


def test_reliable_policy_waits_for_required_readers_then_times_out(shm_name):
    pool = _create(shm_name, slot_count=1, policy='reliable', release_timeout_s=0.05)
    try:
        assert _publish(pool, required=1) is not None
        assert _publish(pool, required=1) is None, 'no reader attached yet'
        deadline_polls = 0
        while _publish(pool, required=1) is None:
            deadline_polls += 1
        assert pool.counters['release_timeouts'] == 1
    finally:
        pool.close()


def test_stuck_reader_is_evicted_after_the_timeout_and_can_register_again(shm_name):
    pool = _create(shm_name, slot_count=1, policy='reliable', release_timeout_s=0.05)
    reader = AttachedSegment.attach(shm_name)
    try:
        first = _publish(pool)
        reader.register(first_sequence=first[1])
        while _publish(pool) is None:
            pass
        assert pool.counters['evicted_readers'] == 1
        assert reader.evicted and not reader.release(*first)
        reader.register(first_sequence=first[1] + 2)
        assert reader.registered and len(pool.readers()) == 1, 'own evicted entry is reused'
    finally:
        reader.close()
        pool.close()


def test_registration_releases_frames_published_before_the_first_descriptor(shm_name):
    pool = _create(shm_name, slot_count=3, policy='reliable', release_timeout_s=60)
    reader = AttachedSegment.attach(shm_name)
    try:
        published = [_publish(pool) for _ in range(3)]
        # This reader's first descriptor is the second frame: it will never see the first.
        reader.register(first_sequence=published[1][1])
        assert _publish(pool) is not None, 'slot 0 held a frame the reader never gets'
        assert _publish(pool) is None, 'slot 1 holds the frame the reader is about to read'
    finally:
        reader.close()
        pool.close()


def _register_and_die(name, first_sequence, ready):
    segment = AttachedSegment.attach(name)
    segment.register(first_sequence)
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_dead_reader_is_reaped_without_waiting(shm_name):
    pool = _create(shm_name, slot_count=1, policy='reliable', release_timeout_s=60)
    try:
        first = _publish(pool)
        ctx = multiprocessing.get_context('spawn')
        ready = ctx.Event()
        child = ctx.Process(target=_register_and_die, args=(shm_name, first[1], ready))
        child.start()
        child.join(30)
        assert ready.is_set() and len(pool.readers()) == 1
        assert _publish(pool) is not None, 'a dead reader must not hold slots'
        assert pool.counters['reaped_readers'] == 1 and pool.readers() == []
    finally:
        pool.close()


def test_close_does_not_unlink_a_successor_segment(shm_name):
    pool = _create(shm_name)
    os.unlink(SHM_DIR + shm_name)
    successor = _create(shm_name)
    try:
        pool.close()
        assert os.path.exists(SHM_DIR + shm_name)
    finally:
        successor.close()
