"""
The CPU backend and the backend contract: copy_into from host arrays, refusals, the protocol.

Device sources (CuPy, PyTorch CUDA) into the CPU backend are covered in test_gpu.py.
"""

import inspect

from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.backend_protocol import Backend
from jetson_shm_ros.core.errors import ArrayMismatch, ShmRosError
from jetson_shm_ros.core.gpu_backend import GpuBackend
from jetson_shm_ros.core.payload import checksum_words
from jetson_shm_ros.core.slot_pool import SlotPool
import numpy as np
import pytest

POISON = 0xA5
CONTRACT_METHODS = ('prepare', 'forget', 'array', 'copy_into', 'fill_pattern', 'checksum',
                    'synchronize', 'ipc_handles', 'close')


class _DLPackOnly:
    """A host array offered only through DLPack (NumPy produces the capsule)."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class _ArrayInterfaceOnly:
    """A host array offered only through __array_interface__."""

    def __init__(self, array):
        self._array = array

    @property
    def __array_interface__(self):
        return self._array.__array_interface__


@pytest.fixture
def slot(shm_name):
    """Yield (backend, pool, offset) of a prepared one-slot pool whose bytes are poisoned."""
    backend = CpuBackend()
    pool = SlotPool.create(shm_name, 1, 4096)
    backend.prepare(pool)
    offset = pool.slot_bounds(0)[0]
    pool.view(offset, 4096)[:] = POISON
    yield backend, pool, offset
    backend.forget(pool)
    pool.close()


@pytest.mark.parametrize('wrap', [lambda a: a, _DLPackOnly, _ArrayInterfaceOnly],
                         ids=['numpy', 'dlpack', 'array_interface'])
@pytest.mark.parametrize('dtype,shape', [('<u2', (16, 8)), ('<f4', (3, 5, 7)), ('|u1', (1,))])
def test_copy_into_copies_a_host_array_into_the_slot(slot, dtype, shape, wrap):
    backend, pool, offset = slot
    data = np.random.default_rng(7).integers(0, 200, shape).astype(dtype)
    nbytes = data.nbytes
    backend.copy_into(pool, offset, nbytes, dtype, shape, wrap(data))
    backend.synchronize()
    want = data.reshape(-1).view(np.uint8)
    assert np.array_equal(pool.view(offset, nbytes), want)
    assert backend.checksum(pool, offset, nbytes) == checksum_words(want)
    assert (pool.view(offset + nbytes, 4096 - nbytes) == POISON).all(), 'wrote past the payload'


def _refusal(backend, pool, offset, source, dtype='<u2', shape=(16, 8)):
    with pytest.raises(ArrayMismatch) as caught:
        backend.copy_into(pool, offset, 256, dtype, shape, source)
    assert (pool.view(offset, 256) == POISON).all(), 'a refused copy changed the slot'
    return caught.value


def test_copy_into_refuses_arrays_that_do_not_fit_the_slot(slot):
    backend, pool, offset = slot
    fitting = np.ones((16, 8), dtype='<u2')
    cases = {
        'dtype_mismatch': fitting.astype('<i2'),
        'shape_mismatch': fitting.reshape(8, 16),
        'not_contiguous': np.ones((16, 16), dtype='<u2')[:, ::2],
        'unsupported_source': fitting.tolist(),
    }
    for reason, source in cases.items():
        error = _refusal(backend, pool, offset, source)
        assert error.reason == reason, error
        assert isinstance(error, ShmRosError) and isinstance(error, ValueError)
    assert _refusal(backend, pool, offset, fitting.astype('>u2')).reason == 'dtype_mismatch', \
        'a big-endian array is not the slot dtype'


def test_every_backend_implements_the_contract_with_its_signatures():
    assert isinstance(CpuBackend(), Backend)
    for method in CONTRACT_METHODS:
        want = list(inspect.signature(getattr(Backend, method)).parameters)
        for backend in (CpuBackend, GpuBackend):
            got = list(inspect.signature(getattr(backend, method)).parameters)
            assert got == want, f'{backend.__name__}.{method}{got} differs from Backend {want}'
