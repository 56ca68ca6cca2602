"""
BagWriter: messages into a rosbag2 directory, `metadata.yaml` + `<name>_<n>.mcap` (no ROS needed).

The MCAP files are written by the `mcap` package (chunked, optionally zstd-compressed, with a
summary and indexes at the end); `metadata.yaml` is rosbag2's bag description (format version
5, which every distribution from Humble on reads), so `ros2 bag info`, `ros2 bag play` and
Foxglove open the directory.

Nothing recorded is lost to a stop or a failure:

- the chunk in progress is written every `chunk_bytes`; metadata.yaml is rewritten (atomically)
  at start, after a chunk at most once a second, at a split and at close, so even a killed
  recorder leaves a bag whose metadata counts every chunk written up to a second before;
- a write that fails (disk full, I/O error) truncates the file back to the end of the last
  complete chunk, writes the summary of what is there, records one line in `error`, and
  refuses further messages: the bag then holds every message of every complete chunk. Should
  even the summary not fit, the file is left without it, which MCAP readers scan (rosbag2 and
  Foxglove do; `mcap recover` or `ros2 bag reindex` rewrite it with one).
"""

import os
import time
from typing import Dict, List, Optional, Tuple

from jetson_shm_ros.core.errors import BagError
from jetson_shm_ros.record.mcap_file import McapFile
from jetson_shm_ros.record.messages import SCHEMAS
from mcap.writer import CompressionType
import yaml

METADATA_FILE = 'metadata.yaml'
METADATA_VERSION = 5
COMPRESSIONS = {'none': CompressionType.NONE, 'zstd': CompressionType.ZSTD}
DEFAULT_CHUNK_BYTES = 4 * 2**20
_METADATA_PERIOD_S = 1.0


def _why(error: OSError) -> str:
    return error.strerror or str(error)


