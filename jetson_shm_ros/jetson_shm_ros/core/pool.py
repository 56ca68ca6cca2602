"""
A pool of fixed-size slots in one POSIX shared-memory segment.

Layout (all little-endian), mapped once by every process::

    header (128 B) | slot sequences u64[slot_count] | reader table | pad to page | slot 0 ...

Each slot is guarded by a sequence lock: its sequence is odd while the producer writes and
even when readable. Sequences come from one counter per segment (frame k is published with
sequence 2k + 2), so they also order frames across slots. Consumers register in the reader
table and store, per slot, the last sequence they finished with; under the `reliable`
policy the producer reuses a slot only when every live reader has released it, or after a
logged timeout that evicts the laggard so a dead or stuck consumer cannot stall it forever.

Segments are created with O_CREAT|O_EXCL and mode 0600, and are space-reserved up front so
a full /dev/shm fails at start-up instead of raising SIGBUS on a later write.
multiprocessing.shared_memory is deliberately not used: before Python 3.13 its resource
tracker unlinks segments that other processes still use.
"""

import atexit
import fcntl
import mmap
import os
import secrets
import stat
import time
from typing import Dict, List, Optional, Tuple
import weakref

from jetson_shm_ros.core.descriptor import (
    MEMORY_CUDA_IPC, MEMORY_HOST_SHM, MEMORY_KIND_NAMES, validate_shm_name)
from jetson_shm_ros.core.errors import DescriptorError, SegmentError
from jetson_shm_ros.core.logs import get_logger
import numpy as np

SHM_DIR = '/dev/shm'
MAGIC = b'JSHMROS\x01'
LAYOUT_VERSION = 1
HEADER_BYTES = 128
MAX_READERS = 16
MAX_SLOTS = 1024
PAGE_BYTES = os.sysconf('SC_PAGE_SIZE')

POLICY_LATEST = 0
POLICY_RELIABLE = 1
POLICIES = {'latest': POLICY_LATEST, 'reliable': POLICY_RELIABLE}
POLICY_NAMES = {value: key for key, value in POLICIES.items()}

READER_FREE = 0
READER_ACTIVE = 1
READER_EVICTED = 2

_HEADER = np.dtype([
    ('magic', 'S8'), ('version', '<u4'), ('memory_kind', '<u4'), ('incarnation', '<u8'),
    ('owner_pid', '<u8'), ('owner_start', '<u8'), ('owner_uid', '<u4'), ('slot_count', '<u4'),
    ('slot_size', '<u8'), ('data_offset', '<u8'), ('policy', '<u4'), ('max_readers', '<u4'),
    ('segment_bytes', '<u8'),
])

_log = get_logger('jetson_shm_ros.pool')


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def _reader_dtype(slot_count: int) -> np.dtype:
    return np.dtype([('pid', '<u8'), ('start', '<u8'), ('state', '<u8'), ('evictions', '<u8'),
                     ('release', '<u8', (slot_count,))])


def layout(slot_count: int, slot_size: int, memory_kind: int) -> Tuple[int, int, int]:
    """
    Compute where the parts of a segment lie.

    :return: (page-aligned slot size, data_offset, segment bytes)
    """
    control = HEADER_BYTES + 8 * slot_count + MAX_READERS * _reader_dtype(slot_count).itemsize
    data_offset = _round_up(control, PAGE_BYTES)
    slot_bytes = _round_up(slot_size, PAGE_BYTES)
    total = data_offset + (slot_count * slot_bytes if memory_kind == MEMORY_HOST_SHM else 0)
    return slot_bytes, data_offset, total


def process_start_time(pid: int) -> Optional[int]:
    """Return a process's start time in clock ticks since boot, or None if it is gone."""
    try:
        with open(f'/proc/{pid}/stat', 'rb') as stat_file:
            data = stat_file.read()
    except OSError:
        return None
    # Field 22 (starttime); split after the ')' that ends the command name, which may hold spaces.
    return int(data[data.rindex(b')') + 2:].split()[19])


def process_alive(pid: int, start_time: int) -> bool:
    """Tell whether `pid` runs and is the process that recorded `start_time` (no pid reuse)."""
    return pid > 0 and process_start_time(pid) == start_time


