"""
The shared-memory segment: layout, header, mapping and the checks on its file.

Layout (all little-endian), mapped once by every process::

    header (128 B) | slot sequences u64[slot_count] | slot claims u64[slot_count]
    | reader table | pad to page | slot 0 ...

Each slot is guarded by a sequence lock: its sequence is odd while the producer writes and
even when readable. Sequences come from one counter per segment (frame k is published with
sequence 2k + 2), so they also order frames across slots. Each slot also has a claim word: bit
i set while reader i reads the slot, WRITER_BIT while the producer writes it. One
compare-and-swap on that word both checks and takes it, so a reader and the writer never hold
a slot at once, and the bits name who holds it, so the claims of a reader that died are found.
Consumers register in the reader table and store, per slot, the last sequence they finished
with (see slot_pool.py for how the producer uses both, attachment.py for the consumer's side).
Shared words are read and written with the atomics of atomics.py (acquire/release order), so
the protocol holds on Arm as on x86.

Segments are created with O_CREAT|O_EXCL and mode 0600, and are space-reserved up front so
a full /dev/shm fails at start-up instead of raising SIGBUS on a later write.
multiprocessing.shared_memory is deliberately not used: before Python 3.13 its resource
tracker unlinks segments that other processes still use.
"""

import fcntl
import mmap
import os
import stat
from typing import Dict, List, Optional, Tuple

from jetson_shm_ros.core.atomics import AtomicWords, fence_acquire, WORD_BYTES
from jetson_shm_ros.core.descriptor import MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import SegmentError
# Re-exported: the pool, the attachment and tools ask segment.py whether a process runs.
from jetson_shm_ros.core.liveness import (  # noqa: F401
    process_alive, process_start_time, ProcessWatch)
from jetson_shm_ros.core.logs import get_logger
import numpy as np


SHM_DIR = '/dev/shm'
MAGIC = b'JSHMROS\x01'
LAYOUT_VERSION = 2  # 2: slot claim words
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

# A slot's claim word: bit i for reader entry i, the top bit for the producer.
WRITER_BIT = 1 << 63
WORD_MASK = (1 << 64) - 1  # Python ints are unbounded: masks are cut to 64 bits

