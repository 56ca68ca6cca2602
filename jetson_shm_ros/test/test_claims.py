"""Slot claims: a reader's slot is never written, latest never waits, dead claimers are reaped."""

import multiprocessing
import os
import signal
import threading
import time

from jetson_shm_ros.core.attachment import AttachedSegment
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.frame_consumer import DROPPED, FrameConsumer, INVALID, VERIFIED
from jetson_shm_ros.core.frame_producer import FrameProducer
from jetson_shm_ros.core.segment import LAYOUT_VERSION, WRITER_BIT
from jetson_shm_ros.core.slot_pool import SlotPool
import numpy as np
import pytest

TIMEOUT_S = 120


def _publish(pool, frame_value=None):
    slot = pool.acquire()
    if slot is None:
        return None
    pool.begin_write(slot)
    if frame_value is not None:
        pool.slot_view(slot).view('<u4')[:] = frame_value
    return slot, pool.end_write(slot)


@pytest.fixture
def pool_and_reader(shm_name):
    pool = SlotPool.create(shm_name, 2, 4096, policy='latest')
    reader = AttachedSegment.attach(shm_name)
    reader.register(first_sequence=2)
    yield pool, reader
    reader.close()
    pool.close()


def test_layout_version_names_the_claim_words():
    assert LAYOUT_VERSION == 2, 'readers of layout 1 know no claims: they must refuse layout 2'


def test_latest_writes_around_a_claimed_slot_and_skips_when_all_are_claimed(pool_and_reader):
    pool, reader = pool_and_reader
    first, second = _publish(pool), _publish(pool)
    assert reader.claim(*first)
    assert _publish(pool)[0] == second[0], 'the claimed slot 0 is passed over'
    third = _publish(pool)
    assert third[0] == second[0]
    assert reader.claim(*third)
    assert pool.acquire() is None, 'every slot claimed: latest skips the frame, never waits'
    assert pool.counters['skipped_all_claimed'] == 1
    reader.unclaim(first[0])
    assert _publish(pool)[0] == first[0]
    assert reader.sequence(third[0]) == third[1], 'the claimed frame is still there'
    reader.unclaim(third[0])
    assert pool.claim_word(0) == pool.claim_word(1) == 0


def test_a_claim_fails_while_the_slot_is_written_or_holds_another_frame(pool_and_reader):
    pool, reader = pool_and_reader
    first = _publish(pool)
    assert not reader.claim(first[0], first[1] + 2), 'not the frame in the slot'
    assert not reader.claim(first[0], first[1] - 1), 'odd sequences are never readable'
    assert reader.claim_word(first[0]) == 0, 'a failed claim leaves nothing behind'
    slot = pool.acquire()
    pool.begin_write(slot)
    assert reader.claim_word(slot) == WRITER_BIT
    assert not reader.claim(slot, reader.sequence(slot))
    sequence = pool.end_write(slot)
    assert reader.claim(slot, sequence)
    with pytest.raises(SegmentError) as refused:
        pool.begin_write(slot)
    assert refused.value.reason == 'slot_claimed'
    reader.unclaim(slot)
    with pytest.raises(SegmentError) as error:
        reader.unclaim(slot)
    assert error.value.reason == 'not_claimed'


def test_claims_need_a_registered_reader_and_a_slot_in_range(shm_name):
    pool = SlotPool.create(shm_name, 2, 4096)
    reader = AttachedSegment.attach(shm_name)
    try:
        slot, sequence = _publish(pool)
        with pytest.raises(SegmentError) as error:
            reader.claim(slot, sequence)
        assert error.value.reason == 'not_registered'
        reader.register(sequence)
        for bad in (-1, 2):
            with pytest.raises(SegmentError) as error:
                reader.claim(bad, sequence)
            assert error.value.reason == 'slot_out_of_range'
    finally:
        reader.close()
        pool.close()


