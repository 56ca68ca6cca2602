"""The backend contract: every backend implements Backend with the same signatures."""

import inspect

from jetson_shm_ros.core.backend import CpuBackend
from jetson_shm_ros.core.backend_protocol import Backend
from jetson_shm_ros.core.gpu_backend import GpuBackend

CONTRACT_METHODS = ('prepare', 'forget', 'array', 'fill_pattern', 'checksum', 'synchronize',
                    'ipc_handles', 'close')


def test_every_backend_implements_the_contract_with_its_signatures():
    assert isinstance(CpuBackend(), Backend)
    for method in CONTRACT_METHODS:
        want = list(inspect.signature(getattr(Backend, method)).parameters)
        for backend in (CpuBackend, GpuBackend):
            got = list(inspect.signature(getattr(backend, method)).parameters)
            assert got == want, f'{backend.__name__}.{method}{got} differs from Backend {want}'
