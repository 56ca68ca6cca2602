"""
FrameProducer: what a producer does per frame, without ROS.

It owns the slot pool: takes the next slot, lets a writer fill it (the test pattern, a copy, or
a caller's code through a loan), checksums it, and turns it into a Descriptor. The public API
(ros.publisher), the nodes and the ROS-free Cyclone DDS peer all write frames through it.
"""

from dataclasses import dataclass
import time
from typing import Callable, Optional, Sequence

from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.descriptor import Descriptor
from jetson_shm_ros.core.errors import DescriptorError
from jetson_shm_ros.core.image_encodings import check_encoding
from jetson_shm_ros.core.logs import get_logger
from jetson_shm_ros.core.payload import MAX_DIMS, normalize_dtype, payload_nbytes
from jetson_shm_ros.core.slot_pool import SlotPool

_log = get_logger('jetson_shm_ros.frames')


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
        self._expected_readers = 0
        self._expected_timeout_s = 0.0
        self._expected_deadline: Optional[float] = None
        self.attach_timeouts = 0

    def expect_readers(self, count: int, timeout_s: float) -> None:
        """
        Reliable policy: wait for `count` readers before the first reuse of a slot, once.

        For subscribers known to be there (matched on DDS) but not registered yet: a reader
        registers only when its first descriptor arrives, which can be after the producer
        went round its slots, so their first frames would be overwritten. The wait starts at
        the first reuse and lasts until `count` readers registered or `timeout_s` passed
        (logged, counted in `attach_timeouts`); then only `required_readers` counts again.
        Its own timeout, not the release timeout: a subscriber on another DDS vendor may get
        its first descriptor only with the writer's next periodic heartbeat (Fast DDS writer,
        Cyclone DDS reader: about 1 s after the match, doc/late-joiners.md).
        """
        self._expected_readers = count
        self._expected_timeout_s = timeout_s
        self._expected_deadline = None

    def _waiting_for_expected_readers(self) -> bool:
        """Tell whether the expected readers hold the next write back (expect_readers)."""
        attached = len(self.pool.readers())
        if attached >= self._expected_readers:
            self._expected_readers = 0  # they came: never wait again
            return False
        if not self.pool.next_slot_written():
            return False  # a fresh slot overwrites nothing
        now = time.monotonic()
        if self._expected_deadline is None:
            self._expected_deadline = now + self._expected_timeout_s
        if now < self._expected_deadline:
            return True
        _log.warning('%s: only %d of %d matched reader(s) attached within %.2f s; reusing '
                     'slots without them', self.pool.name, attached, self._expected_readers,
                     self._expected_timeout_s)
        self.attach_timeouts += 1
        self._expected_readers = 0
        return False

    def begin(self) -> Optional['SlotWrite']:
        """
        Start writing the next frame: the slot is marked as being written.

        :return: the open write (finish it with commit() or abort()), or None when no slot is
            free now (reliable policy waiting for a release or for the expected readers)
        """
        if self._expected_readers and self._waiting_for_expected_readers():
            self.waits += 1
            return None
        slot = self.pool.acquire(self.required_readers)
        if slot is None:
            self.waits += 1
            return None
        offset = self.pool.slot_bounds(slot)[0]
        # Once per frame, before the first byte is written (views do not check it).
        self.pool.check_size()
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