def test_two_readers_of_one_process_have_their_own_entries_and_claims(pool_and_reader):
    pool, reader = pool_and_reader
    other = AttachedSegment.attach(pool.name)
    try:
        other.register(first_sequence=2)
        assert len(pool.readers()) == 2
        first = _publish(pool)
        assert reader.claim(*first) and other.claim(*first)
        reader.unclaim(first[0])
        assert pool.claim_word(first[0]) != 0, 'the other reader still reads it'
        assert pool.acquire() != first[0]
        other.unclaim(first[0])
        assert pool.claim_word(first[0]) == 0
    finally:
        other.close()


def test_closing_a_reader_drops_its_claims(pool_and_reader):
    pool, reader = pool_and_reader
    first = _publish(pool)
    assert reader.claim(*first)
    reader.close()
    assert pool.claim_word(first[0]) == 0 and pool.readers() == []
    reader.unclaim(first[0])  # after close: nothing left to do, no error


def test_reliable_evicts_a_stuck_claimer_and_writes_around_its_slot(shm_name):
    pool = SlotPool.create(shm_name, 2, 4096, policy='reliable', release_timeout_s=0.05)
    reader = AttachedSegment.attach(shm_name)
    try:
        first = _publish(pool)
        reader.register(first_sequence=first[1])
        assert reader.claim(*first)  # a callback that never returns: no unclaim, no release
        second = _publish(pool)
        assert second[0] != first[0]
        third = None
        while third is None:  # waits for the release of slot 0 until the timeout evicts
            third = _publish(pool)
        assert pool.counters['evicted_readers'] == 1 and reader.evicted
        assert third[0] == second[0], 'the claimed slot is never written, even after eviction'
        assert reader.sequence(first[0]) == first[1]
        reader.unclaim(first[0])
    finally:
        reader.close()
        pool.close()


def _check_uniform(view, expected):
    """Read a claimed slot in two halves, letting the writer thread run in between."""
    half = len(view) // 2
    first = bool(np.all(view[:half] == expected))
    os.sched_yield()  # give up the GIL: a writer that ignored claims would run now
    return first and bool(np.all(view[half:] == expected))


