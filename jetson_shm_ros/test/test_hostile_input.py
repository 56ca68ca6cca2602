"""
Hostile input, property-based: generated descriptors and a corrupted segment, a real consumer.

Hypothesis generates descriptors that break every rule (names with '/', '..', NUL, 300
characters; offsets and lengths past the end or beyond 64 bits; zero, negative and huge shapes;
unknown dtypes and encodings; wrong incarnations; sequences going backwards; CUDA handles of
the wrong length) and, separately, corrupts the live segment under an attached consumer. The
consumer runs on the CPU backend, wrapped so that every byte range it reads is checked against
the slot the producer really wrote. Runs are derandomized (the same examples every run) and keep
no example database.
"""

from collections import Counter
from dataclasses import replace
from itertools import combinations
import os
import tempfile

from hypothesis import given, HealthCheck, Phase, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.descriptor import CUDA_IPC_HANDLE_BYTES
from jetson_shm_ros.core.frames import (
    DROPPED, FrameConsumer, FrameProducer, INVALID, UNVERIFIED, VERIFIED)
from jetson_shm_ros.core.image_encodings import supported_encodings
from jetson_shm_ros.core.payload import ALLOWED_DTYPES, checksum_words
from jetson_shm_ros.core.segment import HEADER_BYTES, SHM_DIR
import numpy as np

# Hypothesis caches what it learns from the source in a folder: keep it out of the checkout.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), 'jetson_shm_ros_hypothesis'))

DESCRIPTORS = 10_000
# Hypothesis costs about a millisecond per example here: batches keep 10,000 descriptors cheap.
BATCH = 20
CORRUPTION_EXAMPLES = 400
SETTINGS = {'derandomize': True, 'deadline': None, 'database': None,
            'phases': [Phase.generate, Phase.shrink], 'suppress_health_check': list(HealthCheck)}
U64 = 2**64
FRAME_SHAPE = [4, 16]  # 64 uint8: small, so 10,000 frames take seconds


class BoundsCheckingBackend(CpuBackend):
    """The CPU backend; fails the test if a read leaves the slot the producer wrote."""

    def __init__(self, slots):
        super().__init__()
        self.slots = slots  # shm name -> {slot start: slot end}, from the producer's layout
        self.reads = 0

    def _check(self, segment, offset, nbytes):
        ends = self.slots.get(segment.name, {})
        start = max((s for s in ends if s <= offset), default=None)
        assert start is not None and offset + nbytes <= ends[start], \
            f'read [{offset}, {offset + nbytes}) of {segment.name} is outside every slot'
        self.reads += 1

    def array(self, segment, offset, nbytes, dtype, shape):
        self._check(segment, offset, nbytes)
        return super().array(segment, offset, nbytes, dtype, shape)

    def checksum(self, segment, offset, nbytes):
        self._check(segment, offset, nbytes)
        return super().checksum(segment, offset, nbytes)


def _slot_map(producer):
    pool = producer.pool
    return {pool.name: dict(pool.slot_bounds(slot) for slot in range(pool.slot_count))}


def _file_checksum(desc) -> int:
    """Sum the payload named by `desc`, read from the file, not through the consumer."""
    fd = os.open(SHM_DIR + desc.shm_name, os.O_RDONLY)
    try:
        return checksum_words(np.frombuffer(os.pread(fd, desc.nbytes, desc.offset), np.uint8))
    finally:
        os.close(fd)


_EVIL_NAMES = ['', '/', '//', '/.', '/..', '/../etc/passwd', '/a/b', 'no_slash', '/x\0y',
               '/' + 'a' * 300, '/' + 'b' * 201, '/\u00e9t\u00e9', '/ space', '/-dash', '\0']
_EVIL_DTYPES = ['O', 'object', '<U4', 'V8', '>u4', '>f8', '<c16', 'float32', 'uint8', '', '|V0',
                '<M8[ns]', 'i4,i4', '\0']


def _integers_near(*points):
    return st.one_of(*[st.integers(point - 3, point + 3) for point in points])