class BagWriter:
    """
    Write messages (CDR bytes) of a few topics into a new rosbag2 directory.

    :param path: the bag directory; it must not exist yet (or be empty)
    :param compression: 'none' or 'zstd' (per chunk, inside the MCAP file)
    :param split_bytes: start a new .mcap file past this size; 0: one file
    :param max_bytes: stop accepting messages past this many bytes in all; 0: no limit
    :param chunk_bytes: bytes of messages per MCAP chunk (the unit a failure can lose)
    :param chunk_crc: write CRC32s of the chunks, so readers detect corrupted bytes; zlib's CRC
        runs at about 0.9 GB/s on the build machine and tripled the writer's CPU per byte
    :raises BagError: 'unwritable' when the directory or file cannot be created
    """

    def __init__(self, path: str, *, compression: str = 'none', split_bytes: int = 0,
                 max_bytes: int = 0, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 chunk_crc: bool = False):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip('/')) or 'bag'
        self._compression = COMPRESSIONS[compression]
        self._compression_name = '' if compression == 'none' else compression
        self._split_bytes = split_bytes
        self._max_bytes = max_bytes
        self._chunk_bytes = chunk_bytes
        self._crc = chunk_crc
        self.error: Optional[str] = None
        self.limit_reached = False
        self.bytes_written = 0
        self.topics: Dict[str, Tuple[str, int]] = {}  # topic -> (type, committed messages)
        self._pending: Dict[str, int] = {}
        self._pending_bytes = 0
        self._done: List[McapFile] = []
        self._metadata_written = 0.0
        try:
            os.makedirs(self.path, exist_ok=True)
            if os.listdir(self.path):
                raise BagError('bag_exists', f'{self.path} exists and is not empty: rosbag2 '
                               'bags are new directories; choose another output')
            self._file = McapFile(self._next_path(), self._compression, self._crc)
            self._write_metadata()
        except OSError as error:
            raise BagError('unwritable', f'cannot write the bag {self.path}: '
                           f'{_why(error)}') from None

    @property
    def message_count(self) -> int:
        """Return the messages written to disk in complete chunks."""
        return sum(count for _, count in self.topics.values())

    @property
    def accepting(self) -> bool:
        """Tell whether write() still takes messages (no failure, no limit reached)."""
        return self.error is None and not self.limit_reached and self._file is not None

    @property
    def files(self) -> List[str]:
        """Return the .mcap file names of the bag so far."""
        return [os.path.basename(f.path) for f in self._done + [self._file] if f is not None]

    def _next_path(self) -> str:
        return os.path.join(self.path, f'{self.name}_{len(self._done)}.mcap')

    def write(self, topic: str, kind: str, log_time_ns: int, data: bytes,
              publish_time_ns: int = 0) -> bool:
        """
        Add one message (CDR bytes of type `kind`, e.g. 'sensor_msgs/msg/Image').

        :return: False when the message was not taken (failed earlier, or max_bytes reached)
        """
        if not self.accepting:
            return False
        if self._max_bytes and self.bytes_written + self._pending_bytes + len(data) > \
                self._max_bytes:
            self.limit_reached = True
            return False
        current = self._file
        known = self.topics.get(topic)
        if known is not None and known[0] != kind:
            raise BagError('type_changed', f'{topic} was recorded as {known[0]}, now {kind}: '
                           'one type per topic in a bag')
        if topic not in current.channels:
            if kind not in current.schemas:
                current.schemas[kind] = current.writer.register_schema(
                    kind, 'ros2msg', SCHEMAS[kind].encode())
            current.channels[topic] = current.writer.register_channel(
                topic, 'cdr', current.schemas[kind], {'offered_qos_profiles': ''})
            self.topics.setdefault(topic, (kind, 0))
        current.writer.add_message(current.channels[topic], log_time_ns, data,
                                   publish_time_ns or log_time_ns)
        current.pending_start_ns = log_time_ns if current.pending_start_ns is None else \
            min(current.pending_start_ns, log_time_ns)
        current.pending_end_ns = max(current.pending_end_ns, log_time_ns)
        self._pending[topic] = self._pending.get(topic, 0) + 1
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._chunk_bytes:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the chunk in progress; on failure keep the bag readable and set `error`."""
        current = self._file
        if current is None or not self._pending or self.error is not None:
            return
        try:
            current.writer.flush()
        except OSError as error:
            self._fail(f'writing {current.path} failed: {_why(error)}')
            return
        current.commit(self._pending)
        for topic, count in self._pending.items():
            kind, total = self.topics[topic]
            self.topics[topic] = (kind, total + count)
        self.bytes_written += self._pending_bytes
        self._pending.clear()
        self._pending_bytes = 0
        if self._split_bytes and current.good_offset >= self._split_bytes:
            self._split()
        elif time.monotonic() - self._metadata_written >= _METADATA_PERIOD_S:
            self._write_metadata_or_fail()

    def _split(self) -> None:
        try:
            self._finish_file()
            self._file = McapFile(self._next_path(), self._compression, self._crc)
        except OSError as error:
            self._file = None
            self._fail(f'starting {self._next_path()} failed: {_why(error)}')
            return
        self._write_metadata_or_fail()

    def _finish_file(self) -> None:
        current = self._file
        current.writer.finish()
        current.stream.flush()
        os.fsync(current.stream.fileno())
        current.stream.close()
        current.finished = True
        self._done.append(current)
        self._file = None

    def _fail(self, why: str) -> None:
        """Cut the current file back to its last complete chunk; no message is taken after."""
        lost = sum(self._pending.values())
        self.error = f'{why}; the bag keeps the {self.message_count} message(s) written ' \
                     f'before ({lost} not written)'
        self._pending.clear()
        self._pending_bytes = 0
        current, self._file = self._file, None
        if current is not None:
            self._done.append(current)
            try:
                current.finish_after_failure()
            except OSError as error:
                self.error += f'; {os.path.basename(current.path)} has no summary ' \
                    f'({_why(error)}): `mcap recover` or `ros2 bag reindex` restores it'
        self._write_metadata_or_fail()

    def _write_metadata_or_fail(self) -> None:
        try:
            self._write_metadata()
        except OSError as error:
            if self.error is None:
                self._fail(f'writing {METADATA_FILE} failed: {_why(error)}')
            else:
                self.error += f'; {METADATA_FILE} not updated: {_why(error)}'

    def _write_metadata(self) -> None:
        files = [f for f in self._done + [self._file] if f is not None]
        starts = [f.start_ns for f in files if f.start_ns is not None and f.count]
        start = min(starts) if starts else 0
        end = max((f.end_ns for f in files if f.count), default=start)
        info = {
            'version': METADATA_VERSION,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': self.message_count,
            'topics_with_message_count': [
                {'topic_metadata': {'name': topic, 'type': kind, 'serialization_format': 'cdr',
                                    'offered_qos_profiles': ''},
                 'message_count': count}
                for topic, (kind, count) in self.topics.items()],
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [os.path.basename(f.path) for f in files],
            'files': [{'path': os.path.basename(f.path),
                       'starting_time': {'nanoseconds_since_epoch': f.start_ns or 0},
                       'duration': {'nanoseconds': f.end_ns - (f.start_ns or f.end_ns)},
                       'message_count': f.count} for f in files],
        }
        if self._compression_name:
            info['custom_data'] = {'mcap_chunk_compression': self._compression_name}
        text = yaml.safe_dump({'rosbag2_bagfile_information': info}, sort_keys=False)
        target = os.path.join(self.path, METADATA_FILE)
        temporary = target + '.tmp'
        with open(temporary, 'w') as stream:
            stream.write(text)
        os.replace(temporary, target)
        self._metadata_written = time.monotonic()

    def close(self) -> None:
        """Write the last chunk and the summary, fsync, and write the final metadata.yaml."""
        if self._file is not None and self.error is None:
            self.flush()
            if self._file is not None and self.error is None:
                try:
                    self._finish_file()
                except OSError as error:
                    self._fail(f'finishing the bag failed: {_why(error)}')
                    return
        if self.error is None:
            self._write_metadata_or_fail()
