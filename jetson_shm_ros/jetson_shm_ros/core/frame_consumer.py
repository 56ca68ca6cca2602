"""
FrameConsumer: what a consumer does per descriptor, without ROS.

Validate, map each segment once, claim the slot, verify, hand the frame to a callback, release,
and count. The public API (ros.subscription), the nodes and the ROS-free Cyclone DDS peer all
read frames through it, so the protocol exists exactly once.
"""

from collections import Counter
from typing import Callable, Dict, Optional

from jetson_shm_ros.core.attachment import AttachedSegment
from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.descriptor import Descriptor, MEMORY_KIND_NAMES, validate_static
from jetson_shm_ros.core.errors import DescriptorError, SegmentError, ShmRosError
from jetson_shm_ros.core.logs import get_logger

_log = get_logger('jetson_shm_ros.frames')

# Segments a consumer keeps mapped at once (one per producer it listens to).
MAX_MAPPED_SEGMENTS = 8
# Invalid reasons that fault the payload, not the descriptor (logged as 'invalid payload').
PAYLOAD_REASONS = frozenset({'checksum_mismatch'})

VERIFIED = 'verified'
UNVERIFIED = 'unverified'
DROPPED = 'dropped'
INVALID = 'invalid'
# The consumer's summary line, in this order (tools parse its first four fields).
# missed: descriptors a producer published that never arrived here (a gap in its sequences:
# a DDS keep-last queue that overflowed, e.g. under a slow executor).
SUMMARY_COUNTS = ('received', VERIFIED, DROPPED, INVALID, UNVERIFIED, 'in_place_bytes',
                  'copied_bytes', 'missed')


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
                self._count_gap(segment, desc.sequence)

    def _count_gap(self, segment: AttachedSegment, sequence: int) -> None:
        """Count the descriptors between the last one seen and this one as missed."""
        # Frame k is published with sequence 2k + 2, every frame of a segment in order.
        if segment.last_seen and sequence > segment.last_seen + 2:
            self.counts['missed'] += (sequence - segment.last_seen) // 2 - 1
        segment.last_seen = max(segment.last_seen, sequence)

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
            what = 'payload' if reason in PAYLOAD_REASONS else 'descriptor'
            _log.error('invalid %s (%s, seen %d times) for %r slot %s: %s', what, reason, seen,
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

    def segment_policy(self, shm_name: str) -> Optional[str]:
        """Return the policy ('latest', 'reliable') of a mapped segment, None if not mapped."""
        segment = self._segments.get(shm_name)
        return segment.policy if segment is not None else None

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
