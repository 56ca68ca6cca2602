"""A consumer's mapping of a producer's segment, checked before any payload byte is read."""

import os
from typing import Optional

from jetson_shm_ros.core.descriptor import MEMORY_KIND_NAMES, validate_shm_name
from jetson_shm_ros.core.errors import DescriptorError, SegmentError
from jetson_shm_ros.core.segment import (
    check_file, HEADER_DTYPE, layout, LAYOUT_VERSION, MAGIC, MAX_READERS, MAX_SLOTS,
    process_alive, process_start_time, READER_ACTIVE, READER_FREE, SegmentMapping, SHM_DIR)
import numpy as np


class AttachedSegment(SegmentMapping):
    """A consumer's mapping of a producer's segment, checked before any payload byte is read."""

    def __init__(self, name: str, fd: int, size: int):
        super().__init__(name, fd, size)
        self._reader_index: Optional[int] = None

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
        segment._bind_tables()
        return segment

    def register(self, first_sequence: int) -> None:
        """
        Claim a reader entry, releasing what this reader will never be sent.

        Slots whose current frame was published before `first_sequence` (the first descriptor
        this reader received) are released at once; later ones stay held until the descriptor
        for them arrives, so the producer cannot overwrite a frame that is on its way to us.
        """
        me, start = os.getpid(), process_start_time(os.getpid())
        with self._lock():
            free = None
            for index, entry in enumerate(self._readers):
                owner = int(entry['pid']), int(entry['start'])
                # Reuse a free entry, a dead reader's, or our own after an eviction.
                if entry['state'] == READER_FREE or owner == (me, start) or \
                        not process_alive(*owner):
                    free = index
                    break
            if free is None:
                raise SegmentError('too_many_readers',
                                   f'{self.name} already has {MAX_READERS} live readers')
            entry = self._readers[free]
            sequences = self._seq.copy()
            released = np.where((sequences % 2 == 0) & (sequences < first_sequence), sequences, 0)
            entry['release'][:] = released
            entry['pid'] = me
            entry['start'] = start
            entry['evictions'] = 0
            entry['state'] = READER_ACTIVE
        self._reader_index = free

    @property
    def registered(self) -> bool:
        """Tell whether this process holds an active reader entry."""
        if self._reader_index is None:
            return False
        entry = self._readers[self._reader_index]
        return int(entry['state']) == READER_ACTIVE and int(entry['pid']) == os.getpid()

    @property
    def evicted(self) -> bool:
        """Tell whether this reader registered once and the producer has since evicted it."""
        return self._reader_index is not None and not self.registered

    def release(self, slot: int, sequence: int) -> bool:
        """
        Tell the producer this reader is done with `slot` at `sequence`.

        :return: False when the producer evicted this reader (register again)
        """
        if not self.registered:
            return False
        entry = self._readers[self._reader_index]
        if sequence > int(entry['release'][slot]):
            entry['release'][slot] = sequence
        return True

    def close(self) -> None:
        """Give the reader entry back and unmap."""
        if self.closed:
            return
        if self.registered:
            with self._lock():
                self._readers[self._reader_index]['state'] = READER_FREE
        self._unmap()
