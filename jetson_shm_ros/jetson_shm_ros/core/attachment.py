"""A consumer's mapping of a producer's segment, checked before any payload byte is read."""

import os
import threading
from typing import List, Optional, Tuple

from jetson_shm_ros.core.descriptor import MEMORY_KIND_NAMES, validate_shm_name
from jetson_shm_ros.core.errors import DescriptorError, SegmentError
from jetson_shm_ros.core.segment import (
    check_file, HEADER_DTYPE, layout, LAYOUT_VERSION, MAGIC, MAX_READERS, MAX_SLOTS,
    process_alive, process_start_time, READER_ACTIVE, READER_FREE, SegmentMapping, SHM_DIR,
    WORD_MASK, WRITER_BIT)
import numpy as np


class AttachedSegment(SegmentMapping):
    """A consumer's mapping of a producer's segment, checked before any payload byte is read."""

    def __init__(self, name: str, fd: int, size: int):
        super().__init__(name, fd, size)
        self._reader_index: Optional[int] = None
        # The newest sequence a consumer received a descriptor for (0: none yet).
        self.last_seen = 0
        # Claims per slot by this object's threads; the shared bit is set while any is held.
        self._held: List[int] = []
        self._claim_lock = threading.Lock()

    @classmethod
    def attach(cls, name: str, allow_group_access: bool = False) -> 'AttachedSegment':
        """
        Map an existing segment after checking its owner, mode, magic, version and layout.

        :raises SegmentError: naming what is wrong
        """
        try:
            validate_shm_name(name)
        except DescriptorError as error:
            raise SegmentError('bad_name', error.detail) from error
        path = SHM_DIR + name
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise SegmentError('no_segment', f'{path} does not exist (producer gone?)') from None
        except OSError as error:
            raise SegmentError('no_segment', f'cannot open {path}: {error.strerror}') from None
        try:
            info = os.fstat(fd)
            check_file(path, info, allow_group_access)
            raw = os.pread(fd, HEADER_DTYPE.itemsize, 0)
            header = np.frombuffer(raw, dtype=HEADER_DTYPE)[0]
            if header['magic'] != MAGIC or int(header['version']) != LAYOUT_VERSION:
                raise SegmentError('bad_segment', f'{path} has magic {bytes(header["magic"])!r} '
                                   f'version {int(header["version"])}; want {MAGIC!r} '
                                   f'version {LAYOUT_VERSION}')
            if int(header['owner_uid']) != info.st_uid:
                raise SegmentError('bad_owner', f'{path} header names uid '
                                   f'{int(header["owner_uid"])} but the file belongs to '
                                   f'{info.st_uid}')
            count, slot_size = int(header['slot_count']), int(header['slot_size'])
            kind = int(header['memory_kind'])
            if not 1 <= count <= MAX_SLOTS or kind not in MEMORY_KIND_NAMES or \
                    int(header['max_readers']) != MAX_READERS:
                raise SegmentError('bad_segment', f'{path} has an impossible header')
            expected = layout(count, slot_size, kind)
            if expected != (slot_size, int(header['data_offset']), info.st_size) or \
                    int(header['segment_bytes']) != info.st_size:
                raise SegmentError('bad_segment', f'{path}: header layout does not match its '
                                   f'{info.st_size} bytes')
            segment = cls(name, fd, info.st_size)
        except BaseException:
            os.close(fd)
            raise
        segment._bind_tables(np.frombuffer(raw, dtype=HEADER_DTYPE))  # the header checked above
        return segment

    def register(self, first_sequence: int) -> None:
        """
        Take a reader entry, releasing what this reader will never be sent.

        Slots whose current frame was published before `first_sequence` (the first descriptor
        this reader received) are released at once; later ones stay held until the descriptor
        for them arrives, so the producer cannot overwrite a frame that is on its way to us.
        Each AttachedSegment has its own entry (two subscriptions in one process do not share
        releases or claims); after an eviction it takes its own entry back.
        """
        me = self._owner()
        with self._lock():
            if self._owns_entry(me):
                index = self._reader_index
            else:
                index = self._free_entry()
                # Claims left by a dead previous owner of this entry are not ours.
                self._clear_claims(index)
                self._held = [0] * self.slot_count
            entry = self._readers[index]
            sequences = np.array([self._sequences.load(slot) for slot in range(self.slot_count)],
                                 dtype=np.uint64)
            released = np.where((sequences % 2 == 0) & (sequences < first_sequence), sequences, 0)
            entry['release'][:] = released
            entry['pid'], entry['start'] = me
            entry['evictions'] = 0
            entry['state'] = READER_ACTIVE
        self._reader_index = index

    @staticmethod
    def _owner() -> Tuple[int, int]:
        return os.getpid(), process_start_time(os.getpid())

    def _owns_entry(self, me: Tuple[int, int]) -> bool:
        if self._reader_index is None:
            return False
        entry = self._readers[self._reader_index]
        return entry['state'] != READER_FREE and (int(entry['pid']), int(entry['start'])) == me

    def _free_entry(self) -> int:
        for index, entry in enumerate(self._readers):
            if entry['state'] == READER_FREE or \
                    not process_alive(int(entry['pid']), int(entry['start'])):
                return index
        raise SegmentError('too_many_readers', f'{self.name} already has {MAX_READERS} live '
                           'readers')

    def _clear_claims(self, index: int) -> None:
        bit = 1 << index
        for slot in range(self.slot_count):
            self._claims.fetch_and(slot, ~bit & WORD_MASK)

    @property
    def registered(self) -> bool:
        """Tell whether this object holds an active reader entry."""
        index = self._reader_index
        if index is None or self.closed:
            return False
        return int(self._reader_states[index]) == READER_ACTIVE and \
            int(self._reader_pids[index]) == os.getpid()

    @property
    def evicted(self) -> bool:
        """Tell whether this reader registered once and the producer has since evicted it."""
        return self._reader_index is not None and not self.registered

    def claim(self, slot: int, sequence: int) -> bool:
        """
        Take a slot for reading: the producer will not write it until it is unclaimed.

        Takes this reader's bit in the slot's claim word by compare-and-swap, which fails while
        the producer writes the slot (WRITER_BIT), then checks that the slot holds `sequence`.
        Threads of one process may claim the same slot; the bit stays set until the last one
        unclaims.

        :return: True when the slot holds `sequence` (a published frame) and is now claimed;
            False when it is being written or holds another frame (nothing stays claimed)
        :raises SegmentError: before register(), or for a slot out of range
        """
        self._check_claimable(slot)
        bit = 1 << self._reader_index
        with self._claim_lock:
            if self._held[slot] == 0 and not self._set_bit(slot, bit):
                return False
            self._held[slot] += 1
        # The CAS above (acquire) keeps this load after it: the frame seen is the one claimed.
        if sequence and sequence % 2 == 0 and self.sequence(slot) == sequence:
            return True
        self.unclaim(slot)
        return False

    def _set_bit(self, slot: int, bit: int) -> bool:
        word = self._claims.load(slot)
        while not word & WRITER_BIT:
            swapped, word = self._claims.compare_exchange(slot, word, word | bit)
            if swapped:
                return True
        return False

    def unclaim(self, slot: int) -> None:
        """
        End a claim taken by claim(): the producer may write the slot again.

        The bit is cleared with release order, so every read of the payload before this call
        is done before the producer's compare-and-swap can take the slot.
        """
        if self.closed:
            return  # close() dropped every claim
        self._check_claimable(slot)
        with self._claim_lock:
            if self._held[slot] == 0:
                raise SegmentError('not_claimed', f'{self.name} slot {slot} is not claimed')
            self._held[slot] -= 1
            if self._held[slot] == 0:
                self._claims.fetch_and(slot, ~(1 << self._reader_index) & WORD_MASK)

    def _check_claimable(self, slot: int) -> None:
        if self.closed or self._reader_index is None:
            raise SegmentError('not_registered', f'{self.name}: register() before claim()')
        if not 0 <= slot < self.slot_count:
            raise SegmentError('slot_out_of_range', f'slot {slot} >= {self.slot_count}')

    def release(self, slot: int, sequence: int) -> bool:
        """
        Tell the producer this reader is done with `slot` at `sequence` (a release store).

        :return: False when the producer evicted this reader (register again)
        """
        if not self.registered:
            return False
        releases = self._releases[self._reader_index]
        if sequence > releases.load(slot):
            releases.store(slot, sequence)
        return True

    def close(self) -> None:
        """Drop this reader's claims, give its entry back, and unmap."""
        if self.closed:
            return
        with self._lock():
            if self._owns_entry(self._owner()):
                self._clear_claims(self._reader_index)
                self._readers[self._reader_index]['state'] = READER_FREE
        self._unmap()
