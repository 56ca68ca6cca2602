"""
BagReader: the messages of a rosbag2 MCAP bag in file order (no ROS needed).

A bag is a directory with `metadata.yaml` naming its .mcap files (what shm_recorder and
`ros2 bag record -s mcap` write), a directory of .mcap files without metadata, or one .mcap
file. Files are streamed record by record with their CRCs checked, so a file without its
summary (a recorder that was killed, or cut at a full disk) is read up to its last complete
chunk, and a truncated or corrupted one raises one BagError line after its good messages.
"""

import glob
import os
import struct
from typing import Iterator, List, NamedTuple, Optional, Sequence

from jetson_shm_ros.core.errors import BagError
from mcap.exceptions import EndOfFile, McapError
from mcap.reader import NonSeekingReader
import yaml

try:
    from zstandard import ZstdError
except ImportError:  # mcap needs zstandard to read compressed chunks
    ZstdError = McapError

_READ_ERRORS = (McapError, ZstdError, struct.error, ValueError, KeyError, EOFError,
                MemoryError, UnicodeDecodeError)
# A record larger than this is corruption, not a frame (mcap's default allows 4 GiB).
MAX_RECORD_BYTES = 2**31


class BagMessage(NamedTuple):
    """One message of a bag."""

    topic: str
    kind: str  # e.g. 'sensor_msgs/msg/Image'
    log_time_ns: int
    data: bytes
    publish_time_ns: int = 0  # shm_recorder: the frame's header stamp


def bag_files(path: str) -> List[str]:
    """
    Return the .mcap files of a bag directory (in metadata.yaml's order) or the file itself.

    :raises BagError: 'no_bag' when there is nothing to read, 'bad_metadata' for a
        metadata.yaml that is not rosbag2's or names MCAP files that are missing
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise BagError('no_bag', f'{path}: no such bag (a directory with metadata.yaml, or an '
                       '.mcap file)')
    metadata = os.path.join(path, 'metadata.yaml')
    if not os.path.isfile(metadata):
        files = sorted(glob.glob(os.path.join(path, '*.mcap')))
        if not files:
            raise BagError('no_bag', f'{path}: neither metadata.yaml nor .mcap files')
        return files
    try:
        with open(metadata) as stream:
            info = yaml.safe_load(stream)['rosbag2_bagfile_information']
        storage = info.get('storage_identifier', '')
        names = list(info['relative_file_paths'])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        raise BagError('bad_metadata', f'{metadata} is not rosbag2 metadata: {error}') from None
    if storage != 'mcap':
        raise BagError('bad_metadata', f'{path} is stored as {storage!r}; shm_player reads '
                       'mcap bags (ros2 bag convert can turn others into mcap)')
    files = [os.path.join(path, name) for name in names]
    missing = [name for name, file in zip(names, files) if not os.path.isfile(file)]
    if missing:
        raise BagError('bad_metadata', f'{path}: file(s) {", ".join(missing)} named in '
                       'metadata.yaml are missing')
    return files


class BagReader:
    """
    Read the messages of a bag, optionally of some topics only.

    :param path: bag directory or .mcap file
    :param topics: only these topics; empty: all
    :raises BagError: when the bag cannot be found (see bag_files)
    """

    def __init__(self, path: str, topics: Optional[Sequence[str]] = None):
        self.path = path
        self.files = bag_files(path)
        self._topics = set(topics or ())

    def messages(self) -> Iterator[BagMessage]:
        """
        Yield every message in file order.

        :raises BagError: 'corrupt_bag' (after the good messages) for a truncated or
            corrupted file, saying which file and after how many messages
        """
        for file in self.files:
            count = 0
            try:
                with open(file, 'rb') as stream:
                    reader = NonSeekingReader(stream, validate_crcs=True,
                                              record_size_limit=MAX_RECORD_BYTES)
                    for schema, channel, message in reader.iter_messages(
                            log_time_order=False):
                        if self._topics and channel.topic not in self._topics:
                            continue
                        count += 1
                        yield BagMessage(channel.topic, schema.name if schema else '',
                                         message.log_time, message.data,
                                         message.publish_time)
            except OSError as error:
                raise BagError('unreadable', f'{file}: {error.strerror or error}') from None
            except _READ_ERRORS as error:
                detail = 'the file ends inside a record' if isinstance(error, EndOfFile) \
                    else str(error) or type(error).__name__
                raise BagError('corrupt_bag', f'{file} is truncated or corrupted after '
                               f'{count} message(s): {detail}') from None