class _Mapping:
    """Header access shared by the producer's pool and a consumer's attachment."""

    def __init__(self, name: str, fd: int, size: int):
        self.name = name
        self._fd = fd
        self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._bytes = np.frombuffer(self._mm, dtype=np.uint8)
        self._header = self._bytes[:_HEADER.itemsize].view(_HEADER)[0:1]
        self.closed = False

    def _bind_tables(self) -> None:
        count = self.slot_count
        self._seq = self._bytes[HEADER_BYTES:HEADER_BYTES + 8 * count].view('<u8')
        table_start = HEADER_BYTES + 8 * count
        reader_type = _reader_dtype(count)
        self._readers = self._bytes[
            table_start:table_start + MAX_READERS * reader_type.itemsize].view(reader_type)

    def _field(self, key: str) -> int:
        return int(self._header[key][0])

    @property
    def incarnation(self) -> int:
        return self._field('incarnation')

    @property
    def slot_count(self) -> int:
        return self._field('slot_count')

    @property
    def slot_size(self) -> int:
        return self._field('slot_size')

    @property
    def data_offset(self) -> int:
        return self._field('data_offset')

    @property
    def memory_kind(self) -> int:
        return self._field('memory_kind')

    @property
    def policy(self) -> str:
        return POLICY_NAMES.get(self._field('policy'), 'unknown')

    @property
    def owner_pid(self) -> int:
        return self._field('owner_pid')

    @property
    def size(self) -> int:
        return len(self._mm)

    @property
    def address(self) -> int:
        """Host address of the mapping (what cudaHostRegister pins)."""
        return self._bytes.ctypes.data

    def sequence(self, slot: int) -> int:
        """Read the slot's current sequence; an odd one means a write is in progress."""
        return int(self._seq[slot])

    def slot_bounds(self, slot: int) -> Tuple[int, int]:
        """Byte range [start, end) of a slot: in the segment, or in the device allocation."""
        base = self.data_offset if self.memory_kind == MEMORY_HOST_SHM else 0
        start = base + slot * self.slot_size
        return start, start + self.slot_size

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        """Return a writable uint8 NumPy view of host-shm bytes [offset, offset + nbytes)."""
        if self.memory_kind != MEMORY_HOST_SHM:
            raise SegmentError('no_host_view', f'{self.name} keeps its slots in device memory')
        if offset < self.data_offset or offset + nbytes > self.size:
            raise SegmentError('out_of_bounds', f'[{offset}, {offset + nbytes}) outside slots')
        return self._bytes[offset:offset + nbytes]

    def slot_view(self, slot: int) -> np.ndarray:
        """Return a whole slot as a uint8 NumPy view."""
        start, end = self.slot_bounds(slot)
        return self.view(start, end - start)

    def readers(self) -> List[Dict[str, int]]:
        """List the registered readers, for status lines and tests."""
        return [{'index': index, 'pid': int(entry['pid']), 'state': int(entry['state'])}
                for index, entry in enumerate(self._readers) if entry['state'] != READER_FREE]

    def _lock(self):
        return _FileLock(self._fd)

    def _unmap(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._seq = self._readers = self._header = self._bytes = None
        try:
            self._mm.close()
        except BufferError:
            # A caller still holds a view; the mapping is released with the last view.
            _log.debug('mapping of %s still has views; left to the garbage collector', self.name)
        os.close(self._fd)


class _FileLock:
    """flock(2) on the segment: serializes edits of the reader table across processes."""

    def __init__(self, fd: int):
        self._fd = fd

    def __enter__(self):
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)


_live_pools: 'weakref.WeakSet[SlotPool]' = weakref.WeakSet()


@atexit.register
def _unlink_live_pools() -> None:
    for pool in list(_live_pools):
        pool.close()


