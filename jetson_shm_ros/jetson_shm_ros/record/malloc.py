"""
keep_large_buffers(): let glibc reuse the memory of frame-sized buffers (no ROS needed).

Recording copies every frame a few times (out of the slot, into the MCAP chunk, to the file).
By default glibc serves each buffer over 128 KiB..32 MiB with a fresh mmap and returns it at
free, so every copy first faults in fresh pages: on the 2-core build machine that made writing
4 MiB frames three times slower (180 vs 590 MB/s into tmpfs). Raising the mmap and trim
thresholds keeps such buffers in the heap, reused from frame to frame. Process-wide, and only
what glibc's mallopt allows (buffers up to 32 MiB); elsewhere (musl, macOS) it does nothing.
"""

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30


def keep_large_buffers() -> bool:
    """Set glibc's mmap and trim thresholds; return whether it took."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and \
        bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