def _field_strategies():
    anything_u64 = st.one_of(st.integers(0, U64 - 1), _integers_near(0, 2**32, 2**63, U64),
                             st.integers(-2**70, 2**70))
    return {
        'shm_name': st.one_of(st.sampled_from(_EVIL_NAMES), st.text(max_size=6),
                              st.text(alphabet='/.\0a_', max_size=8)),
        'name_suffix': st.sampled_from(['/..', '\0', '/x', '.', 'x' * 300]),
        'incarnation': st.one_of(anything_u64, st.just('flip')),
        'slot': st.one_of(st.integers(-2, 5), _integers_near(2**32), st.integers(-2**40, 2**40)),
        'sequence_delta': st.integers(-40, 40),
        'sequence': anything_u64,
        'offset_delta': st.integers(-20_000, 20_000),
        'offset': anything_u64,
        'nbytes': st.one_of(anything_u64, st.integers(0, 10_000)),
        'dtype': st.one_of(st.sampled_from(sorted(ALLOWED_DTYPES) + _EVIL_DTYPES),
                           st.text(max_size=6)),
        'shape': st.one_of(st.lists(st.integers(0, 2**32 - 1), max_size=10),
                           st.lists(st.integers(-70, 70), max_size=9),
                           st.sampled_from([[], [0], [64], [8, 8], [2**32 - 1] * 8, [2, 2, 16],
                                            [-4, -16], [2**32 + 64]])),
        'encoding': st.one_of(st.sampled_from(supported_encodings() + ['RGB8', 'rgb', '8UC5']),
                              st.text(max_size=6)),
        'checksum': anything_u64,
        'checksum_valid': st.booleans(),
        'memory_kind': st.one_of(st.integers(0, 255), st.integers(-3, 300)),
        # A CUDA IPC descriptor for a host segment; the handle of the right or a wrong length.
        'cuda': st.one_of(st.binary(max_size=130),
                          st.binary(min_size=CUDA_IPC_HANDLE_BYTES,
                                    max_size=CUDA_IPC_HANDLE_BYTES)),
        'cuda_ipc_handle': st.binary(max_size=130),
        'cuda_event_handle': st.binary(max_size=130),
    }


FIELDS = _field_strategies()
# Which fields one descriptor changes: each alone, and every pair (one draw picks the set).
FIELD_SETS = [(name,) for name in sorted(FIELDS)] + list(combinations(sorted(FIELDS), 2))


@st.composite
def descriptor_changes(draw):
    """Strategy: one or two fields to change in a good descriptor (some as deltas)."""
    return {name: draw(FIELDS[name]) for name in draw(st.sampled_from(FIELD_SETS))}


def mutate(good, changes):
    """Apply generated changes (deltas are relative to the good descriptor)."""
    fields = dict(changes)
    if 'cuda' in fields:
        fields['memory_kind'], fields['cuda_ipc_handle'] = 1, fields.pop('cuda')
    if 'name_suffix' in fields:
        fields['shm_name'] = fields.get('shm_name', good.shm_name) + fields.pop('name_suffix')
    if fields.get('incarnation') == 'flip':
        fields['incarnation'] = good.incarnation ^ 1
    if 'sequence_delta' in fields:
        fields.setdefault('sequence', good.sequence + 2 * fields.pop('sequence_delta'))
        fields.pop('sequence_delta', None)
    if 'offset_delta' in fields:
        fields.setdefault('offset', good.offset + fields.pop('offset_delta'))
        fields.pop('offset_delta', None)
    return replace(good, **fields)


def _outcome_is_explained(consumer, before, result, desc):
    """Every rejection adds exactly one reason; a verified frame really has its checksum."""
    invalid_before, dropped_before = before
    if result == INVALID:
        assert sum(consumer.invalid_reasons.values()) == invalid_before + 1
        assert all(reason for reason in consumer.invalid_reasons)
    elif result == DROPPED:
        assert sum(consumer.drop_reasons.values()) == dropped_before + 1
    elif result == VERIFIED:
        assert desc.checksum_valid and _file_checksum(desc) == desc.checksum
    else:
        assert result == UNVERIFIED and not desc.checksum_valid


def _tallies(consumer):
    return sum(consumer.invalid_reasons.values()), sum(consumer.drop_reasons.values())


