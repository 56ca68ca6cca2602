"""
GPU backends on a real GPU: kernels agree with the CPU byte for byte, across processes.

Every GPU test is skipped, with the reason, where CuPy or a CUDA device is missing; the
CPU-fallback tests at the end run there instead (and are skipped where a GPU is present).
Random payloads come from a fresh seed each run (printed on failure); buffers a kernel must
fill are poisoned first, so a kernel that does nothing cannot pass.
"""

import gc
import logging
import multiprocessing
import os
import queue
import secrets
import subprocess
import sys
import time
import traceback

from jetson_shm_ros.core.backend import CpuBackend, select_backend
from jetson_shm_ros.core.backend_protocol import Backend
from jetson_shm_ros.core.descriptor import MEMORY_CUDA_IPC, MEMORY_HOST_SHM
from jetson_shm_ros.core.errors import ArrayMismatch, BackendUnavailable
from jetson_shm_ros.core.frame_consumer import DROPPED, FrameConsumer, INVALID, VERIFIED
from jetson_shm_ros.core.frame_producer import FrameProducer
from jetson_shm_ros.core.payload import (
    checksum_words, expected_pattern_checksum, fill_pattern, pattern_words)
from jetson_shm_ros.core.segment import SHM_DIR
import numpy as np
import pytest


def _probe_gpu():
    try:
        import cupy
    except ImportError as error:
        return None, f'CuPy is not installed ({error})'
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, no device
        return None, f'no usable CUDA device ({error})'
    if count < 1:
        return None, 'no CUDA device'
    return cupy, ''


cupy, NO_GPU_REASON = _probe_gpu()
needs_gpu = pytest.mark.skipif(
    cupy is None, reason=f'GPU tests need CuPy and a CUDA GPU: {NO_GPU_REASON}')
no_gpu_only = pytest.mark.skipif(
    cupy is not None, reason='a GPU is present, so the CPU fallback is not taken')

GPU_BACKENDS = ['pinned', 'cuda_ipc']
MODES = ['zero_copy', 'copy']
TIMEOUT_S = 120
POISON = 0xA5


def _gpu(name='pinned', mode='zero_copy', **kwargs):
    from jetson_shm_ros.core import gpu_backend
    return gpu_backend.make_backend(name, mode, **kwargs)


def _live():
    from jetson_shm_ros.core.cuda.regions import live_resources
    return live_resources()


def _tools(backend):
    # Imported here, not at the top: spawned children import this module, and they must show
    # that the library alone never loads the test-only kernels.
    from jetson_shm_ros.core.cuda import tool_kernels
    return tool_kernels.for_backend(backend)


TOOL_KERNELS_MODULE = 'jetson_shm_ros.core.cuda.tool_kernels'


def _open_fds() -> int:
    return len(os.listdir('/proc/self/fd'))


def _seed() -> int:
    seed = secrets.randbits(63)
    print(f'random seed {seed}')
    return seed


