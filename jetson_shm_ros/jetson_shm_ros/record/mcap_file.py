"""One .mcap file of a bag: its mcap Writer, what is on disk, and the repair after a failure."""

import os
from typing import Dict, Optional

from mcap.writer import CompressionType, Writer


class McapFile:
    """
    One .mcap file of a bag and what of it is on disk (complete chunks).

    :param path: the file to create (it must not exist)
    :param compression: of the chunks
    :param crc: write CRC32s of the chunks and the summary (checked when read)
    """

    def __init__(self, path: str, compression: CompressionType, crc: bool = False):
        self.path = path
        self.stream = open(path, 'xb')
        # Chunks are finished by BagWriter (writer.flush()), never inside add_message.
        self.writer = Writer(self.stream, chunk_size=2**62, compression=compression,
                             enable_crcs=crc)
        self.writer.start(profile='ros2', library='jetson_shm_ros shm_recorder')
        self.writer.flush()
        self.good_offset = self.stream.tell()
        self.channels: Dict[str, int] = {}
        self.schemas: Dict[str, int] = {}
        self.count = 0  # messages in complete chunks
        self.by_channel: Dict[int, int] = {}
        self.start_ns: Optional[int] = None  # of the messages in complete chunks
        self.end_ns = 0
        self.pending_start_ns: Optional[int] = None
        self.pending_end_ns = 0
        self.finished = False

    def commit(self, pending: Dict[str, int]) -> None:
        """Count the chunk just written (topic -> messages) as on disk."""
        self.good_offset = self.stream.tell()
        for topic, count in pending.items():
            self.count += count
            channel = self.channels[topic]
            self.by_channel[channel] = self.by_channel.get(channel, 0) + count
        if self.pending_start_ns is not None:
            self.start_ns = self.pending_start_ns if self.start_ns is None else \
                min(self.start_ns, self.pending_start_ns)
            self.end_ns = max(self.end_ns, self.pending_end_ns)
        self.pending_start_ns = None

    def finish_after_failure(self) -> None:
        """
        Cut the file back to its last complete chunk and write the summary of what is there.

        The failed write left the mcap Writer in the middle of a chunk; its state is set back
        to the complete chunks (private attributes of mcap 1.6.0, pinned in requirements) and
        it writes the summary and footer on a fresh handle, so every reader opens the file.
        :raises OSError: when even that cannot be written (the file is then cut again)
        """
        try:
            self.stream.close()  # its buffer holds the bytes that could not be written
        except OSError:
            pass
        with open(self.path, 'r+b') as stream:
            stream.truncate(self.good_offset)
            stream.seek(self.good_offset)
            writer = self.writer
            writer._Writer__stream = stream
            writer._Writer__chunk_builder.reset()
            writer._Writer__record_builder.end()
            statistics = writer._Writer__statistics
            statistics.message_count = self.count
            statistics.channel_message_counts.clear()
            statistics.channel_message_counts.update(self.by_channel)
            statistics.chunk_count = len(writer._Writer__chunk_indices)
            statistics.message_start_time = self.start_ns or 0
            statistics.message_end_time = self.end_ns
            try:
                writer.finish()
                stream.flush()
                os.fsync(stream.fileno())
            except OSError:
                stream.truncate(self.good_offset)
                raise
        self.finished = True