class SlotPool(_Mapping):
    """The producer's side: creates the segment, hands out slots, unlinks on close."""

    def __init__(self, name: str, fd: int, size: int, release_timeout_s: float):
        super().__init__(name, fd, size)
        self.release_timeout_s = release_timeout_s
        self._next_slot = 0
        self._published = 0
        self._wait_since: Optional[float] = None
        self._inode = os.fstat(fd).st_ino
        self.counters = {'release_timeouts': 0, 'evicted_readers': 0, 'reaped_readers': 0}

    @classmethod
    def create(cls, name: str, slot_count: int, slot_size: int, policy: str = 'latest',
               memory_kind: int = MEMORY_HOST_SHM, mode: int = 0o600,
               release_timeout_s: float = 1.0) -> 'SlotPool':
        """
        Create a segment, replacing a stale one whose owner process is gone.

        :param name: POSIX name, e.g. '/jetson_shm_ros.camera'
        :param slot_count: number of slots (frames in flight)
        :param slot_size: payload bytes per slot; rounded up to whole pages
        :param policy: 'latest' (never block) or 'reliable' (wait for releases)
        :param memory_kind: MEMORY_HOST_SHM, or MEMORY_CUDA_IPC for a control-only segment
        :param mode: file mode; 0600 keeps the segment private to this user
        :param release_timeout_s: reliable policy: longest wait for a reader before evicting it
        :raises SegmentError: when the name is bad, in use, or /dev/shm is too small
        """
        try:
            validate_shm_name(name)
        except DescriptorError as error:
            raise SegmentError('bad_name', error.detail) from error
        if not 1 <= slot_count <= MAX_SLOTS or slot_size <= 0:
            raise SegmentError('bad_layout', f'need 1..{MAX_SLOTS} slots of > 0 bytes, got '
                               f'{slot_count} x {slot_size}')
        if policy not in POLICIES:
            raise SegmentError('bad_policy', f'policy {policy!r} is not one of {list(POLICIES)}')
        slot_bytes, data_offset, total = layout(slot_count, slot_size, memory_kind)
        fd = _create_exclusive(SHM_DIR + name, mode)
        try:
            try:
                os.posix_fallocate(fd, 0, total)
            except OSError as error:
                raise SegmentError('no_space', f'cannot reserve {total} bytes for {name} in '
                                   f'{SHM_DIR}: {error.strerror} (is /dev/shm large enough?)')
            pool = cls(name, fd, total, release_timeout_s)
        except BaseException:
            os.unlink(SHM_DIR + name)
            os.close(fd)
            raise
        header = pool._header
        header['version'] = LAYOUT_VERSION
        header['memory_kind'] = memory_kind
        header['incarnation'] = secrets.randbits(63) | 1
        header['owner_pid'] = os.getpid()
        header['owner_start'] = process_start_time(os.getpid())
        header['owner_uid'] = os.geteuid()
        header['slot_count'] = slot_count
        header['slot_size'] = slot_bytes
        header['data_offset'] = data_offset
        header['policy'] = POLICIES[policy]
        header['max_readers'] = MAX_READERS
        header['segment_bytes'] = total
        pool._bind_tables()
        # Magic last: an attacher that sees it sees a complete header.
        header['magic'] = MAGIC
        _live_pools.add(pool)
        _log.debug('created %s: %d slots x %d B, %s, %s', name, slot_count, slot_bytes, policy,
                   MEMORY_KIND_NAMES[memory_kind])
        return pool

    def acquire(self, required_readers: int = 0) -> Optional[int]:
        """
        Pick the slot for the next frame.

        :param required_readers: reliable policy: also wait until this many readers registered
        :return: a slot index, or None when the reliable policy says wait (call again later)
        """
        slot = self._next_slot
        if self.policy == 'latest' or self._seq[slot] == 0:
            return slot
        published = int(self._seq[slot])
        blockers, live = self._readers_behind(slot, published)
        if not blockers and live >= required_readers:
            self._wait_since = None
            return slot
        now = time.monotonic()
        if self._wait_since is None:
            self._wait_since = now
        if now - self._wait_since < self.release_timeout_s:
            return None
        self._wait_since = None
        self.counters['release_timeouts'] += 1
        if blockers:
            _log.warning('%s slot %d not released within %.2f s by reader pid(s) %s: evicting '
                         'them and reusing the slot', self.name, slot, self.release_timeout_s,
                         [int(self._readers[index]['pid']) for index in blockers])
            self._evict(blockers)
        else:
            _log.warning('%s: only %d of %d required reader(s) attached after %.2f s; reusing '
                         'slot %d', self.name, live, required_readers, self.release_timeout_s,
                         slot)
        return slot

    def _readers_behind(self, slot: int, published: int) -> Tuple[List[int], int]:
        behind, live = [], 0
        for index in np.flatnonzero(self._readers['state'] == READER_ACTIVE):
            entry = self._readers[index]
            if not process_alive(int(entry['pid']), int(entry['start'])):
                self._reap(int(index))
                continue
            live += 1
            if int(entry['release'][slot]) < published:
                behind.append(int(index))
        return behind, live

    def _reap(self, index: int) -> None:
        with self._lock():
            entry = self._readers[index]
            if entry['state'] == READER_ACTIVE and \
                    not process_alive(int(entry['pid']), int(entry['start'])):
                _log.info('%s: reader pid %d is gone; no longer waiting for it',
                          self.name, int(entry['pid']))
                entry['state'] = READER_FREE
                self.counters['reaped_readers'] += 1

    def _evict(self, indices: List[int]) -> None:
        with self._lock():
            for index in indices:
                self._readers[index]['state'] = READER_EVICTED
                self._readers[index]['evictions'] += 1
                self.counters['evicted_readers'] += 1

    def begin_write(self, slot: int) -> None:
        """Mark a slot as being written (odd sequence): readers of its old frame will notice."""
        self._seq[slot] = 2 * self._published + 1

    def end_write(self, slot: int) -> int:
        """
        Mark a slot readable and advance to the next one.

        :return: the sequence to publish in the frame's descriptor
        """
        self._published += 1
        sequence = 2 * self._published
        self._seq[slot] = sequence
        self._next_slot = (slot + 1) % self.slot_count
        return sequence

    def abort_write(self, slot: int) -> None:
        """
        Give up a write: the slot then holds no frame (sequence 0) and is the next one written.

        Its old sequence is not restored: the old frame's bytes are partly overwritten, and a
        reader holding the old descriptor must see the slot as overwritten.
        """
        self._seq[slot] = 0

    def all_released(self) -> bool:
        """Tell whether every live reader released every published slot (for a clean exit)."""
        return all(not self._readers_behind(slot, int(self._seq[slot]))[0]
                   for slot in range(self.slot_count) if self._seq[slot])

    def close(self) -> None:
        """Unlink the name (if it is still this segment) and unmap. Safe to call twice."""
        if self.closed:
            return
        _live_pools.discard(self)
        path = SHM_DIR + self.name
        try:
            if os.stat(path, follow_symlinks=False).st_ino == self._inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        self._unmap()


