"""Producer and consumer streams: every validation rule, torn writes, two real processes."""

from dataclasses import replace
import multiprocessing
import os
import time

from jetson_shm_ros.core.descriptor import Descriptor, MEMORY_CUDA_IPC
from jetson_shm_ros.core.errors import SegmentError
from jetson_shm_ros.core.frame_consumer import (
    DROPPED, FrameConsumer, INVALID, MAX_MAPPED_SEGMENTS, UNVERIFIED, VERIFIED)
from jetson_shm_ros.core.frame_producer import FrameProducer
from jetson_shm_ros.core.payload import expected_pattern_checksum
from jetson_shm_ros.core.segment import SHM_DIR
from jetson_shm_ros.core.slot_pool import SlotPool
import numpy as np
import pytest


@pytest.fixture
def producer(shm_name):
    stream = FrameProducer(shm_name, 3, 'int32', [4, 5], policy='latest')
    yield stream
    stream.close()


def test_frames_verify_and_views_carry_dtype_and_shape(producer, consumer):
    seen = []
    consumer.process = lambda array, desc: seen.append((array.dtype.str, array.shape,
                                                        int(array.view('<u4')[0, 0])))
    for frame in range(4):
        desc = producer.try_write_pattern()
        assert desc.checksum == expected_pattern_checksum(80, frame)
        assert consumer.handle(desc) == VERIFIED
    assert seen[0][:2] == ('<i4', (4, 5))
    assert len({value for _, _, value in seen}) == 4, 'the pattern changes every frame'
    assert consumer.summary().startswith('received=4 verified=4 dropped=0 invalid=0')
    assert consumer.counts['in_place_bytes'] == 4 * 80 and consumer.counts['copied_bytes'] == 0


def test_user_writer_fills_a_typed_view(producer, consumer):
    desc = producer.try_write(
        lambda array: array.__setitem__(Ellipsis, np.arange(20).reshape(4, 5)))
    out = []
    consumer.process = lambda array, _: out.append(array.copy())
    assert consumer.handle(desc) == VERIFIED
    assert (out[0] == np.arange(20).reshape(4, 5)).all()


def test_frame_without_checksum_counts_as_unverified(shm_name, consumer):
    stream = FrameProducer(shm_name, 2, 'uint8', [10], checksum=False)
    try:
        assert consumer.handle(stream.try_write_pattern()) == UNVERIFIED
    finally:
        stream.close()


