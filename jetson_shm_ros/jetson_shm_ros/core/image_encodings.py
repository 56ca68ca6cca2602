"""
ROS image encodings (sensor_msgs/image_encodings) as dtype and channel count.

A descriptor's `encoding` is empty for a plain tensor. When it names an image encoding, the
payload is an image of shape (height, width, channels), or (height, width) for one channel,
whose dtype is the encoding's: `rgb8` is '|u1' with 3 channels, `32FC1` is '<f4' with one.
The bridges (sensor_msgs/Image in and out) use the same table.
"""

import re
from typing import Dict, Sequence, Tuple

from jetson_shm_ros.core.errors import DescriptorError

MAX_ENCODING_CHARS = 32

# Named encodings: (dtype, channels).
_NAMED: Dict[str, Tuple[str, int]] = {
    'mono8': ('|u1', 1), 'mono16': ('<u2', 1),
    'rgb8': ('|u1', 3), 'bgr8': ('|u1', 3), 'rgba8': ('|u1', 4), 'bgra8': ('|u1', 4),
    'rgb16': ('<u2', 3), 'bgr16': ('<u2', 3), 'rgba16': ('<u2', 4), 'bgra16': ('<u2', 4),
    # Two bytes per pixel, packed chroma: uint8 with 2 channels.
    'yuv422': ('|u1', 2), 'uyvy': ('|u1', 2), 'yuv422_yuy2': ('|u1', 2), 'yuyv': ('|u1', 2),
}
for _pattern in ('rggb', 'bggr', 'gbrg', 'grbg'):
    _NAMED[f'bayer_{_pattern}8'] = ('|u1', 1)
    _NAMED[f'bayer_{_pattern}16'] = ('<u2', 1)

# OpenCV-style encodings: <bits><U|S|F>C<channels>.
_CV_TYPES = {'8U': '|u1', '8S': '|i1', '16U': '<u2', '16S': '<i2', '32S': '<i4',
             '32F': '<f4', '64F': '<f8', '16F': '<f2'}
_CV = re.compile(r'(8U|8S|16U|16S|16F|32S|32F|64F)C([1-4])')


def encoding_layout(encoding: str) -> Tuple[str, int]:
    """
    Return (dtype, channels) of a ROS image encoding.

    :raises DescriptorError: with reason 'bad_encoding' for an unknown encoding
    """
    if encoding in _NAMED:
        return _NAMED[encoding]
    match = _CV.fullmatch(encoding) if isinstance(encoding, str) else None
    if match:
        return _CV_TYPES[match.group(1)], int(match.group(2))
    shown = encoding if isinstance(encoding, str) and len(encoding) <= MAX_ENCODING_CHARS \
        else f'{str(encoding)[:MAX_ENCODING_CHARS]!r}...'
    raise DescriptorError('bad_encoding', f'image encoding {shown!r} is not supported; use '
                          f'one of {supported_encodings()}')


def supported_encodings() -> list:
    """List every supported encoding name (the `8UC3` family shown per type and count)."""
    return sorted(_NAMED) + [f'{bits}C{count}' for bits in _CV_TYPES for count in range(1, 5)]


def image_shape(encoding: str, height: int, width: int) -> list:
    """Return the canonical payload shape of an image: [h, w] for one channel, else [h, w, c]."""
    channels = encoding_layout(encoding)[1]
    return [height, width] if channels == 1 else [height, width, channels]


def check_encoding(encoding: str, dtype: str, shape: Sequence[int]) -> None:
    """
    Check that an encoding agrees with a payload's dtype and shape (empty: a plain tensor).

    :raises DescriptorError: 'bad_encoding' for an unknown name, 'encoding_mismatch' when the
        dtype or shape disagrees
    """
    if encoding == '':
        return
    want_dtype, channels = encoding_layout(encoding)
    shape = list(shape)
    if dtype != want_dtype:
        raise DescriptorError('encoding_mismatch', f'encoding {encoding} needs dtype '
                              f'{want_dtype}, payload is {dtype}')
    fits = (len(shape) == 3 and shape[2] == channels) or (len(shape) == 2 and channels == 1)
    if not fits:
        want = '(height, width)' + (' or (height, width, 1)' if channels == 1 else '')
        if channels != 1:
            want = f'(height, width, {channels})'
        raise DescriptorError('encoding_mismatch', f'encoding {encoding} needs shape {want}, '
                              f'payload has {shape}')