def _expected_bytes(nbytes: int, frame: int) -> np.ndarray:
    buf = np.empty(nbytes, dtype=np.uint8)
    fill_pattern(buf, frame, pattern_words(nbytes // 4))
    return buf


# --- kernels against the CPU reference -------------------------------------------------------

KERNEL_SIZES = [1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 33, 63, 4095, 4096, 4099, (1 << 20) + 13,
                (8 << 20) + 4]


@needs_gpu
def test_kernels_match_the_cpu_for_every_size_and_alignment():
    backend = _gpu('pinned')
    rng = np.random.default_rng(_seed())
    kernels, stream = backend.kernels, backend.stream
    scratch = kernels.make_scratch()
    try:
        for nbytes in KERNEL_SIZES:
            for shift in (0, 1, 4, 12):  # 0: 16-byte kernels; others: the byte-wise ones
                buf = cupy.full(nbytes + 32, POISON, dtype=cupy.uint8)
                address = buf.data.ptr + shift
                frame = int(rng.integers(0, 1 << 40))
                cupy.cuda.Device().synchronize()
                kernels.fill_async(address, nbytes, frame, stream)
                stream.synchronize()
                host = buf.get()
                inside, end = host[shift:shift + nbytes], shift + nbytes
                assert np.array_equal(inside, _expected_bytes(nbytes, frame)), \
                    f'fill of {nbytes} B at +{shift}, frame {frame}'
                assert (host[:shift] == POISON).all() and (host[end:] == POISON).all(), \
                    f'fill of {nbytes} B at +{shift} wrote outside its range'

                data = rng.integers(0, 256, nbytes, dtype=np.uint8)
                if nbytes == KERNEL_SIZES[-1]:
                    data[:] = 0xFF  # the largest words: carries well past 32 bits
                buf[shift:shift + nbytes].set(data)
                scratch[0] = 12345  # poison the result
                cupy.cuda.Device().synchronize()
                kernels.checksum_async(address, nbytes, scratch, stream)
                stream.synchronize()
                assert int(scratch[0]) == checksum_words(data), \
                    f'checksum of {nbytes} B at +{shift}'
                assert int(scratch[1]) == 0, 'the block counter is reset for the next launch'
                # What the backend reads: the result the kernel stores in mapped host memory.
                assert backend.checksum_device(address, nbytes) == checksum_words(data), \
                    f'checksum of {nbytes} B at +{shift}, read from the host word'
    finally:
        backend.close()


@needs_gpu
@pytest.mark.parametrize('pointer', ['auto', 'device'])
def test_the_checksum_result_word_is_rewritten_every_launch(pointer):
    backend = _gpu('cuda_ipc', pointer=pointer)
    try:
        buf = cupy.zeros(4096, dtype=cupy.uint8)
        results = []
        for value in (0, 1, 255, 7, 0):
            buf.fill(value)
            cupy.cuda.Device().synchronize()
            results.append(backend.checksum_device(buf.data.ptr, buf.nbytes))
        word = sum(v << (8 * k) for k, v in enumerate([1, 1, 1, 1]))
        assert results == [0, 1024 * word, 1024 * 255 * word, 1024 * 7 * word, 0]
    finally:
        backend.close()


# --- one process: the backend contract -------------------------------------------------------

CONTRACT_CASES = [('pinned', 'zero_copy', 'auto'), ('pinned', 'zero_copy', 'device'),
                  ('pinned', 'copy', 'auto'), ('cuda_ipc', 'zero_copy', 'auto'),
                  ('cuda_ipc', 'copy', 'auto')]


@needs_gpu
@pytest.mark.parametrize('name,mode,pointer', CONTRACT_CASES)
def test_backend_contract_in_one_process(shm_name, name, mode, pointer):
    producer = FrameProducer(shm_name, 3, '<u2', [3, 1021],
                             backend=_gpu(name, mode, pointer=pointer))
    consumer = FrameConsumer(_gpu(name, mode, pointer=pointer))
    seen = []

    def process(array, desc):
        interface = array.__cuda_array_interface__
        seen.append((type(array).__module__.split('.')[0], array.dtype.str, array.shape,
                     interface['data'][0], int(array.view(cupy.uint16)[0, 0])))

    consumer.process = process
    try:
        backend = producer.backend
        assert backend.name == name and backend.mode == mode
        assert backend.memory_kind == (MEMORY_HOST_SHM if name == 'pinned' else MEMORY_CUDA_IPC)
        assert 'cc ' in backend.device and backend.pointer_source in (
            'host pointer', 'cudaHostGetDevicePointer')
        if pointer == 'device':
            assert backend.pointer_source == 'cudaHostGetDevicePointer'
        for frame in range(6):
            desc = producer.try_write_pattern()
            assert desc.checksum == expected_pattern_checksum(producer.nbytes, frame)
            assert desc.memory_kind == backend.memory_kind
            assert len(desc.cuda_ipc_handle) == (64 if name == 'cuda_ipc' else 0)
            assert consumer.handle(desc) == VERIFIED, consumer.summary()
        module, dtype, shape, address, first = seen[-1]
        assert (module, dtype, shape) == ('cupy', '<u2', (3, 1021))
        assert first == int(_expected_bytes(4, 5).view('<u2')[0])
        slot_address = producer.backend.device_address(producer.pool, desc.offset, desc.nbytes)
        if mode == 'zero_copy' and name == 'pinned':
            # The consumer's own mapping of the same slot: a different host address, pinned.
            assert address != slot_address
        if mode == 'zero_copy' and name == 'cuda_ipc':
            assert address == slot_address, 'same process: the exported allocation itself'
        assert consumer.summary().startswith('received=6 verified=6 dropped=0 invalid=0')
    finally:
        consumer.close()
        producer.close()


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_a_writer_without_the_sequence_lock_is_caught_by_the_gpu_checksum(shm_name, name):
    producer = FrameProducer(shm_name, 2, 'uint8', [1 << 16], backend=_gpu(name))
    consumer = FrameConsumer(_gpu(name))
    try:
        desc = producer.try_write_pattern()
        backend = producer.backend
        address = backend.device_address(producer.pool, desc.offset, desc.nbytes)
        _tools(backend).scribble_async(address, desc.nbytes, 0.0, backend.stream)  # no seqlock
        backend.synchronize()
        assert consumer.handle(desc) == INVALID
        assert consumer.invalid_reasons['checksum_mismatch'] == 1
        assert consumer.counts[VERIFIED] == 0
    finally:
        consumer.close()
        producer.close()


# --- copy_into: a caller's array into a slot with one copy ---------------------------------

class _CudaArrayInterfaceOnly:
    """A device array that offers __cuda_array_interface__ and nothing else (as Numba does)."""

    def __init__(self, array):
        self._array = array

    @property
    def __cuda_array_interface__(self):
        return self._array.__cuda_array_interface__


def _slot_bytes(backend, pool, offset, nbytes):
    """Read the slot's bytes as they are in memory, with one plain cudaMemcpy."""
    from jetson_shm_ros.core.cuda.runtime import MEMCPY_DEFAULT
    backend.synchronize()
    host = np.empty(nbytes, dtype=np.uint8)
    cupy.cuda.runtime.memcpy(host.ctypes.data, backend.device_address(pool, offset, nbytes),
                             nbytes, MEMCPY_DEFAULT)
    return host


def _torch_cuda():
    torch = pytest.importorskip('torch', reason='PyTorch is not installed')
    if not torch.cuda.is_available():
        pytest.skip('PyTorch sees no CUDA device')
    return torch


COPY_SOURCES = ['numpy', 'cupy', 'cuda_array_interface', 'torch']
COPY_SHAPE = (3, 257, 5)


def _copy_source(kind, data):
    if kind == 'numpy':
        return data
    if kind == 'cupy':
        return cupy.asarray(data)
    if kind == 'cuda_array_interface':
        return _CudaArrayInterfaceOnly(cupy.asarray(data))
    torch = _torch_cuda()
    return torch.from_numpy(data.copy()).to('cuda')


@needs_gpu
@pytest.mark.parametrize('source_kind', COPY_SOURCES)
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_copy_into_puts_every_source_kind_into_the_slot(shm_name, name, mode, source_kind):
    producer = FrameProducer(shm_name, 2, '<i2', list(COPY_SHAPE), backend=_gpu(name, mode))
    try:
        backend, pool, nbytes = producer.backend, producer.pool, producer.nbytes
        rng = np.random.default_rng(_seed())
        data = rng.integers(-2**15, 2**15, COPY_SHAPE, dtype='<i2')
        source = _copy_source(source_kind, data)
        for slot in range(2):
            offset = pool.slot_bounds(slot)[0]
            backend.fill_pattern(pool, offset, nbytes, 11)  # poison: a no-op copy cannot pass
            backend.copy_into(pool, offset, nbytes, '<i2', COPY_SHAPE, source)
            backend.synchronize()
            want = data.reshape(-1).view(np.uint8)
            assert np.array_equal(_slot_bytes(backend, pool, offset, nbytes), want), \
                f'{source_kind} into slot {slot} of {name}/{mode}'
            assert backend.checksum(pool, offset, nbytes) == checksum_words(want)
    finally:
        producer.close()


@needs_gpu
@pytest.mark.parametrize('mode', MODES)
def test_a_pinned_producer_sums_what_it_copies_and_the_consumer_agrees(shm_name, mode):
    """Past the CPU checksum's size: publish()'s device source, or a loan, summed on the GPU."""
    shape = [(1 << 20) + 3]  # a tail of three bytes
    producer = FrameProducer(shm_name, 2, 'uint8', shape, backend=_gpu('pinned', mode))
    consumer = FrameConsumer(_gpu('pinned', mode))
    try:
        rng = np.random.default_rng(_seed())
        for frame in range(4):
            data = rng.integers(0, 256, shape, dtype=np.uint8)
            if frame % 2:  # a loan: the writer fills the slot (copy mode: a device buffer)
                desc = producer.try_write(lambda array: array.set(data))
            else:  # publish(array) from device memory
                write = producer.begin()
                producer.backend.copy_into(producer.pool, write.offset, producer.nbytes, '|u1',
                                           shape, cupy.asarray(data))
                desc = producer.commit(write)
            assert desc.checksum == checksum_words(data), f'frame {frame}, {mode}'
            assert consumer.handle(desc) == VERIFIED, consumer.summary()
    finally:
        consumer.close()
        producer.close()


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_copy_into_waits_for_the_callers_stream(shm_name, name):
    producer = FrameProducer(shm_name, 1, 'uint8', [1 << 20], backend=_gpu(name))
    try:
        backend, pool, nbytes = producer.backend, producer.pool, producer.nbytes
        offset = pool.slot_bounds(0)[0]
        backend.fill_pattern(pool, offset, nbytes, 3)
        source = cupy.zeros(nbytes, dtype=cupy.uint8)
        backend.synchronize()
        side = cupy.cuda.Stream(non_blocking=True)
        with side:
            _tools(backend).spin_async(0.2, side)  # the caller's stream is busy ...
            source.fill(0x3C)  # ... and only then writes the source
            backend.copy_into(pool, offset, nbytes, 'uint8', [nbytes], source)
        backend.synchronize()
        assert (_slot_bytes(backend, pool, offset, nbytes) == 0x3C).all(), \
            'the copy ran before the caller finished writing its array'
    finally:
        producer.close()


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_copy_into_waits_for_a_torch_side_stream(shm_name, name):
    torch = _torch_cuda()
    if not hasattr(torch.cuda, '_sleep'):
        pytest.skip('this PyTorch has no torch.cuda._sleep to hold a stream busy')
    producer = FrameProducer(shm_name, 1, '<f4', [512, 512], backend=_gpu(name))
    try:
        backend, pool, nbytes = producer.backend, producer.pool, producer.nbytes
        offset = pool.slot_bounds(0)[0]
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            tensor = torch.zeros((512, 512), dtype=torch.float32, device='cuda')
            torch.cuda._sleep(200_000_000)  # about 0.1 s of GPU clock cycles on this stream
            tensor.fill_(2.5)
            backend.copy_into(pool, offset, nbytes, '<f4', (512, 512), tensor)
        backend.synchronize()
        values = _slot_bytes(backend, pool, offset, nbytes).view('<f4')
        assert (values == 2.5).all(), 'the copy ran before PyTorch finished writing the tensor'
    finally:
        producer.close()


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_copy_into_refuses_device_arrays_that_do_not_fit(shm_name, name):
    producer = FrameProducer(shm_name, 1, '<u2', [64, 32], backend=_gpu(name))
    try:
        backend, pool, nbytes = producer.backend, producer.pool, producer.nbytes
        offset = pool.slot_bounds(0)[0]
        wide = cupy.zeros((64, 64), dtype='<u2')
        cases = {'dtype_mismatch': cupy.zeros((64, 32), dtype='<i2'),
                 'shape_mismatch': cupy.zeros((32, 64), dtype='<u2'),
                 'not_contiguous': wide[:, ::2]}
        for reason, source in cases.items():
            with pytest.raises(ArrayMismatch) as caught:
                backend.copy_into(pool, offset, nbytes, '<u2', (64, 32), source)
            assert caught.value.reason == reason
    finally:
        producer.close()


@needs_gpu
@pytest.mark.parametrize('source_kind', ['cupy', 'cuda_array_interface', 'torch'])
def test_cpu_backend_copies_a_device_array_straight_into_the_slot(shm_name, source_kind):
    producer = FrameProducer(shm_name, 1, '<f8', [100, 7], backend=CpuBackend())
    try:
        pool, nbytes = producer.pool, producer.nbytes
        offset = pool.slot_bounds(0)[0]
        data = np.random.default_rng(_seed()).standard_normal((100, 7))
        pool.view(offset, nbytes)[:] = POISON
        producer.backend.copy_into(pool, offset, nbytes, '<f8', (100, 7),
                                   _copy_source(source_kind, data))
        assert np.array_equal(pool.view(offset, nbytes).view('<f8').reshape(100, 7), data)
    finally:
        producer.close()


# --- two processes: GPU writer in one, GPU reader in the other --------------------------------

def _consumer_child(name, mode, descriptors, results, frames):
    """Spawned consumer: verify with its own GPU backend and digest what process() saw."""
    try:
        import cupy as cp
        consumer = FrameConsumer(_gpu(name, mode))
        digests = {}
        out = None

        def process(array, desc):
            nonlocal out
            if out is None or out.size < desc.nbytes:
                out = cp.empty(desc.nbytes, dtype=cp.uint8)
            out.fill(POISON)  # a copy that did nothing cannot pass
            out[:desc.nbytes] = array.reshape(-1).view(cp.uint8)
            digests[desc.sequence] = checksum_words(out[:desc.nbytes].get())

        consumer.process = process
        try:
            statuses = [consumer.handle(descriptors.get(timeout=TIMEOUT_S))
                        for _ in range(frames)]
            report = {'counts': dict(consumer.counts), 'statuses': statuses,
                      'drop_reasons': dict(consumer.drop_reasons),
                      'invalid_reasons': dict(consumer.invalid_reasons),
                      'digests': digests, 'resources': _live(),
                      'tool_kernels_loaded': TOOL_KERNELS_MODULE in sys.modules}
        finally:
            consumer.close()
        gc.collect()
        report['resources_after_close'] = _live()
        results.put(report)
    except BaseException:
        results.put({'error': traceback.format_exc()})


def _receive(channel, child):
    """Next message from a spawned child; fail at once if it died without sending one."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            return channel.get(timeout=0.5)
        except queue.Empty:
            if not child.is_alive():
                try:
                    return channel.get(timeout=1.0)
                except queue.Empty:
                    pytest.fail(f'child process exited with code {child.exitcode}, no message')
            if time.monotonic() > deadline:
                pytest.fail(f'no message from the child process within {TIMEOUT_S} s')


def _write_until_accepted(attempt):
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desc = attempt()
        if desc is not None:
            return desc
        assert time.monotonic() < deadline, 'the consumer never released a slot'
        time.sleep(0.0005)


@needs_gpu
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_two_processes_gpu_writer_and_gpu_reader_agree(shm_name, name, mode):
    frames = 24
    rng = np.random.default_rng(_seed())
    ctx = multiprocessing.get_context('spawn')
    descriptors, results = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_consumer_child, args=(name, mode, descriptors, results, frames))
    child.start()
    producer = FrameProducer(shm_name, 3, 'uint8', [509, 1031], policy='reliable',
                             backend=_gpu(name, mode), required_readers=1,
                             release_timeout_s=TIMEOUT_S)
    expected = {}
    try:
        for sent in range(frames):
            if sent % 2:
                # A user writer: fresh random bytes, written with CuPy into the slot's array.
                data = rng.integers(0, 256, producer.nbytes, dtype=np.uint8)
                source = cupy.asarray(data).reshape(producer.shape)
                want = checksum_words(data)

                def attempt(source=source):
                    return producer.try_write(lambda array: array.__setitem__(Ellipsis, source))
            else:
                want = expected_pattern_checksum(producer.nbytes, producer.frames_published)
                attempt = producer.try_write_pattern
            desc = _write_until_accepted(attempt)
            assert desc.checksum == want, f'producer GPU checksum of frame {sent}'
            expected[desc.sequence] = want
            descriptors.put(desc)
        report = _receive(results, child)
        child.join(TIMEOUT_S)
    finally:
        producer.close()
        if child.is_alive():
            child.kill()
    assert 'error' not in report, report.get('error')
    counts = report['counts']
    assert counts[VERIFIED] == frames, report
    assert counts[INVALID] == 0 and counts[DROPPED] == 0, report
    assert report['digests'] == expected, 'what process() saw differs from what was written'
    resources = report['resources']
    if name == 'pinned':
        assert resources['host_registrations'] == 1, resources
    else:
        assert (resources['ipc_mem_opened'], resources['ipc_events_opened']) == (1, 1), resources
    assert not any(report['resources_after_close'].values()), report['resources_after_close']
    assert not report['tool_kernels_loaded'], 'the library compiled the test-only kernels'
    assert child.exitcode == 0
    assert not os.path.exists(SHM_DIR + shm_name)


# --- torn writes: a kernel in another process still writing the slot --------------------------

def _scribbling_producer(name, shm_name, commands, replies):
    """Spawned producer: publish one frame, then on request let a kernel rewrite its slot."""
    from jetson_shm_ros.core.errors import SegmentError
    producer = None
    try:
        producer = FrameProducer(shm_name, 2, 'uint8', [1 << 20], policy='latest',
                                 backend=_gpu(name))
        desc = producer.try_write_pattern()
        replies.put(desc)
        backend, pool = producer.backend, producer.pool
        address = backend.device_address(pool, desc.offset, desc.nbytes)
        while commands.get(timeout=TIMEOUT_S) == 'scribble':
            try:
                pool.begin_write(desc.slot)  # a writer owns the slot again (odd sequence) ...
            except SegmentError as error:
                replies.put(error.reason)  # ... unless a reader has claimed it
                continue
            _tools(backend).scribble_async(address, desc.nbytes, 0.5, backend.stream)
            replies.put('scribbling')  # ... and its kernel is writing it right now
            backend.synchronize()
            pool.end_write(desc.slot)
            replies.put('done')
    except BaseException:
        replies.put({'error': traceback.format_exc()})
    finally:
        if producer is not None:
            producer.close()


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_a_kernel_never_rewrites_a_claimed_slot_and_stale_reads_drop(shm_name, name):
    ctx = multiprocessing.get_context('spawn')
    commands, replies = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_scribbling_producer, args=(name, shm_name, commands, replies))
    child.start()
    consumer = FrameConsumer(_gpu(name))
    seen = {}
    try:
        desc = _receive(replies, child)
        assert not isinstance(desc, dict), desc.get('error')

        def process(array, _):
            commands.put('scribble')
            # The consumer holds a claim on the slot while its callback runs.
            seen['reply'] = _receive(replies, child)
            seen['sum'] = int(array.astype(cupy.uint64).sum())

        consumer.process = process
        assert consumer.handle(desc) == VERIFIED, consumer.summary()
        assert seen['reply'] == 'slot_claimed', seen
        consumer.process = None
        commands.put('scribble')  # no claim now: the kernel rewrites the slot
        assert _receive(replies, child) == 'scribbling'
        assert _receive(replies, child) == 'done'
        assert consumer.handle(desc) == DROPPED, 'the slot holds a newer write now'
        assert consumer.drop_reasons['overwritten_before_read'] == 1
        assert consumer.counts[VERIFIED] == 1 and consumer.counts[INVALID] == 0, \
            consumer.summary()
        assert 'sum' in seen
        commands.put('stop')
        child.join(TIMEOUT_S)
        assert child.exitcode == 0
    finally:
        consumer.close()
        if child.is_alive():
            child.kill()


def _bad_handle_child(good, results):
    try:
        from dataclasses import replace
        consumer = FrameConsumer(_gpu('cuda_ipc'))
        try:
            bad = replace(good, cuda_ipc_handle=bytes(range(64)))
            statuses = [consumer.handle(bad), consumer.handle(good)]
            results.put({'statuses': statuses, 'invalid_reasons': dict(consumer.invalid_reasons)})
        finally:
            consumer.close()
    except BaseException:
        results.put({'error': traceback.format_exc()})


@needs_gpu
def test_a_forged_ipc_handle_is_invalid_and_the_consumer_keeps_working(shm_name):
    producer = FrameProducer(shm_name, 2, 'uint8', [4096], backend=_gpu('cuda_ipc'),
                             policy='reliable', required_readers=1, release_timeout_s=TIMEOUT_S)
    ctx = multiprocessing.get_context('spawn')
    results = ctx.Queue()
    try:
        good = producer.try_write_pattern()
        child = ctx.Process(target=_bad_handle_child, args=(good, results))
        child.start()
        report = _receive(results, child)
        child.join(TIMEOUT_S)
    finally:
        producer.close()
    assert 'error' not in report, report.get('error')
    assert report['statuses'] == [INVALID, VERIFIED], report
    assert report['invalid_reasons'] == {'bad_ipc_handle': 1}, report


# --- many frames: nothing grows --------------------------------------------------------------

def _snapshot():
    gc.collect()
    free, _ = cupy.cuda.runtime.memGetInfo()
    return _open_fds(), _live(), free


@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_many_frames_and_restarts_hold_no_growing_resources(shm_name, name):
    baseline = _snapshot()
    consumer = FrameConsumer(_gpu(name))
    consumer.process = lambda array, desc: array.sum()  # arrays come and go every frame
    producer = None
    try:
        for incarnation in range(4):
            # A restarted producer: the consumer must forget the old segment and map the new.
            if producer is not None:
                producer.close()
            producer = FrameProducer(shm_name, 4, 'uint8', [64 * 1024], backend=_gpu(name))
            for _ in range(20):
                assert consumer.handle(producer.try_write_pattern()) == VERIFIED
            if incarnation == 0:
                warm = _snapshot()
        for _ in range(600):
            assert consumer.handle(producer.try_write_pattern()) == VERIFIED
        fds, live, free = _snapshot()
        assert fds == warm[0], f'open file descriptors grew from {warm[0]} to {fds}'
        assert live == warm[1], f'CUDA resources grew: {warm[1]} -> {live}'
        assert abs(free - warm[2]) <= 4 << 20, f'free device memory {warm[2]} -> {free}'
        kind = 'host_registrations' if name == 'pinned' else 'device_allocations'
        assert live[kind] - baseline[1][kind] == (2 if name == 'pinned' else 1), live
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
    assert _snapshot()[1] == baseline[1], 'closing released every registration and handle'
    assert consumer.counts[INVALID] == 0 and consumer.evictions == 0


# --- DLPack: hand a slot to PyTorch without copying ------------------------------------------

@needs_gpu
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_dlpack_hands_slots_to_pytorch_without_a_copy(shm_name, name):
    torch = pytest.importorskip('torch', reason='PyTorch is not installed')
    if not torch.cuda.is_available():
        pytest.skip('PyTorch sees no CUDA device')
    producer = FrameProducer(shm_name, 2, '<i4', [256, 1024], backend=_gpu(name))
    consumer = FrameConsumer(_gpu(name))
    seen = {}
    try:
        values = torch.randint(-2**31, 2**31 - 1, (256, 1024), dtype=torch.int32, device='cuda')

        def torch_writer(array):
            tensor = torch.from_dlpack(array)
            seen['writer'] = (tensor.data_ptr(), array.data.ptr)
            tensor.copy_(values)  # PyTorch writes the slot itself

        desc = producer.try_write(torch_writer)
        expected = values.cpu().numpy()
        assert desc.checksum == checksum_words(expected.reshape(-1).view(np.uint8))

        def process(array, _):
            tensor = torch.from_dlpack(array)
            seen['reader'] = (tensor.data_ptr(), array.data.ptr,
                              array.__cuda_array_interface__['data'][0], tensor.device.type)
            seen['values'] = tensor.cpu().numpy()

        consumer.process = process
        assert consumer.handle(desc) == VERIFIED, consumer.summary()
        assert seen['writer'][0] == seen['writer'][1], 'the writer got a copy, not the slot'
        reader_ptr, array_ptr, interface_ptr, device = seen['reader']
        assert reader_ptr == array_ptr == interface_ptr, 'the reader got a copy, not the slot'
        assert np.array_equal(seen['values'], expected)
        print(f'{name}: torch sees the slot as a {device} tensor at {reader_ptr:#x}')
    finally:
        consumer.close()
        producer.close()


@needs_gpu
def test_auto_picks_by_gpu_kind_and_explicit_backends_are_built():
    from jetson_shm_ros.core.cuda.device import DeviceInfo
    info = DeviceInfo(cupy)
    auto = select_backend('auto')
    try:
        assert isinstance(auto, Backend)
        assert auto.name == ('pinned' if info.integrated else 'cuda_ipc')
        assert auto.device == info.description
        print(f'auto -> {auto.name} on {auto.device}, pointer {auto.pointer_source}')
    finally:
        auto.close()
    for name in GPU_BACKENDS if not info.integrated else ['pinned']:
        backend = select_backend(name, 'copy')
        assert (backend.name, backend.mode) == (name, 'copy')
        backend.close()


# --- CuPy stays optional: these run everywhere, with CuPy blocked in a child interpreter ------

_WITHOUT_CUPY = """
import sys
sys.modules['cupy'] = None  # import cupy now raises ImportError, installed or not
import importlib, pkgutil
from jetson_shm_ros.core.backend import CpuBackend, select_backend
from jetson_shm_ros.core.frame_consumer import FrameConsumer
from jetson_shm_ros.core.frame_producer import FrameProducer
assert isinstance(select_backend('auto'), CpuBackend)
assert 'jetson_shm_ros.core.cuda.tool_kernels' not in sys.modules, 'library loaded tool kernels'
import jetson_shm_ros.core
for module in pkgutil.walk_packages(jetson_shm_ros.core.__path__, 'jetson_shm_ros.core.'):
    importlib.import_module(module.name)
    print(module.name)
assert sys.modules['cupy'] is None
"""

_DEVICE_SOURCE_WITHOUT_CUPY = """
import sys
sys.modules['cupy'] = None
from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.errors import ArrayMismatch
from jetson_shm_ros.core.slot_pool import SlotPool


class DeviceArray:  # what CuPy or PyTorch would offer; never dereferenced here
    __cuda_array_interface__ = {'shape': (4,), 'typestr': '<f4', 'data': (0, False),
                                'version': 3}


pool = SlotPool.create(sys.argv[1], 1, 16)
try:
    CpuBackend().copy_into(pool, pool.slot_bounds(0)[0], 16, '<f4', (4,), DeviceArray())
except ArrayMismatch as error:
    print('reason', error.reason)
finally:
    pool.close()
"""


def _run_without_cupy(script, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in sys.path if path))
    done = subprocess.run([sys.executable, '-c', script, *args], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_every_core_module_imports_without_cupy_and_auto_falls_back_to_cpu():
    imported = _run_without_cupy(_WITHOUT_CUPY)
    for module in ('gpu_backend', 'cpu_backend', 'backend_protocol', 'array_source',
                   'cuda.runtime', 'cuda.device', 'cuda.regions', 'cuda.kernels',
                   'cuda.staging', 'cuda.tool_kernels'):
        assert f'jetson_shm_ros.core.{module}' in imported, imported


def test_a_device_array_into_the_cpu_backend_without_cupy_is_refused_with_a_reason(shm_name):
    assert _run_without_cupy(_DEVICE_SOURCE_WITHOUT_CUPY, shm_name) == ['reason', 'needs_cupy']


# --- no GPU: the CPU fallback ----------------------------------------------------------------

class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@no_gpu_only
def test_without_gpu_auto_falls_back_to_cpu_with_one_log_line():
    records = _Records()
    logger = logging.getLogger('jetson_shm_ros')
    logger.addHandler(records)
    try:
        backend = select_backend('auto')
    finally:
        logger.removeHandler(records)
    assert isinstance(backend, CpuBackend)
    assert len(records.records) == 1, [r.getMessage() for r in records.records]
    assert 'CPU' in records.records[0].getMessage()


@no_gpu_only
@pytest.mark.parametrize('name', GPU_BACKENDS)
def test_without_gpu_an_explicit_gpu_backend_raises(name):
    with pytest.raises(BackendUnavailable, match=name):
        select_backend(name)