def test_claims_and_the_writer_race_in_threads_without_a_torn_read(shm_name):
    """One writer thread, three reader threads (two sharing one attachment), one slot each."""
    frames = 2000
    pool = SlotPool.create(shm_name, 2, 4096, policy='latest')
    shared = AttachedSegment.attach(shm_name)
    own = AttachedSegment.attach(shm_name)
    latest = []
    done = threading.Event()
    results = {'claimed': 0, 'torn': 0, 'refused': 0}
    lock = threading.Lock()

    def read(segment):
        while not done.is_set():
            os.sched_yield()
            if not latest:
                continue
            slot, sequence = latest[-1]
            if not segment.claim(slot, sequence):
                with lock:
                    results['refused'] += 1
                continue
            try:
                untorn = _check_uniform(segment.slot_view(slot).view('<u4'), sequence // 2)
            finally:
                segment.unclaim(slot)
            with lock:
                results['claimed'] += 1
                results['torn'] += int(not untorn)

    for segment in (shared, own):
        segment.register(first_sequence=2)
    readers = [threading.Thread(target=read, args=(segment,)) for segment in (shared, shared, own)]
    try:
        for thread in readers:
            thread.start()
        written = 0
        while written < frames:
            slot = pool.acquire()
            if slot is None:
                continue
            pool.begin_write(slot)
            view = pool.slot_view(slot).view('<u4')
            half = len(view) // 2
            view[:half] = written + 1
            os.sched_yield()  # let the readers run mid-write
            view[half:] = written + 1
            latest.append((slot, pool.end_write(slot)))
            written += 1
    finally:
        done.set()
        for thread in readers:
            thread.join(TIMEOUT_S)
        shared.close()
        own.close()
        pool.close()
    assert results['torn'] == 0, results
    assert results['claimed'] > 0, results


CLAIMS = 400  # claims the spawned reader makes; every other one is held across two frames


def _newest_frame(segment):
    """Return (slot, sequence) of the newest published frame: what a descriptor would name."""
    published = [(segment.sequence(slot), slot) for slot in range(segment.slot_count)]
    # An odd sequence is a slot being written: no descriptor names it, and it cannot be claimed.
    sequence, slot = max((entry for entry in published if entry[0] % 2 == 0), default=(0, 0))
    return slot, sequence


def _uniform(view, expected):
    return bool(np.all(view == expected)) and bool(np.all(view[::-1] == expected))


def _claiming_reader(name, claims, results):
    """
    Spawned reader: claim the newest published frame until `claims` claims succeeded.

    Each claimed frame is checked whole. Every other claim is held until the writer has
    published two more frames and checked again: with two slots the claimed one is the writer's
    next slot when it starts the second of them, so it had to pass over it; a writer that ignored
    claims would have overwritten the frame under the check. The deadline only ends a hang.
    """
    counts = {'claimed': 0, 'held': 0, 'torn': 0, 'refused': 0}
    deadline = time.monotonic() + TIMEOUT_S
    segment = AttachedSegment.attach(name)
    try:
        segment.register(first_sequence=2)
        while counts['claimed'] < claims and time.monotonic() < deadline:
            slot, sequence = _newest_frame(segment)
            if not segment.claim(slot, sequence):
                counts['refused'] += 1  # overwritten or being written since it was looked up
                continue
            try:
                view = segment.slot_view(slot).view('<u4')
                untorn = _uniform(view, sequence // 2)
                if counts['claimed'] % 2:
                    newest = sequence
                    while newest < sequence + 4 and time.monotonic() < deadline:
                        os.sched_yield()
                        newest = max(newest, _newest_frame(segment)[1])
                    counts['held'] += int(newest >= sequence + 4)
                    untorn = untorn and _uniform(view, sequence // 2)
            finally:
                segment.unclaim(slot)
            counts['claimed'] += 1
            counts['torn'] += int(not untorn)
    finally:
        segment.close()
        results.put(counts)


def test_claims_and_the_writer_race_across_processes_without_a_torn_read(shm_name):
    """
    A reader in another process claims frames while the writer publishes as fast as it can.

    The reader keeps claiming until it has made CLAIMS claims, as a reader of a busy stream must
    be able to: a claim of a published frame fails only when the writer has taken its slot
    since, never forever; how the two processes are scheduled changes no outcome (the
    deadline only ends a hang).
    """
    pool = SlotPool.create(shm_name, 2, 64 * 1024, policy='latest')
    ctx = multiprocessing.get_context('spawn')
    results = ctx.Queue()
    _publish(pool, frame_value=1)
    child = ctx.Process(target=_claiming_reader, args=(shm_name, CLAIMS, results))
    child.start()
    try:
        frame = 1
        while child.is_alive():
            if _publish(pool, frame_value=frame + 1) is not None:
                frame += 1
        counts = results.get(timeout=TIMEOUT_S)
        child.join(TIMEOUT_S)
        passed = pool.counters['passed_claimed_slots']
    finally:
        pool.close()
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert counts['torn'] == 0, counts
    assert counts['claimed'] == CLAIMS and counts['held'] == CLAIMS // 2, counts
    assert passed >= counts['held'], ('every held claim turned the writer away', passed, counts)


def _claim_and_die(name, slot, sequence, ready):
    segment = AttachedSegment.attach(name)
    segment.register(first_sequence=sequence)
    if segment.claim(slot, sequence):
        ready.set()  # synchronous, unlike a Queue's put: done before the kill
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_a_claiming_reader(pool):
    slot, sequence = _publish(pool)
    ctx = multiprocessing.get_context('spawn')
    ready = ctx.Event()
    child = ctx.Process(target=_claim_and_die, args=(pool.name, slot, sequence, ready))
    child.start()
    child.join(TIMEOUT_S)
    assert ready.is_set() and child.exitcode == -signal.SIGKILL
    assert pool.claim_word(slot) != 0, 'the dead reader still holds its claim'
    return slot


@pytest.mark.parametrize('policy', ['latest', 'reliable'])
def test_a_reader_that_died_holding_a_claim_is_reaped(shm_name, policy):
    pool = SlotPool.create(shm_name, 1, 4096, policy=policy, release_timeout_s=60)
    try:
        slot = _kill_a_claiming_reader(pool)
        assert _publish(pool) is not None, 'a dead reader must not hold the only slot'
        assert pool.counters['reaped_claims'] == 1 and pool.counters['reaped_readers'] == 1
        assert pool.counters['skipped_all_claimed'] == 0
        assert pool.readers() == [] and pool.claim_word(slot) == 0
    finally:
        pool.close()


def test_a_new_reader_in_a_dead_readers_entry_does_not_inherit_its_claims(shm_name):
    pool = SlotPool.create(shm_name, 2, 4096, policy='latest')
    reader = AttachedSegment.attach(shm_name)
    try:
        slot = _kill_a_claiming_reader(pool)
        reader.register(first_sequence=2)
        assert [entry['index'] for entry in pool.readers()] == [0], 'the dead entry is reused'
        assert pool.claim_word(slot) == 0
    finally:
        reader.close()
        pool.close()


def test_an_aborted_or_abandoned_write_gives_its_slot_back(shm_name):
    pool = SlotPool.create(shm_name, 1, 4096, policy='latest')
    try:
        slot = pool.acquire()
        pool.begin_write(slot)
        pool.abort_write(slot)
        assert pool.claim_word(slot) == 0 and pool.sequence(slot) == 0, 'holds no frame'
        slot = pool.acquire()
        pool.begin_write(slot)  # ... and the writer raised without abort_write or end_write
        assert pool.acquire() == slot, 'the next acquire takes the slot again'
        pool.begin_write(slot)
        assert pool.end_write(slot) == 2 and pool.claim_word(slot) == 0
    finally:
        pool.close()


FRAMES = 20000
FRAME_WORDS = 4096


def _lagging_consumer(descriptors, results):
    """Spawned consumer whose callback is slow and checks that every frame it gets is untorn."""
    seen = {'calls': 0, 'torn': 0}

    def check_every_word(frame, desc):
        seen['calls'] += 1
        # Frame k holds the value k + 1 everywhere and is published as sequence 2k + 2.
        expected = desc.sequence // 2
        for _ in range(4):  # lag: read it again and again while the producer keeps writing
            seen['torn'] += int(not np.all(frame == expected))

    consumer = FrameConsumer(process=check_every_word)
    try:
        for _ in range(FRAMES):
            consumer.handle(descriptors.get(timeout=TIMEOUT_S))
        results.put({**seen, **consumer.counts, 'drop_reasons': dict(consumer.drop_reasons)})
    finally:
        consumer.close()


def test_a_lagging_latest_consumer_is_never_handed_a_torn_frame(shm_name):
    """
    The race of issue 11 through the core: 20,000 frames, latest, 2 slots, a slow callback.

    Before slot claims, 145 of the frames handed to such a callback were torn.
    """
    ctx = multiprocessing.get_context('spawn')
    # One descriptor in flight: the consumer reads while the producer writes the next ones.
    descriptors, results = ctx.Queue(maxsize=1), ctx.Queue()
    child = ctx.Process(target=_lagging_consumer, args=(descriptors, results))
    child.start()
    producer = FrameProducer(shm_name, 2, 'uint32', [FRAME_WORDS], policy='latest')
    try:
        while producer.frames_published < FRAMES:
            value = producer.frames_published + 1
            desc = producer.try_write(lambda frame: frame.fill(value))
            if desc is not None:
                descriptors.put(desc, timeout=TIMEOUT_S)
        counts = results.get(timeout=TIMEOUT_S)
        child.join(TIMEOUT_S)
        pool_counters = dict(producer.pool.counters)
        skipped = producer.waits
    finally:
        producer.close()
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert counts['torn'] == 0, counts
    assert counts['received'] == FRAMES, counts
    assert counts[INVALID] == 0, counts
    assert counts[VERIFIED] + counts[DROPPED] == FRAMES, counts
    assert counts['calls'] == counts[VERIFIED], 'every frame handed over verified'
    assert counts[VERIFIED] > 0, counts
    assert counts['drop_reasons'].get('overwritten_while_reading', 0) == 0, counts
    assert pool_counters['skipped_all_claimed'] == skipped, (pool_counters, skipped)
