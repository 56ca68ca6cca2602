"""
A GPU backend's own stream, and copy mode's private device buffers on it.

- WorkStream: a non-blocking stream whose work starts after what the caller queued on
  CuPy's current stream (and after a producer's IPC event, for a reader), with the checked
  copies and waits the backend queues on it.
- CopyStaging: copy mode's buffers. A producer's writer fills a private buffer that is copied
  into the slot before the frame is published; a consumer reads a private copy of the slot.
"""

from typing import Optional, Tuple

from jetson_shm_ros.core.cuda.regions import Region
from jetson_shm_ros.core.cuda.runtime import call, MEMCPY_DEFAULT


class WorkStream:
    """A backend's non-blocking CuPy stream, ordered after the caller's work."""

    def __init__(self, cp, device_id: int):
        """Create the stream and the event that joins the caller's stream to it."""
        self._cp = cp
        with cp.cuda.Device(device_id):
            self.stream = call('cudaStreamCreateWithFlags',
                               lambda: cp.cuda.Stream(non_blocking=True))
            self._join_event = call('cudaEventCreateWithFlags',
                                    lambda: cp.cuda.Event(disable_timing=True))

    def join_current(self) -> None:
        """Make our stream wait for what the caller queued on CuPy's current stream."""
        current = self._cp.cuda.get_current_stream()
        if current.ptr != self.stream.ptr:
            call('cudaEventRecord', self._join_event.record, current)
            call('cudaStreamWaitEvent', self.stream.wait_event, self._join_event)

    def wait_for_writer(self, region: Region) -> None:
        """Make our stream wait for the producer's last write (a reader of cuda_ipc slots)."""
        if region.event is not None and not region.writable:
            call('cudaStreamWaitEvent', self._cp.cuda.runtime.streamWaitEvent, self.stream.ptr,
                 region.event, 0)

    def copy(self, dst: int, src: int, nbytes: int) -> None:
        """Queue cudaMemcpyAsync(dst, src) on our stream (any memory kind: unified addressing)."""
        call('cudaMemcpyAsync', self._cp.cuda.runtime.memcpyAsync, dst, src, nbytes,
             MEMCPY_DEFAULT, self.stream.ptr)

    def record(self, event: int) -> None:
        """Record an event (a producer's IPC event) after the work queued so far."""
        call('cudaEventRecord', self._cp.cuda.runtime.eventRecord, event, self.stream.ptr)

    def synchronize(self) -> None:
        """Wait until our stream has finished."""
        call('cudaStreamSynchronize', self.stream.synchronize)


class CopyStaging:
    """Copy mode's private device buffers between the caller and the slots."""

    def __init__(self, cp, device_id: int, work: WorkStream):
        """Start without buffers; they grow to the largest payload seen."""
        self._cp = cp
        self._device_id = device_id
        self._work = work
        self._stage_in = None   # consumer: the slot's bytes, copied to the device
        self._stage_out = None  # producer: what the writer fills, then copied out
        self._staged: Optional[Tuple[Region, int, int]] = None  # what _stage_in holds
        self._pending: Optional[Tuple[Region, int, int]] = None  # _stage_out not yet copied

    def writer_buffer(self, region: Region, offset: int, nbytes: int):
        """Return the producer's private buffer for a slot; flush() copies it into the slot."""
        self._stage_out = self._grown(self._stage_out, nbytes)
        self._pending = (region, offset, nbytes)
        return self._stage_out

    def reader_copy(self, region: Region, address: int, nbytes: int):
        """Return a finished private copy of a slot (the checksum's copy, when it has one)."""
        if self._staged != (region, address, nbytes):
            self.copy_in(region, address, nbytes)
        self._staged = None
        # The copy is a snapshot once this returns (the sequence check comes next).
        self._work.synchronize()
        return self._stage_in

    def copy_in(self, region: Region, address: int, nbytes: int) -> int:
        """Queue slot -> private buffer on our stream; return the buffer's address."""
        self._work.join_current()
        self._work.wait_for_writer(region)
        self._stage_in = self._grown(self._stage_in, nbytes)
        self._work.copy(self._stage_in.data.ptr, address, nbytes)
        self._staged = (region, address, nbytes)
        return self._stage_in.data.ptr

    def pending_buffer(self, region: Region, offset: int, nbytes: int) -> Optional[int]:
        """Return the device address of a writer's bytes not yet copied into that slot."""
        if self._pending != (region, offset, nbytes):
            return None
        return self._stage_out.data.ptr

    def fill_buffer(self, nbytes: int) -> int:
        """Return the address of a private buffer of nbytes for a kernel to fill."""
        self._stage_out = self._grown(self._stage_out, nbytes)
        return self._stage_out.data.ptr

    def flush(self) -> None:
        """Copy what a writer put in the private buffer into its slot."""
        if self._pending is None:
            return
        region, offset, nbytes = self._pending
        self._pending = None
        self._work.join_current()
        self._work.copy(region.address(offset, nbytes), self._stage_out.data.ptr, nbytes)

    def drop(self, region: Region) -> None:
        """Forget what refers to a region that is being released."""
        if self._staged is not None and self._staged[0] is region:
            self._staged = None
        if self._pending is not None and self._pending[0] is region:
            self._pending = None

    def release(self) -> None:
        """Drop every buffer."""
        self._staged = self._pending = None
        self._stage_in = self._stage_out = None

    def _grown(self, buffer, nbytes: int):
        if buffer is None or buffer.size < nbytes:
            with self._cp.cuda.Device(self._device_id):
                buffer = self._cp.empty(nbytes, dtype=self._cp.uint8)
        return buffer
