"""
Backend selection: the backend a node, a peer or the public API asked for.

The CPU backend (core.cpu_backend) works everywhere; the GPU backends (core.gpu_backend)
are imported only when one is asked for, so CuPy stays optional. Both implement
core.backend_protocol.Backend.
"""


from jetson_shm_ros.core.backend_protocol import Backend, MODES
from jetson_shm_ros.core.cpu_backend import CpuBackend
from jetson_shm_ros.core.errors import BackendUnavailable
from jetson_shm_ros.core.logs import get_logger

BACKENDS = ('auto', 'cpu', 'pinned', 'cuda_ipc')

_log = get_logger('jetson_shm_ros.backend')
_fallback_logged = False


def select_backend(requested: str = 'auto', mode: str = 'zero_copy') -> Backend:
    """
    Build the backend a node asked for.

    'auto' picks pinned shared memory on an integrated GPU (Jetson), CUDA IPC device memory on
    a discrete GPU, and NumPy when there is no usable GPU (logged once). 'pinned' and
    'cuda_ipc' fail loudly when no GPU is usable.

    :raises BackendUnavailable: for an explicit GPU backend without a GPU
    :raises ValueError: for an unknown backend or mode
    """
    if requested not in BACKENDS:
        raise ValueError(f'backend {requested!r} is not one of {list(BACKENDS)}')
    if mode not in MODES:
        raise ValueError(f'mode {mode!r} is not one of {list(MODES)}')
    if requested == 'cpu':
        return CpuBackend()
    try:
        from jetson_shm_ros.core import gpu_backend
        return gpu_backend.make_backend(requested, mode)
    except (ImportError, BackendUnavailable) as error:
        if requested != 'auto':
            raise BackendUnavailable(
                f'backend {requested!r} needs CuPy, cuda-python and a CUDA GPU: {error}') from None
        # Once per process: a node with several endpoints asks several times.
        global _fallback_logged
        (_log.debug if _fallback_logged else _log.warning)(
            'no usable GPU (%s): running on NumPy (CPU)', error)
        _fallback_logged = True
        return CpuBackend()
