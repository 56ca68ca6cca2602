"""
The standard messages a recorded frame becomes, as CDR bytes and back (no ROS needed).

A frame with an image encoding becomes `sensor_msgs/msg/Image` (header stamp and frame_id
from the descriptor). Any other tensor becomes the `std_msgs/msg/<T>MultiArray` of its element
type (e.g. float32 -> Float32MultiArray): the message type keeps the dtype, `layout.dim` keeps
the shape (one dimension per axis, labelled dim0, dim1, ... with size and stride), and every
ROS tool and Foxglove knows the type. The two dtypes that have no typed array message (bool,
float16) become UInt8MultiArray with one extra, last dimension labelled `dtype:<f2` (or
`dtype:|b1`) whose size is the item size, so the bytes and the dtype both survive.

Only these fixed types are encoded, so the encoder writes the CDR bytes with `struct` and one
copy of the payload (a general serializer goes element by element through Python lists); the
tests decode the result with two independent readers (mcap-ros2-support and rosbags).
"""

import struct
from typing import NamedTuple, Tuple

from jetson_shm_ros.core.errors import BagError, DescriptorError
from jetson_shm_ros.core.image_encodings import encoding_layout, image_shape
import numpy as np

IMAGE_TYPE = 'sensor_msgs/msg/Image'
CDR_LE = b'\x00\x01\x00\x00'  # encapsulation header: plain CDR, little-endian

_TIME = 'int32 sec\nuint32 nanosec\n'
_HEADER = 'builtin_interfaces/Time stamp\nstring frame_id\n'
_SEPARATOR = '=' * 80 + '\n'
IMAGE_SCHEMA = (
    'std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n'
    'uint8 is_bigendian\nuint32 step\nuint8[] data\n' + _SEPARATOR +
    'MSG: std_msgs/Header\n' + _HEADER + _SEPARATOR + 'MSG: builtin_interfaces/Time\n' + _TIME)

# dtype (canonical NumPy string) -> (std_msgs array message name, element type in the .msg)
ARRAY_TYPES = {
    '|i1': ('Int8MultiArray', 'int8'), '|u1': ('UInt8MultiArray', 'uint8'),
    '<i2': ('Int16MultiArray', 'int16'), '<u2': ('UInt16MultiArray', 'uint16'),
    '<i4': ('Int32MultiArray', 'int32'), '<u4': ('UInt32MultiArray', 'uint32'),
    '<i8': ('Int64MultiArray', 'int64'), '<u8': ('UInt64MultiArray', 'uint64'),
    '<f4': ('Float32MultiArray', 'float32'), '<f8': ('Float64MultiArray', 'float64'),
}
_BYTES_ONLY = ('|b1', '<f2')  # no typed array message: UInt8MultiArray + a dtype dimension
DTYPE_LABEL = 'dtype:'
_BY_TYPE = {'std_msgs/msg/' + name: (dtype, element)
            for dtype, (name, element) in ARRAY_TYPES.items()}


def _array_schema(element: str) -> str:
    return (
        f'std_msgs/MultiArrayLayout layout\n{element}[] data\n' + _SEPARATOR +
        'MSG: std_msgs/MultiArrayLayout\nstd_msgs/MultiArrayDimension[] dim\n'
        'uint32 data_offset\n' + _SEPARATOR +
        'MSG: std_msgs/MultiArrayDimension\nstring label\nuint32 size\nuint32 stride\n')


SCHEMAS = {IMAGE_TYPE: IMAGE_SCHEMA,
           **{f'std_msgs/msg/{name}': _array_schema(element)
              for name, element in ARRAY_TYPES.values()}}


class Decoded(NamedTuple):
    """A frame read back from a message: the array and what the descriptor said."""

    array: np.ndarray  # a view of the message bytes (read-only)
    stamp_ns: int
    frame_id: str
    encoding: str  # '' for a tensor


def message_type(dtype: str, encoding: str) -> str:
    """Return the message type a frame of this dtype and encoding is recorded as."""
    if encoding:
        return IMAGE_TYPE
    name = ARRAY_TYPES['|u1' if dtype in _BYTES_ONLY else dtype][0]
    return 'std_msgs/msg/' + name


class _Out:
    """Little CDR writer: the offsets for alignment count from after the encapsulation header."""

    def __init__(self):
        self.parts = [bytearray(CDR_LE)]
        self.size = 0

    def _head(self) -> bytearray:
        return self.parts[-1]

    def align(self, size: int) -> None:
        pad = -self.size % size
        self._head().extend(b'\0' * pad)
        self.size += pad

    def pack(self, fmt: str, *values) -> None:
        self.align(struct.calcsize(fmt[-1]))
        data = struct.pack('<' + fmt, *values)
        self._head().extend(data)
        self.size += len(data)

    def string(self, text: str) -> None:
        data = text.encode() + b'\0'
        self.pack('I', len(data))
        self._head().extend(data)
        self.size += len(data)

    def payload(self, count: int, itemsize: int, data: memoryview) -> bytes:
        self.pack('I', count)
        self.align(min(itemsize, 8))
        return b''.join(self.parts + [data])  # the one copy of the frame


