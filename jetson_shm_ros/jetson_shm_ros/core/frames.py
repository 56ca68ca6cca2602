"""
Frames over a slot pool: what a producer and a consumer do per frame, without ROS.

The ROS nodes and the ROS-free Cyclone DDS peer both wrap these two classes, so the
protocol (sequence lock, validation, release, counters) exists exactly once.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

from jetson_shm_ros.core.attachment import AttachedSegment
from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.descriptor import Descriptor, MEMORY_KIND_NAMES, validate_static
from jetson_shm_ros.core.errors import DescriptorError, SegmentError, ShmRosError
from jetson_shm_ros.core.image_encodings import check_encoding
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.core.payload import MAX_DIMS, normalize_dtype, payload_nbytes
from jetson_shm_ros.core.slot_pool import SlotPool

_log = get_logger('jetson_shm_ros.stream')

# Segments a consumer keeps mapped at once (one per producer it listens to).
MAX_MAPPED_SEGMENTS = 8

VERIFIED = 'verified'
UNVERIFIED = 'unverified'
DROPPED = 'dropped'
INVALID = 'invalid'
# The consumer's summary line, in this order (tools parse its first four fields).
SUMMARY_COUNTS = ('received', VERIFIED, DROPPED, INVALID, UNVERIFIED, 'in_place_bytes',
                  'copied_bytes')


@dataclass(frozen=True)
class SlotWrite:
    """A slot being written: FrameProducer.begin() opens it, commit() or abort() closes it."""

    slot: int
    offset: int


class FrameProducer:
    """Owns a slot pool and turns written slots into descriptors."""

    def __init__(self, shm_name: str, slot_count: int, dtype: str, shape: Sequence[int],
                 policy: str = 'latest', checksum: bool = True, backend=None,
                 release_timeout_s: float = 1.0, required_readers: int = 0, encoding: str = ''):
        """
        Create the segment (replacing a stale one) and prepare the backend.

        :param shm_name: POSIX segment name
        :param slot_count: frames in flight
        :param dtype: element type, any NumPy spelling of an allowed dtype
        :param shape: array shape of one frame
        :param policy: 'latest' or 'reliable'
        :param checksum: compute and publish the payload checksum
        :param backend: a backend from select_backend(); CPU when None
        :param release_timeout_s: reliable policy: longest wait for a reader
        :param required_readers: reliable policy: readers to wait for before reusing a slot
        :param encoding: ROS image encoding of the frames ('rgb8', ...), or '' for a tensor
        :raises DescriptorError: for a bad dtype, shape or encoding
        :raises SegmentError: when the segment cannot be created
        """
        try:
            self.dtype = normalize_dtype(dtype)
        except ValueError as error:
            raise DescriptorError('bad_dtype', str(error)) from None
        self.shape = [int(dim) for dim in shape]
        if not 1 <= len(self.shape) <= MAX_DIMS or min(self.shape) <= 0:
            raise DescriptorError('bad_shape', f'shape {self.shape} must have 1..{MAX_DIMS} '
                                  'positive sizes')
        check_encoding(encoding, self.dtype, self.shape)
        self.encoding = encoding
        self.nbytes = payload_nbytes(self.dtype, self.shape)
        self.with_checksum = checksum
        self.required_readers = required_readers
        self.backend = backend or CpuBackend()
        self.pool = SlotPool.create(shm_name, slot_count, self.nbytes, policy,
                                    memory_kind=self.backend.memory_kind,
                                    release_timeout_s=release_timeout_s)
        try:
            self.backend.prepare(self.pool)
        except BaseException:
            self.pool.close()
            raise
        self.frames_published = 0
        self.waits = 0
        self.aborted = 0

    def begin(self) -> Optional['SlotWrite']:
        """
        Start writing the next frame: the slot is marked as being written.

        :return: the open write (finish it with commit() or abort()), or None when no slot is
            free now (reliable policy waiting for a release)
        """
        slot = self.pool.acquire(self.required_readers)
        if slot is None:
            self.waits += 1
            return None
        offset = self.pool.slot_bounds(slot)[0]
        self.pool.begin_write(slot)
        return SlotWrite(slot, offset)

    def array(self, write: 'SlotWrite'):
        """Return the open write's slot as a writable NumPy or CuPy array."""
        return self.backend.array(self.pool, write.offset, self.nbytes, self.dtype, self.shape)

    def commit(self, write: 'SlotWrite', stamp_ns: int = 0, frame_id: str = '') -> Descriptor:
        """Finish an open write: wait for the device, checksum, publish the sequence; describe."""
        checksum = self.backend.checksum(self.pool, write.offset, self.nbytes) \
            if self.with_checksum else 0
        # The sequence turns even only after the device finished writing.
        self.backend.synchronize()
        sequence = self.pool.end_write(write.slot)
        self.frames_published += 1
        ipc_handle, event_handle = self.backend.ipc_handles(self.pool)
        return Descriptor(
            shm_name=self.pool.name, incarnation=self.pool.incarnation, slot=write.slot,
            sequence=sequence, offset=write.offset, nbytes=self.nbytes, dtype=self.dtype,
            shape=list(self.shape), checksum=checksum, checksum_valid=self.with_checksum,
            memory_kind=self.pool.memory_kind, cuda_ipc_handle=ipc_handle,
            cuda_event_handle=event_handle, stamp_ns=stamp_ns, frame_id=frame_id,
            encoding=self.encoding)

    def abort(self, write: 'SlotWrite') -> None:
        """Give an open write up: nothing is published and the slot can be written again."""
        self.backend.synchronize()
        self.pool.abort_write(write.slot)
        self.aborted += 1

    def try_write(self, writer: Callable[[object], None], stamp_ns: int = 0,
                  frame_id: str = '') -> Optional[Descriptor]:
        """
        Let `writer` fill the next slot, then describe it.

        :param writer: called with a writable array (NumPy or CuPy) of the frame's dtype/shape
        :return: the descriptor to publish, or None when the reliable policy says wait
        """
        return self._produce(lambda write: writer(self.array(write)), stamp_ns, frame_id)

    def try_write_pattern(self, stamp_ns: int = 0, frame_id: str = '') -> Optional[Descriptor]:
        """Write the deterministic test pattern of the next frame number (for demos/tests)."""
        frame = self.frames_published
        return self._produce(lambda write: self.backend.fill_pattern(
            self.pool, write.offset, self.nbytes, frame), stamp_ns, frame_id)

    def _produce(self, fill: Callable[['SlotWrite'], None], stamp_ns: int,
                 frame_id: str) -> Optional[Descriptor]:
        write = self.begin()
        if write is None:
            return None
        try:
            fill(write)
        except BaseException:
            self.abort(write)
            raise
        return self.commit(write, stamp_ns, frame_id)

    def all_released(self) -> bool:
        """Tell whether no live reader still holds a published frame."""
        return self.pool.all_released()

    def close(self) -> None:
        """Release GPU resources, then unlink and unmap the segment."""
        try:
            self.backend.forget(self.pool)
            self.backend.close()
        finally:
            self.pool.close()