HEADER_DTYPE = np.dtype([
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
    control = HEADER_BYTES + 2 * WORD_BYTES * slot_count + \
        MAX_READERS * _reader_dtype(slot_count).itemsize
    data_offset = _round_up(control, PAGE_BYTES)
    slot_bytes = _round_up(slot_size, PAGE_BYTES)
    total = data_offset + (slot_count * slot_bytes if memory_kind == MEMORY_HOST_SHM else 0)
    return slot_bytes, data_offset, total


class SegmentMapping:
    """Header access shared by the producer's pool and a consumer's attachment."""

    def __init__(self, name: str, fd: int, size: int):
        self.name = name
        self._fd = fd
        self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._size = size
        self._bytes = np.frombuffer(self._mm, dtype=np.uint8)
        self._header = self._bytes[:HEADER_DTYPE.itemsize].view(HEADER_DTYPE)[0:1]
        self._owner_watch: Optional[ProcessWatch] = None
        self.closed = False

    def _bind_tables(self, header: Optional[np.ndarray] = None) -> None:
        # The layout is read once: whoever can write the header later (a bug, a same-user
        # process) must not move the bounds that every check below relies on.
        layout = (self._header if header is None else header)[0]
        # As plain ints: several are read per frame, and a NumPy field access costs ~0.5 us.
        self._layout = {name: int(layout[name]) for name in HEADER_DTYPE.names
                        if HEADER_DTYPE[name].kind in 'iu'}
        count = self.slot_count
        words = self._bytes[HEADER_BYTES:HEADER_BYTES + 2 * WORD_BYTES * count].view('<u8')
        self._sequences = AtomicWords(words[:count])
        self._claims = AtomicWords(words[count:])
        table_start = HEADER_BYTES + 2 * WORD_BYTES * count
        reader_type = _reader_dtype(count)
        self._readers = self._bytes[
            table_start:table_start + MAX_READERS * reader_type.itemsize].view(reader_type)
        self._releases = [AtomicWords(entry['release']) for entry in self._readers]
        # Column views, read per frame: cheaper than a NumPy record per access.
        self._reader_states = self._readers['state']
        self._reader_pids = self._readers['pid']

    def _field(self, key: str) -> int:
        return self._layout[key]

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
        """
        Load the current sequence of a slot (acquire); odd means a write is in progress.

        Payload reads after this call are not moved before it: the first half of the reader's
        sequence lock.
        """
        return self._sequences.load(slot)

    def sequence_unchanged(self, slot: int, sequence: int) -> bool:
        """
        Tell whether the slot still holds `sequence` after its payload was read.

        An acquire fence keeps the payload reads before the re-load: the second half of the
        reader's sequence lock.
        """
        fence_acquire()
        return self._sequences.load(slot) == sequence

    def owner_alive(self) -> bool:
        """Tell whether the producer that created this segment still runs (cheap: a pidfd)."""
        if self._owner_watch is None:
            self._owner_watch = ProcessWatch(self.owner_pid, self._field('owner_start'))
        return self._owner_watch.alive()

    def check_size(self) -> None:
        """
        Raise SegmentError('truncated') if the file shrank under the mapping.

        Touching a page past the end of a truncated file raises SIGBUS, which kills the
        process; a truncation racing this check still can (see the README's trust model).
        """
        size = os.fstat(self._fd).st_size
        if size < self.size:
            raise SegmentError('truncated', f'{self.name} shrank to {size} bytes under its '
                               f'{self.size}-byte mapping')

    def claim_word(self, slot: int) -> int:
        """Load the slot's claim word (acquire): reader bits, and WRITER_BIT while written."""
        return self._claims.load(slot)

    def slot_bounds(self, slot: int) -> Tuple[int, int]:
        """Byte range [start, end) of a slot: in the segment, or in the device allocation."""
        base = self.data_offset if self.memory_kind == MEMORY_HOST_SHM else 0
        start = base + slot * self.slot_size
        return start, start + self.slot_size

    def view(self, offset: int, nbytes: int) -> np.ndarray:
        """
        Return a writable uint8 NumPy view of host-shm bytes [offset, offset + nbytes).

        Bounds are checked against the mapping; the file's size is not (an fstat each time
        was several per frame): a consumer calls check_size() once per descriptor, before the
        first view of its frame.
        """
        if self._layout['memory_kind'] != MEMORY_HOST_SHM:
            raise SegmentError('no_host_view', f'{self.name} keeps its slots in device memory')
        if offset < self._layout['data_offset'] or offset + nbytes > self._size:
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
        self._sequences = self._claims = self._releases = None
        if self._owner_watch is not None:
            self._owner_watch.close()
        self._readers = self._header = self._bytes = None
        self._reader_states = self._reader_pids = None
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


def create_exclusive(path: str, mode: int) -> int:
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
    except OSError as error:  # e.g. a symlink planted under our name (ELOOP)
        raise SegmentError('in_use', f'{path} exists and cannot be opened ({error.strerror}); '
                           'choose another name or remove it by hand') from None
    try:
        info = os.fstat(fd)
        raw = os.pread(fd, HEADER_DTYPE.itemsize, 0)
    finally:
        os.close(fd)
    if info.st_uid != os.geteuid():
        raise SegmentError('in_use', f'{path} exists and belongs to uid {info.st_uid}')
    if len(raw) < HEADER_DTYPE.itemsize or raw[:8] != MAGIC:
        raise SegmentError('in_use', f'{path} exists and is not a jetson_shm_ros segment; '
                           'choose another name or remove it by hand')
    header = np.frombuffer(raw, dtype=HEADER_DTYPE)[0]
    pid, start = int(header['owner_pid']), int(header['owner_start'])
    if process_alive(pid, start):
        raise SegmentError('in_use', f'{path} is in use by running producer pid {pid}')
    _log.warning('removing stale segment %s left by producer pid %d, which is gone', path, pid)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def check_file(path: str, info: os.stat_result, allow_group_access: bool) -> None:
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
