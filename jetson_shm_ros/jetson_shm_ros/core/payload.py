"""
Payload conventions shared by every producer and consumer: dtypes, checksum, test pattern.

The checksum is the seed's check, made exact for any length: the payload read as
little-endian uint32 words (the tail zero-padded to a whole word), summed modulo 2**64.
The seed's sixteen int32 values 1..16 give 136. On the CPU it is summed by a small C extension
(`_checksum.c`): NumPy's sum gives the same number at several times the cost per frame.
"""

from typing import Sequence

import numpy as np

try:
    from jetson_shm_ros.core._checksum import checksum_words as _sum_words
except ImportError as error:  # pragma: no cover - a source tree nobody built
    raise ImportError('jetson_shm_ros.core._checksum (a C extension) is not built: run '
                      '`make build` (colcon) or `python setup.py build_ext --inplace` in '
                      f'jetson_shm_ros/ ({error})') from error

# Only plain little-endian (or byte-sized) numeric types: GPU kernels read the bytes as they
# are, and an object or structured dtype in a descriptor must never reach np.dtype().
ALLOWED_DTYPES = frozenset({
    '|b1', '|u1', '|i1',
    '<u2', '<i2', '<f2',
    '<u4', '<i4', '<f4',
    '<u8', '<i8', '<f8',
})

MAX_DIMS = 8
WORD = 4
# Odd multiplier: successive frames differ in every word, so a stale slot never
# passes for a fresh one.
FRAME_STRIDE = 0x9E3779B1


def normalize_dtype(name: str) -> str:
    """
    Turn a user's dtype name ('uint8', 'float32', '<i4') into its canonical descriptor string.

    :param name: any NumPy spelling of an allowed dtype
    :return: the canonical string, e.g. '|u1'
    :raises ValueError: when the dtype is not in ALLOWED_DTYPES
    """
    try:
        canonical = np.dtype(name).str
    except TypeError as error:
        raise ValueError(f'unknown dtype {name!r}') from error
    if canonical not in ALLOWED_DTYPES:
        raise ValueError(
            f'dtype {name!r} is not supported; use one of {sorted(ALLOWED_DTYPES)}')
    return canonical


def payload_nbytes(dtype: str, shape: Sequence[int]) -> int:
    """Return prod(shape) * itemsize, in Python integers (no overflow)."""
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * np.dtype(dtype).itemsize


def checksum_words(payload: np.ndarray) -> int:
    """
    Sum a byte buffer as little-endian uint32 words (tail zero-padded), modulo 2**64.

    :param payload: one-dimensional uint8 array (any buffer of bytes; copied first when it
        is not contiguous)
    :return: the checksum as a Python int
    """
    try:
        return _sum_words(payload)
    except (BufferError, ValueError):  # a strided view (NumPy raises ValueError)
        return _sum_words(np.ascontiguousarray(payload))


def pattern_words(nwords: int) -> np.ndarray:
    """Return the frame-independent part of the test pattern: word i holds i."""
    return np.arange(nwords, dtype='<u4')


def fill_pattern(payload: np.ndarray, frame: int, base: np.ndarray) -> None:
    """
    Write frame `frame` of the deterministic test pattern into a uint8 buffer.

    Word i of frame f is (i + f * FRAME_STRIDE) mod 2**32; tail bytes hold f mod 256.

    :param payload: one-dimensional uint8 array to fill
    :param frame: frame number
    :param base: pattern_words() of at least payload.size // 4 words, reused every frame
    """
    whole = payload.size - payload.size % WORD
    offset = np.uint32((frame * FRAME_STRIDE) & 0xFFFFFFFF)
    if whole:
        np.add(base[:whole // WORD], offset, out=payload[:whole].view('<u4'))
    payload[whole:] = frame & 0xFF


def expected_pattern_checksum(nbytes: int, frame: int) -> int:
    """Checksum of fill_pattern's output, computed without the buffer (for tests)."""
    buf = np.empty(nbytes, dtype=np.uint8)
    fill_pattern(buf, frame, pattern_words(nbytes // WORD))
    return checksum_words(buf)