def test_generated_descriptors_never_crash_and_never_read_outside_the_slot(shm_name):
    producer = FrameProducer(shm_name, 2, 'uint8', FRAME_SHAPE, policy='latest')
    backend = BoundsCheckingBackend(_slot_map(producer))
    # A callback makes the consumer build a typed array too (dtype and shape from the input).
    consumer = FrameConsumer(backend, process=lambda frame, desc: frame.sum())
    examples = []

    @settings(max_examples=DESCRIPTORS // BATCH, **SETTINGS)
    @given(batch=st.lists(descriptor_changes(), min_size=BATCH, max_size=BATCH))
    def check(batch):
        for changes in batch:
            good = producer.try_write_pattern()
            hostile = mutate(good, changes)
            before = _tallies(consumer)
            result = consumer.handle(hostile)
            _outcome_is_explained(consumer, before, result, hostile)
            assert consumer.handle(good) == VERIFIED, consumer.summary()
            examples.append(result)

    try:
        check()
    finally:
        consumer.close()
        producer.close()
    assert len(examples) >= DESCRIPTORS
    assert consumer.counts[VERIFIED] >= DESCRIPTORS, consumer.summary()
    # The generator reached every kind of rejection, not only the first check.
    expected = {'bad_name', 'out_of_range', 'bad_memory_kind', 'bad_ipc_handle',
                'bad_event_handle', 'bad_sequence', 'bad_dtype', 'bad_shape', 'size_mismatch',
                'bad_encoding', 'no_segment', 'unknown_incarnation', 'memory_kind_mismatch',
                'slot_out_of_range', 'out_of_slot', 'sequence_ahead'}
    missing = expected - set(consumer.invalid_reasons)
    assert not missing, f'never generated: {missing}; saw {dict(consumer.invalid_reasons)}'
    assert consumer.drop_reasons['overwritten_before_read'] > 0, dict(consumer.drop_reasons)
    assert backend.reads > 0


def corruptions(segment_bytes, control_bytes, slot_count):
    """Strategy: one way to damage a live segment, as a same-user writer or a bug could."""
    reader_table = (HEADER_BYTES + 8 * slot_count, control_bytes)
    return st.one_of(
        st.tuples(st.just('header'), st.integers(0, HEADER_BYTES - 1),
                  st.binary(min_size=1, max_size=16)),
        st.tuples(st.just('magic'), st.just(0), st.binary(min_size=8, max_size=8)),
        st.tuples(st.just('version'), st.just(8),
                  st.integers(0, 2**32 - 1).map(lambda v: v.to_bytes(4, 'little'))),
        st.tuples(st.just('sequences'), st.integers(0, slot_count - 1).map(
            lambda slot: HEADER_BYTES + 8 * slot), st.binary(min_size=8, max_size=8)),
        st.tuples(st.just('readers'), st.integers(*reader_table),
                  st.binary(min_size=1, max_size=control_bytes - reader_table[0])),
        st.tuples(st.just('truncate'), st.integers(0, segment_bytes - 1), st.just(b'')),
    )


def test_corrupted_segment_under_an_attached_consumer(shm_name):
    producer = FrameProducer(shm_name, 3, 'uint8', FRAME_SHAPE, policy='latest')
    pool = producer.pool
    backend = BoundsCheckingBackend(_slot_map(producer))
    consumer = FrameConsumer(backend)
    path = SHM_DIR + shm_name
    fd = os.open(path, os.O_RDWR)
    kinds, fresh_reasons = set(), Counter()

    @settings(max_examples=CORRUPTION_EXAMPLES, **SETTINGS)
    @given(damage=corruptions(pool.size, pool.data_offset, pool.slot_count),
           attach_fresh=st.booleans())
    def check(damage, attach_fresh):
        good = producer.try_write_pattern()
        assert consumer.handle(good) == VERIFIED, consumer.summary()
        following = producer.try_write_pattern()
        control = os.pread(fd, pool.data_offset, 0)
        kind, where, data = damage
        if kind == 'truncate':
            os.ftruncate(fd, where)
        else:
            os.pwrite(fd, data, where)
        kinds.add(kind)
        # The attached consumer, and one that attaches only now, face the damage.
        readers = [consumer] + ([FrameConsumer(backend)] if attach_fresh else [])
        for reader in readers:
            before = _tallies(reader)
            result = reader.handle(following)
            if result == VERIFIED:
                assert _file_checksum(following) == following.checksum
            _outcome_is_explained(reader, before, result, following)
        if attach_fresh:
            fresh_reasons.update(readers[1].invalid_reasons)
            readers[1].close()
        # Repair (the producer keeps its own layout), then good frames verify again.
        os.ftruncate(fd, pool.size)
        os.pwrite(fd, control, 0)
        assert consumer.handle(producer.try_write_pattern()) == VERIFIED, consumer.summary()

    try:
        check()
    finally:
        os.close(fd)
        consumer.close()
        producer.close()
    assert kinds == {'header', 'magic', 'version', 'sequences', 'readers', 'truncate'}
    assert consumer.invalid_reasons['truncated'] > 0, dict(consumer.invalid_reasons)
    # Wrong magic, version or layout: a consumer attaching now refuses the segment.
    assert fresh_reasons['bad_segment'] > 0, dict(fresh_reasons)