def _create_exclusive(path: str, mode: int) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(3):
        try:
            fd = os.open(path, flags, mode)
        except FileExistsError:
            _remove_if_stale(path)
            continue
        os.fchmod(fd, mode)  # the umask must not change what was asked for
        return fd
    raise SegmentError('in_use', f'{path} keeps reappearing; another producer uses this name')


def _remove_if_stale(path: str) -> None:
    """Unlink `path` when it is our segment and its owner process is gone, else raise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        info = os.fstat(fd)
        raw = os.pread(fd, _HEADER.itemsize, 0)
    finally:
        os.close(fd)
    if info.st_uid != os.geteuid():
        raise SegmentError('in_use', f'{path} exists and belongs to uid {info.st_uid}')
    if len(raw) < _HEADER.itemsize or raw[:8] != MAGIC:
        raise SegmentError('in_use', f'{path} exists and is not a jetson_shm_ros segment; '
                           'choose another name or remove it by hand')
    header = np.frombuffer(raw, dtype=_HEADER)[0]
    pid, start = int(header['owner_pid']), int(header['owner_start'])
    if process_alive(pid, start):
        raise SegmentError('in_use', f'{path} is in use by running producer pid {pid}')
    _log.warning('removing stale segment %s left by producer pid %d, which is gone', path, pid)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class AttachedSegment(_Mapping):
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
            _check_file(path, info, allow_group_access)
            raw = os.pread(fd, _HEADER.itemsize, 0)
            header = np.frombuffer(raw, dtype=_HEADER)[0]
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


def _check_file(path: str, info: os.stat_result, allow_group_access: bool) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SegmentError('bad_segment', f'{path} is not a regular file')
    if info.st_uid != os.geteuid():
        raise SegmentError('bad_owner', f'{path} belongs to uid {info.st_uid}, not to us '
                           f'({os.geteuid()})')
    allowed = 0o070 if allow_group_access else 0
    if stat.S_IMODE(info.st_mode) & 0o077 & ~allowed:
        raise SegmentError('bad_mode', f'{path} has mode {stat.S_IMODE(info.st_mode):o}: '
                           'others can write it, refusing')
    if info.st_size < HEADER_BYTES:
        raise SegmentError('bad_segment', f'{path} is too short ({info.st_size} bytes)')


__all__ = ['AttachedSegment', 'SlotPool', 'SegmentError', 'MEMORY_HOST_SHM', 'MEMORY_CUDA_IPC',
           'POLICIES', 'SHM_DIR', 'layout', 'process_alive', 'process_start_time']