def _invalid_variants(desc, pool):
    start, end = pool.slot_bounds(desc.slot)
    return [
        (replace(desc, shm_name='/jsr_test_no_such_segment'), 'no_segment'),
        (replace(desc, shm_name='no-slash'), 'bad_name'),
        (replace(desc, incarnation=desc.incarnation ^ 2), 'unknown_incarnation'),
        (replace(desc, slot=pool.slot_count), 'slot_out_of_range'),
        (replace(desc, offset=end - 40), 'out_of_slot'),
        (replace(desc, offset=start - 4), 'out_of_slot'),
        (replace(desc, offset=2**64 - 8), 'out_of_slot'),
        (replace(desc, nbytes=pool.slot_size + 4, shape=[pool.slot_size // 4 + 1]), 'out_of_slot'),
        (replace(desc, dtype='|O'), 'bad_dtype'),
        (replace(desc, shape=[3, 5]), 'size_mismatch'),
        (replace(desc, sequence=desc.sequence + 1), 'bad_sequence'),
        (replace(desc, sequence=desc.sequence + 2), 'sequence_ahead'),
        (replace(desc, memory_kind=MEMORY_CUDA_IPC, cuda_ipc_handle=b'\0' * 64),
         'memory_kind_mismatch'),
        (replace(desc, checksum=desc.checksum + 1), 'checksum_mismatch'),
    ]


def test_every_validation_rule_rejects_and_counts_without_crashing(producer, consumer):
    desc = producer.try_write_pattern()
    variants = _invalid_variants(desc, producer.pool)
    for bad, reason in variants:
        assert consumer.handle(bad) == INVALID, reason
        assert consumer.invalid_reasons[reason] >= 1, (reason, dict(consumer.invalid_reasons))
    assert consumer.counts[INVALID] == len(variants)
    assert consumer.handle(desc) == VERIFIED, 'bad input leaves the consumer working'


def test_corrupted_payload_is_invalid_never_verified(producer, consumer, caplog):
    desc = producer.try_write_pattern()
    producer.pool.view(desc.offset, desc.nbytes)[7] ^= 0x40  # no sequence change: corruption
    with caplog.at_level('ERROR'):
        assert consumer.handle(desc) == INVALID
    assert consumer.invalid_reasons['checksum_mismatch'] == 1
    # The descriptor was right; the payload was not: the log line says which.
    assert 'invalid payload (checksum_mismatch' in caplog.text, caplog.text
    assert 'invalid descriptor' not in caplog.text


def test_overwritten_slot_is_dropped_before_reading(producer, consumer):
    stale = producer.try_write_pattern()
    for _ in range(3):
        producer.try_write_pattern()
    assert consumer.handle(stale) == DROPPED
    assert consumer.drop_reasons['overwritten_before_read'] == 1


def test_a_claimed_slot_is_not_rewritten_while_the_callback_reads_it(producer, consumer):
    desc = producer.try_write_pattern()
    seen = {}

    def producer_runs_meanwhile(array, _):
        with pytest.raises(SegmentError) as refused:
            producer.pool.begin_write(desc.slot)  # a writer tries this slot mid-read
        seen['reason'] = refused.value.reason
        seen['others'] = [producer.try_write_pattern().slot for _ in range(4)]
        seen['sum'] = int(array.view(np.uint32).astype(np.uint64).sum())

    consumer.process = producer_runs_meanwhile
    assert consumer.handle(desc) == VERIFIED, consumer.summary()
    assert seen['reason'] == 'slot_claimed'
    assert desc.slot not in seen['others'], 'latest writes the other slots instead'
    assert seen['sum'] == desc.checksum, 'the callback saw the frame as published'
    assert producer.try_write_pattern().slot == desc.slot, 'free again after the callback'


def test_a_writer_ignoring_claims_is_caught_by_the_sequence_lock(producer, consumer):
    desc = producer.try_write_pattern()

    def rogue_writer_meanwhile(array, _):
        producer.pool._sequences.store(desc.slot, desc.sequence + 1)  # odd: writing
        array[...] = 0

    consumer.process = rogue_writer_meanwhile
    assert consumer.handle(desc) == DROPPED
    assert consumer.drop_reasons['overwritten_while_reading'] == 1
    assert consumer.counts[VERIFIED] == 0


def test_restarted_producer_is_remapped(shm_name, consumer):
    first = FrameProducer(shm_name, 2, 'uint8', [64])
    old_desc = first.try_write_pattern()
    assert consumer.handle(old_desc) == VERIFIED
    first.close()
    second = FrameProducer(shm_name, 2, 'uint8', [64])
    try:
        assert consumer.handle(second.try_write_pattern()) == VERIFIED
        assert consumer.handle(old_desc) == INVALID, 'the old incarnation is gone'
        assert consumer.invalid_reasons['unknown_incarnation'] == 1
    finally:
        second.close()


def _consume(descriptors, results, frames):
    consumer = FrameConsumer()
    try:
        for _ in range(frames):
            consumer.handle(descriptors.get(timeout=60))
        results.put(dict(consumer.counts))
    finally:
        consumer.close()


@pytest.mark.parametrize('policy', ['latest', 'reliable'])
def test_two_processes_never_report_torn_data_as_good(shm_name, policy):
    """A producer racing a consumer in another process: frames verify or drop, never lie."""
    frames = 400
    ctx = multiprocessing.get_context('spawn')
    descriptors, results = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_consume, args=(descriptors, results, frames))
    child.start()
    producer = FrameProducer(shm_name, 2, 'uint8', [64 * 1024], policy=policy,
                             required_readers=1, release_timeout_s=30)
    try:
        sent = 0
        while sent < frames:
            desc = producer.try_write_pattern()
            if desc is not None:
                descriptors.put(desc)
                sent += 1
        counts = results.get(timeout=120)
        child.join(30)
    finally:
        producer.close()
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert counts['received'] == frames
    assert counts[INVALID] == 0, counts
    assert counts[VERIFIED] + counts[DROPPED] == frames, counts
    if policy == 'reliable':
        assert counts[VERIFIED] == frames, 'reliable: the producer waited for every release'
    assert not os.path.exists(SHM_DIR + shm_name)


def test_consumer_keeps_a_bounded_number_of_segments_mapped(shm_name, consumer):
    producers = [FrameProducer(f'{shm_name}_{index}', 1, 'uint8', [16])
                 for index in range(MAX_MAPPED_SEGMENTS + 2)]
    try:
        first = producers[0].try_write_pattern()
        assert consumer.handle(first) == VERIFIED
        for producer in producers[2:]:
            assert consumer.handle(producer.try_write_pattern()) == VERIFIED
            assert consumer.handle(producers[0].try_write_pattern()) == VERIFIED  # kept in use
        assert len(consumer._segments) == MAX_MAPPED_SEGMENTS
        assert producers[0].pool.name in consumer._segments, 'the busy one stays mapped'
        assert consumer.handle(producers[1].try_write_pattern()) == VERIFIED, 'remapped'
    finally:
        for producer in producers:
            producer.close()


def test_cpu_consumer_refuses_device_memory_slots_without_crashing(shm_name, consumer):
    pool = SlotPool.create(shm_name, 1, 64, memory_kind=MEMORY_CUDA_IPC)
    try:
        pool.begin_write(0)
        desc = Descriptor(shm_name=shm_name, incarnation=pool.incarnation, slot=0,
                          sequence=pool.end_write(0), offset=0, nbytes=64, dtype='|u1',
                          shape=[64], memory_kind=MEMORY_CUDA_IPC, cuda_ipc_handle=b'\1' * 64)
        assert consumer.handle(desc) == INVALID
        assert consumer.invalid_reasons['needs_gpu'] == 1
    finally:
        pool.close()


def test_pool_is_unlinked_when_producer_closes(shm_name):
    stream = FrameProducer(shm_name, 1, 'uint8', [1])
    assert isinstance(stream.pool, SlotPool)
    stream.close()
    assert not os.path.exists(SHM_DIR + shm_name)


def test_descriptors_that_never_arrive_are_counted_missed(producer, consumer):
    """A gap in a producer's sequences (a descriptor lost before the consumer) is counted."""
    sent = [producer.try_write_pattern() for _ in range(6)]
    for desc in sent[:2] + sent[4:]:  # the third and fourth never arrive
        assert consumer.handle(desc) in (VERIFIED, DROPPED)
    assert consumer.counts['missed'] == 2, consumer.summary()
    assert consumer.summary().split()[7] == 'missed=2'
    consumer.handle(sent[5])  # the same descriptor again: no gap
    assert consumer.counts['missed'] == 2, consumer.summary()


def test_a_reliable_producer_waits_for_the_readers_it_expects_to_attach(shm_name, consumer):
    producer = FrameProducer(shm_name, 2, 'uint8', [16], policy='reliable',
                             release_timeout_s=60.0)
    try:
        producer.expect_readers(1, 60.0)  # matched on DDS, not attached: attaches with frame 0
        first = [producer.try_write_pattern() for _ in range(2)]
        assert all(first), 'never-written slots need no reader'
        assert producer.try_write_pattern() is None, 'slot 0 reused before its reader came'
        assert [consumer.handle(desc) for desc in first] == [VERIFIED, VERIFIED]
        assert producer.try_write_pattern() is not None
    finally:
        producer.close()


def test_an_expected_reader_that_never_attaches_costs_one_attach_timeout(shm_name):
    producer = FrameProducer(shm_name, 2, 'uint8', [16], policy='reliable',
                             release_timeout_s=60.0)
    try:
        producer.expect_readers(1, 0.05)  # e.g. `ros2 topic echo`: matched, never attaches
        assert all(producer.try_write_pattern() for _ in range(2))
        assert producer.try_write_pattern() is None, 'slot 0 reused at once'
        deadline = time.monotonic() + 30.0
        while producer.try_write_pattern() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        assert producer.attach_timeouts == 1
        assert all(producer.try_write_pattern() for _ in range(10)), 'it waited again'
        assert producer.attach_timeouts == 1
        # Its own timeout, not the release timeout (60 s here): nothing was released late.
        assert producer.pool.counters['release_timeouts'] == 0
    finally:
        producer.close()