def encode(array: np.ndarray, stamp_ns: int, frame_id: str, encoding: str, *,
           step: int = 0) -> Tuple[str, bytes]:
    """
    Encode one host frame as a CDR message.

    :param array: the frame (C-contiguous host memory, e.g. a view of the slot)
    :param stamp_ns: header stamp of an image (tensors have no header)
    :param frame_id: header frame_id of an image
    :param encoding: ROS image encoding, or '' for a tensor
    :param step: an image's row length in bytes; 0: width * channels * itemsize
    :return: (message type, CDR bytes with the encapsulation header)
    """
    data = memoryview(np.ascontiguousarray(array)).cast('B')
    out = _Out()
    if encoding:
        height = array.shape[0]
        width = array.shape[1] if array.ndim > 1 else 1
        sec, nanosec = divmod(int(stamp_ns), 10**9)
        out.pack('iI', sec, nanosec)
        out.string(frame_id)
        out.pack('II', height, width)
        out.string(encoding)
        out.pack('B', 0)
        out.pack('I', step or (data.nbytes // height if height else 0))
        return IMAGE_TYPE, out.payload(data.nbytes, 1, data)
    dtype = array.dtype.str
    shape = list(array.shape)
    labels = [f'dim{axis}' for axis in range(len(shape))]
    if dtype in _BYTES_ONLY:
        shape.append(array.dtype.itemsize)
        labels.append(DTYPE_LABEL + dtype)
    out.pack('I', len(shape))
    stride = 1
    strides = []
    for size in reversed(shape):
        stride *= size
        strides.append(stride)
    for label, size, dim_stride in zip(labels, shape, reversed(strides)):
        out.string(label)
        out.pack('II', size, dim_stride)
    out.pack('I', 0)  # data_offset
    kind = message_type(dtype, '')
    itemsize = 1 if dtype in _BYTES_ONLY else array.dtype.itemsize
    return kind, out.payload(data.nbytes // itemsize, itemsize, data)


class _In:
    def __init__(self, data: bytes):
        if len(data) < 4 or data[:4] != CDR_LE:
            raise BagError('bad_message', 'not a little-endian CDR message')
        self.view = memoryview(data)[4:]
        self.at = 0

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt[-1])
        self.at += -self.at % size
        values = struct.unpack_from('<' + fmt, self.view, self.at)
        self.at += struct.calcsize('<' + fmt)
        return values

    def string(self) -> str:
        (length,) = self.unpack('I')
        text = bytes(self.view[self.at:self.at + length]).rstrip(b'\0').decode()
        self.at += length
        return text

    def payload(self, itemsize: int) -> memoryview:
        (count,) = self.unpack('I')
        self.at += -self.at % min(itemsize, 8)
        end = self.at + count * itemsize
        if end > len(self.view):
            raise BagError('bad_message', f'data of {count * itemsize} B past the message end')
        return self.view[self.at:end]


def decode(kind: str, data: bytes) -> Decoded:
    """
    Decode a message written by encode() (or any Image / typed MultiArray in CDR).

    :raises BagError: for a type this module does not record, or bytes that do not fit it
    """
    try:
        return _decode(kind, data)
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise BagError('bad_message', f'{kind}: {error}') from None


def _decode(kind: str, data: bytes) -> Decoded:
    source = _In(data)
    if kind == IMAGE_TYPE:
        sec, nanosec = source.unpack('iI')
        frame_id = source.string()
        height, width = source.unpack('II')
        encoding = source.string()
        (bigendian,) = source.unpack('B')
        (step,) = source.unpack('I')
        payload = source.payload(1)
        if bigendian or step * height != len(payload) or not height:
            raise BagError('bad_message', f'{kind}: big-endian or step*height != data size')
        try:
            dtype, channels = encoding_layout(encoding)
        except DescriptorError as error:
            raise BagError('bad_message', f'{kind}: {error.detail}') from None
        array = np.frombuffer(payload, np.dtype(dtype).newbyteorder('<'))
        if step != width * channels * array.dtype.itemsize:
            raise BagError('bad_message', f'{kind}: padded rows (step {step}) are not replayed')
        return Decoded(array.reshape(image_shape(encoding, height, width)),
                       sec * 10**9 + nanosec, frame_id, encoding)
    if kind not in _BY_TYPE:
        raise BagError('unsupported_type', f'{kind} is not a type shm_player replays '
                       f'(sensor_msgs/msg/Image or a std_msgs typed MultiArray)')
    dtype, _ = _BY_TYPE[kind]
    (count,) = source.unpack('I')
    dims = []
    for _ in range(count):
        label = source.string()
        size, _stride = source.unpack('II')
        dims.append((label, size))
    (offset,) = source.unpack('I')
    itemsize = np.dtype(dtype).itemsize
    payload = source.payload(itemsize)
    shape = [size for _, size in dims]
    if dims and dims[-1][0].startswith(DTYPE_LABEL):
        dtype = dims[-1][0][len(DTYPE_LABEL):]
        shape = shape[:-1]
    array = np.frombuffer(payload, dtype)[offset // itemsize:]
    return Decoded(array.reshape(shape), 0, '', '')
