"""
Room in /dev/shm: a segment's bytes are reserved whole, or not at all.

posix_fallocate of more than /dev/shm has free does not fail at once: tmpfs allocates pages
until it runs out, then gives them back and fails. For that moment the tmpfs is full, and any
process on the machine that touches a new page of its own shared memory (another node's
segment, a DDS shared-memory transport) gets SIGBUS: a producer that cannot start would take
others down with it. So the free space is checked first, and only a segment that fits is
reserved.
"""

import os

from jetson_shm_ros.core.errors import SegmentError


def reserve(fd: int, nbytes: int, path: str) -> None:
    """
    Allocate every byte of a new segment file now, so no later page fault can fail.

    :param fd: the segment's open file
    :param nbytes: its size
    :param path: its path in /dev/shm, for the message
    :raises SegmentError: reason 'no_space', before allocating anything when the free space is
        short (and if space ran out in between, after fallocate gave its pages back)
    """
    directory = os.path.dirname(path) or '.'
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    if nbytes > free:
        raise SegmentError('no_space', f'cannot reserve {nbytes} bytes for {path}: {directory} '
                           f'has {free} free (is /dev/shm large enough?)')
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as error:
        raise SegmentError('no_space', f'cannot reserve {nbytes} bytes for {path}: '
                           f'{error.strerror} (is /dev/shm large enough?)') from None
