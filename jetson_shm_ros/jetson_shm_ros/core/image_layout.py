"""
sensor_msgs/Image fields as arrays and back, with every field checked first (no ROS imports).

An Image is (encoding, height, width, step, is_bigendian, data): `step` bytes per row, of which
the first width * channels * itemsize are pixels and the rest is padding. `image_view` turns the
fields into a NumPy view of shape image_shape(encoding, h, w) without copying: padding is skipped
through the row stride and big-endian data gets a big-endian dtype, so the one copy into a slot
(`slot[...] = view`) packs the rows and swaps the bytes. `image_fields` is the reverse: an array
and its encoding become the fields of a packed little-endian Image.

The fields come from the network, so nothing is trusted: an unknown encoding, a zero or absurd
size, a step smaller than a row, or data of the wrong length raises ImageError with a stable
`reason` before any byte is looked at.
"""

from typing import NamedTuple, Tuple

from jetson_shm_ros.core.errors import DescriptorError, ShmRosError
from jetson_shm_ros.core.image_encodings import check_encoding, encoding_layout, image_shape
import numpy as np

# Larger than any camera sensor (and the largest texture side of most GPUs), small enough that
# width * height * channels * itemsize stays far from overflowing anything.
MAX_IMAGE_SIDE = 1 << 16
# One image must fit a shared-memory slot: 1 GiB is twice an 8K image of four 32-bit floats.
MAX_IMAGE_BYTES = 1 << 30
REASONS = ('unknown_encoding', 'bad_size', 'too_large', 'bad_step', 'bad_endianness',
           'bad_data', 'data_too_short', 'data_too_long', 'encoding_mismatch')


class ImageError(ShmRosError, ValueError):
    """An image whose fields cannot describe its data; `reason` is one of REASONS."""


class ImageLayout(NamedTuple):
    """What an encoding and a size mean in memory (the data itself not yet looked at)."""

    encoding: str
    dtype: str          # canonical little-endian dtype string, e.g. '<u2'
    shape: Tuple[int, ...]
    row_nbytes: int     # bytes of pixels in one row, without padding
    nbytes: int         # bytes of the packed image


class ImageFields(NamedTuple):
    """The fields of a packed sensor_msgs/Image (header aside)."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: np.ndarray    # 1-D uint8, C-contiguous, step * height bytes


def image_layout(encoding: str, height: int, width: int) -> ImageLayout:
    """
    Check an encoding and a size and return the packed layout they describe.

    :raises ImageError: 'unknown_encoding', 'bad_size' (zero or beyond MAX_IMAGE_SIDE) or
        'too_large' (beyond MAX_IMAGE_BYTES)
    """
    try:
        dtype, channels = encoding_layout(encoding)
    except DescriptorError as error:
        raise ImageError('unknown_encoding', error.detail) from None
    for name, value in (('height', height), ('width', width)):
        if not isinstance(value, int) or isinstance(value, bool) or \
                not 0 < value <= MAX_IMAGE_SIDE:
            raise ImageError('bad_size', f'{name} {value!r} is outside 1..{MAX_IMAGE_SIDE}')
    row_nbytes = width * channels * np.dtype(dtype).itemsize
    nbytes = row_nbytes * height
    if nbytes > MAX_IMAGE_BYTES:
        raise ImageError('too_large', f'{width}x{height} {encoding} is {nbytes} bytes, more '
                         f'than {MAX_IMAGE_BYTES}')
    return ImageLayout(encoding, dtype, tuple(image_shape(encoding, height, width)),
                       row_nbytes, nbytes)


def image_view(encoding: str, height: int, width: int, step: int, is_bigendian: int,
               data) -> np.ndarray:
    """
    Return a read-only view of an Image's pixels, shaped and typed by its encoding.

    No byte is copied: the view's row stride is `step` (padding skipped) and its dtype is
    big-endian when the image is. Copy it into a little-endian array of the layout's dtype
    (`np.ascontiguousarray(view, layout.dtype)` or `slot[...] = view`) to pack and swap.

    :param data: the Image's data: bytes, array.array('B'), a uint8 array, any byte buffer
    :raises ImageError: see image_layout(), plus 'bad_step', 'data_too_short',
        'bad_endianness', 'bad_data' (not a byte buffer), 'data_too_short' and 'data_too_long'
    """
    layout = image_layout(encoding, height, width)
    if not isinstance(step, int) or isinstance(step, bool) or step < layout.row_nbytes:
        raise ImageError('bad_step', f'step {step!r} is smaller than one row of {width} '
                         f'{encoding} pixels ({layout.row_nbytes} bytes)')
    if is_bigendian not in (0, 1):
        raise ImageError('bad_endianness', f'is_bigendian is {is_bigendian!r}, not 0 or 1')
    raw = _byte_buffer(data)
    want = step * height
    if raw.size < want:
        raise ImageError('data_too_short', f'data has {raw.size} bytes, step {step} x height '
                         f'{height} needs {want}')
    if raw.size > want:
        raise ImageError('data_too_long', f'data has {raw.size} bytes, step {step} x height '
                         f'{height} is {want}')
    dtype = np.dtype(layout.dtype)
    if is_bigendian and dtype.itemsize > 1:
        dtype = dtype.newbyteorder('>')
    item = dtype.itemsize
    channels = layout.shape[2] if len(layout.shape) == 3 else 1
    strides = (step, channels * item, item)[:len(layout.shape)]
    view = np.ndarray(layout.shape, dtype=dtype, buffer=raw, strides=strides)
    view.flags.writeable = False
    return view


def pack_image(encoding: str, height: int, width: int, step: int, is_bigendian: int,
               data) -> np.ndarray:
    """Return an Image's pixels as a new packed, little-endian array (see image_view)."""
    view = image_view(encoding, height, width, step, is_bigendian, data)
    return np.ascontiguousarray(view, dtype=image_layout(encoding, height, width).dtype)


def image_fields(array: np.ndarray, encoding: str) -> ImageFields:
    """
    Describe a NumPy array as the fields of a packed little-endian Image.

    The data is a byte view of the array when it is C-contiguous (no copy), else a packed copy.

    :param array: shape (h, w), (h, w, 1) or (h, w, channels), the encoding's dtype
    :raises ImageError: 'unknown_encoding', 'encoding_mismatch' (dtype or shape disagree),
        'bad_size' or 'too_large'
    """
    if encoding == '':
        raise ImageError('unknown_encoding', 'an image needs an encoding; the array has none')
    try:
        check_encoding(encoding, array.dtype.str, array.shape)
    except DescriptorError as error:
        reason = 'unknown_encoding' if error.reason == 'bad_encoding' else 'encoding_mismatch'
        raise ImageError(reason, error.detail) from None
    height, width = int(array.shape[0]), int(array.shape[1])
    layout = image_layout(encoding, height, width)
    packed = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return ImageFields(encoding, height, width, layout.row_nbytes, 0, packed)


def _byte_buffer(data) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ImageError('bad_data', f'data must be a flat uint8 buffer, got '
                             f'{data.dtype}{list(data.shape)}')
        return data
    if isinstance(data, (list, tuple)):
        # A message built by hand may carry a list of ints: still data if each is a byte.
        try:
            return np.array(data, dtype=np.uint8)
        except (OverflowError, TypeError, ValueError) as error:
            raise ImageError('bad_data', f'data is not a list of bytes: {error}') from None
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as error:
        raise ImageError('bad_data', f'data is not a byte buffer: {error}') from None
