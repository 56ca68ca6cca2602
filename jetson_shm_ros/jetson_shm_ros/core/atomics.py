"""
Atomic 64-bit words inside a shared mapping, with the memory order of each operation stated.

The sequence lock and the slot claims are shared between processes that may run on different
cores of an Arm CPU, where plain loads and stores may be reordered. The operations come from a
small C extension (`_atomics.c`, GCC/C11 `__atomic` builtins, lock-free on x86_64 and aarch64)
and map onto the C11 model:

=====================  ===========  ===================================================
operation              order        guarantee
=====================  ===========  ===================================================
``load``               acquire      no later load or store moves before it
``store``              release      no earlier load or store moves after it
``compare_exchange``   acq_rel      (acquire when it fails) one indivisible read-modify-write
``fetch_add``          acq_rel      one indivisible read-modify-write
``fetch_and``          acq_rel      one indivisible read-modify-write
``fence_acquire()``    acquire      loads before it are ordered before everything after it
``fence_release()``    release      everything before it is ordered before stores after it
=====================  ===========  ===================================================

`AtomicWords` wraps a NumPy view of little-endian uint64 words in a mapping: it checks the
alignment once and the index on every call, and holds the view, so the mapping cannot be
unmapped while an address into it is in use.
"""

import sys
from typing import Tuple

import numpy as np

try:
    from jetson_shm_ros.core import _atomics
except ImportError as error:  # pragma: no cover - a source tree nobody built
    raise ImportError('jetson_shm_ros.core._atomics (a C extension) is not built: run '
                      '`make build` (colcon) or `python setup.py build_ext --inplace` in '
                      f'jetson_shm_ros/ ({error})') from error

WORD_BYTES = 8
WORD_DTYPE = np.dtype('<u8')
if sys.byteorder != 'little':  # pragma: no cover - x86_64 and aarch64 are little-endian
    raise ImportError('jetson_shm_ros lays out shared memory for little-endian hosts only')


class AtomicWords:
    """Atomic access to a 1-D array of uint64 words that lies inside a shared mapping."""

    def __init__(self, words: np.ndarray):
        """
        Check and hold a view of the words.

        :param words: a C-contiguous 1-D '<u8' NumPy view, 8-byte aligned
        :raises ValueError: for any other array
        """
        if words.dtype != WORD_DTYPE or words.ndim != 1 or not words.flags.c_contiguous:
            raise ValueError(f'need a contiguous 1-D {WORD_DTYPE} array, got {words.dtype} '
                             f'with shape {words.shape}')
        self._base = words.ctypes.data
        if self._base % WORD_BYTES:
            raise ValueError(f'words at {self._base:#x} are not {WORD_BYTES}-byte aligned')
        self._words = words  # keeps the mapping alive while addresses into it are used
        self._count = len(words)

    def __len__(self) -> int:
        return self._count

    def address(self, index: int) -> int:
        """
        Return the address of word `index`.

        :raises IndexError: outside the array (never an address outside the mapping)
        """
        if not 0 <= index < self._count:
            raise IndexError(f'word {index} outside 0..{self._count - 1}')
        return self._base + WORD_BYTES * index

    def load(self, index: int) -> int:
        """Load word `index` with acquire order."""
        # The bounds check of address(), inline: a load runs several times per frame.
        if not 0 <= index < self._count:
            raise IndexError(f'word {index} outside 0..{self._count - 1}')
        return _atomics.load_acquire(self._base + WORD_BYTES * index)

    def store(self, index: int, value: int) -> None:
        """Store `value` into word `index` with release order."""
        if not 0 <= index < self._count:
            raise IndexError(f'word {index} outside 0..{self._count - 1}')
        _atomics.store_release(self._base + WORD_BYTES * index, value)

    def compare_exchange(self, index: int, expected: int, desired: int) -> Tuple[bool, int]:
        """
        Write `desired` if word `index` equals `expected` (acq_rel; acquire when it fails).

        :return: (whether it was written, the value found)
        """
        return _atomics.compare_exchange(self.address(index), expected, desired)

    def fetch_add(self, index: int, value: int) -> int:
        """Add `value` modulo 2**64 to word `index` (acq_rel); return the previous value."""
        return _atomics.fetch_add(self.address(index), value)

    def fetch_and(self, index: int, mask: int) -> int:
        """AND word `index` with `mask` (acq_rel); return the previous value."""
        return _atomics.fetch_and(self.address(index), mask)


def fence_acquire() -> None:
    """Order the loads before this point before every load and store after it."""
    _atomics.fence_acquire()


def fence_release() -> None:
    """Order every load and store before this point before the stores after it."""
    _atomics.fence_release()