class FrameConsumer:
    """Validates descriptors, maps segments once, verifies, releases, and counts."""

    def __init__(self, backend=None,
                 process: Optional[Callable[[object, Descriptor], None]] = None,
                 allow_group_access: bool = False, verify: bool = True):
        """
        Prepare an empty consumer.

        :param backend: a backend from select_backend(); CPU when None
        :param process: optional callback given each valid frame's array (NumPy or CuPy) and
            its descriptor while the slot is held, after the checksum matched; its exceptions
            propagate to the caller of handle() (counted as callback_errors, never as invalid)
        :param allow_group_access: accept segments that the owner's group may write
        :param verify: check the payload checksum (when the producer sent one) before
            `process` sees the frame; False: hand frames over unread (counted unverified)
        """
        self.backend = backend or CpuBackend()
        self.process = process
        self.verify = verify
        self.allow_group_access = allow_group_access
        self.counts: Counter = Counter(
            dict.fromkeys(SUMMARY_COUNTS, 0))
        self.invalid_reasons: Counter = Counter()
        self.drop_reasons: Counter = Counter()
        self.evictions = 0
        self.callback_errors = 0
        self._segments: Dict[str, AttachedSegment] = {}

    def handle(self, desc: Descriptor) -> str:
        """
        Process one descriptor; never raises for bad input.

        :return: VERIFIED, UNVERIFIED, DROPPED or INVALID
        """
        self.counts['received'] += 1
        try:
            validate_static(desc)
            segment = self._segment_for(desc)
            self._validate_against(segment, desc)
        except (DescriptorError, SegmentError) as error:
            return self._invalid(desc, error.reason, str(error))
        if not segment.registered:
            if segment.evicted:
                self.evictions += 1
                _log.warning('%s: the producer evicted this reader (too slow?); registering '
                             'again', desc.shm_name)
            try:
                segment.register(desc.sequence)
            except SegmentError as error:
                return self._invalid(desc, error.reason, str(error))
        claimed, frame = False, None
        try:
            try:
                status = self._claim(segment, desc)
                claimed = status is None
                if claimed:
                    status = self._read(segment, desc)
                    if self.process is not None and status in (VERIFIED, UNVERIFIED):
                        frame = self.backend.array(segment, desc.offset, desc.nbytes,
                                                   desc.dtype, desc.shape)
            except ShmRosError as error:  # SegmentError, GpuError: count it, keep consuming
                return self._invalid(desc, error.reason, str(error))
            # Outside the except above: the user's errors are theirs, never "invalid input".
            return status if frame is None else self._deliver(segment, desc, status, frame)
        finally:
            if claimed:
                segment.unclaim(desc.slot)
            # Never release a sequence the slot does not hold yet: a forged descriptor must not
            # let a reliable producer overwrite frames this reader has not been sent.
            if desc.sequence <= segment.sequence(desc.slot):
                segment.release(desc.slot, desc.sequence)

    def _claim(self, segment: AttachedSegment, desc: Descriptor) -> Optional[str]:
        """
        Claim the descriptor's slot: the producer will not write it until handle() unclaims.

        The checksum and the callback thus see the frame untouched.

        :return: None when claimed; DROPPED or INVALID (nothing claimed) otherwise
        """
        current = segment.sequence(desc.slot)
        if current == 0:  # the producer gave up a write into this slot
            return self._drop('overwritten_before_read')
        if current < desc.sequence:
            return self._invalid(desc, 'sequence_ahead', f'slot {desc.slot} holds sequence '
                                 f'{current}, older than the descriptor sequence {desc.sequence}')
        if current != desc.sequence or not segment.claim(desc.slot, desc.sequence):
            return self._drop('overwritten_before_read')
        return None

    def _read(self, segment: AttachedSegment, desc: Descriptor) -> str:
        """Verify a claimed slot's payload: VERIFIED, UNVERIFIED, DROPPED or INVALID."""
        checksum = self.backend.checksum(segment, desc.offset, desc.nbytes) \
            if desc.checksum_valid and self.verify else None
        # Sequence lock, a second line of defence: a writer that ignored the claim shows here.
        if not segment.sequence_unchanged(desc.slot, desc.sequence):
            return self._drop('overwritten_while_reading')
        if not segment.owner_alive():
            # A dead producer's frames are stale, whole or not: never counted as verified.
            return self._drop('producer_gone')
        if checksum is not None and checksum != desc.checksum:
            return self._invalid(desc, 'checksum_mismatch', f'payload sums to {checksum}, '
                                 f'descriptor says {desc.checksum}')
        if checksum is not None or self.process is not None:
            # Observable zero copy: bytes read where the producer wrote them, or copied first.
            self.counts['copied_bytes' if self.backend.mode == 'copy' else 'in_place_bytes'] += \
                desc.nbytes
        status = UNVERIFIED if checksum is None else VERIFIED
        self.counts[status] += 1
        return status

    def _deliver(self, segment: AttachedSegment, desc: Descriptor, status: str, frame) -> str:
        """Hand a checked, claimed frame to `process`; its exceptions propagate (as in rclpy)."""
        try:
            self.process(frame, desc)
        except BaseException:
            self.callback_errors += 1
            raise
        finally:
            # GPU work process() queued must be done before the claim ends.
            self.backend.synchronize()
        if not segment.sequence_unchanged(desc.slot, desc.sequence):
            # A writer that ignored the claim rewrote the slot while the callback read it.
            self.counts[status] -= 1
            return self._drop('overwritten_while_reading')
        return status

    def _segment_for(self, desc: Descriptor) -> AttachedSegment:
        segment = self._segments.get(desc.shm_name)
        if segment is not None and segment.incarnation == desc.incarnation:
            self._segments[desc.shm_name] = self._segments.pop(desc.shm_name)  # most recent
            return segment
        fresh = AttachedSegment.attach(desc.shm_name, self.allow_group_access)
        if fresh.incarnation != desc.incarnation:
            actual = fresh.incarnation
            fresh.close()
            raise SegmentError('unknown_incarnation', f'{desc.shm_name} is incarnation '
                               f'{actual:#x}, descriptor names {desc.incarnation:#x} '
                               '(stale descriptor or recycled name)')
        try:
            # Once per segment and process: pinning or opening IPC memory is slow.
            self.backend.prepare(fresh, desc)
        except BaseException:
            fresh.close()
            raise
        if segment is not None:
            _log.info('%s was re-created by a new producer; remapping', desc.shm_name)
            self._drop_segment(segment)
        self._segments[desc.shm_name] = fresh
        if len(self._segments) > MAX_MAPPED_SEGMENTS:
            # Descriptors naming ever new segments must not exhaust memory or pinned pages.
            oldest = next(iter(self._segments))
            _log.info('unmapping %s, the least recently used of %d mapped segments', oldest,
                      len(self._segments))
            self._drop_segment(self._segments.pop(oldest))
        _log.info('mapped %s: %d slots x %d B, policy %s, %s, producer pid %d', desc.shm_name,
                  fresh.slot_count, fresh.slot_size, fresh.policy,
                  MEMORY_KIND_NAMES[fresh.memory_kind], fresh.owner_pid)
        return fresh

    @staticmethod
    def _validate_against(segment: AttachedSegment, desc: Descriptor) -> None:
        segment.check_size()  # before anything touches the mapping
        if desc.memory_kind != segment.memory_kind:
            raise DescriptorError('memory_kind_mismatch', f'descriptor says '
                                  f'{MEMORY_KIND_NAMES[desc.memory_kind]}, segment holds '
                                  f'{MEMORY_KIND_NAMES[segment.memory_kind]}')
        if desc.slot >= segment.slot_count:
            raise DescriptorError('slot_out_of_range', f'slot {desc.slot} >= slot count '
                                  f'{segment.slot_count}')
        start, end = segment.slot_bounds(desc.slot)
        if not start <= desc.offset <= desc.offset + desc.nbytes <= end:
            raise DescriptorError('out_of_slot', f'bytes [{desc.offset}, '
                                  f'{desc.offset + desc.nbytes}) leave slot {desc.slot} '
                                  f'[{start}, {end})')

    def _invalid(self, desc: Descriptor, reason: str, detail: str) -> str:
        self.counts[INVALID] += 1
        self.invalid_reasons[reason] += 1
        seen = self.invalid_reasons[reason]
        # First ones in full, then a reminder now and then: a bad peer must not flood the log.
        if seen <= 5 or seen % 100 == 0:
            _log.error('invalid descriptor (%s, seen %d times) for %r slot %s: %s', reason, seen,
                       desc.shm_name, desc.slot, detail)
        return INVALID

    def _drop(self, reason: str) -> str:
        self.counts[DROPPED] += 1
        self.drop_reasons[reason] += 1
        return DROPPED

    def summary(self) -> str:
        """Return the one-line summary: received=N verified=N dropped=N invalid=N ..."""
        line = ' '.join(f'{key}={self.counts[key]}' for key in SUMMARY_COUNTS)
        if self.invalid_reasons:
            line += ' invalid_reasons=' + ','.join(
                f'{key}:{value}' for key, value in sorted(self.invalid_reasons.items()))
        return line

    def mapped_segments(self) -> list:
        """Names of the segments mapped now (least recently used first)."""
        return list(self._segments)

    def _drop_segment(self, segment: AttachedSegment) -> None:
        try:
            self.backend.forget(segment)
        finally:
            segment.close()

    def close(self) -> None:
        """Unpin and unmap every segment, then release the backend."""
        for segment in self._segments.values():
            self._drop_segment(segment)
        self._segments.clear()
        self.backend.close()
