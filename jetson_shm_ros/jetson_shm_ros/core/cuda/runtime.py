"""
Checked CUDA calls: CuPy's runtime and cuda-python's bindings, every failure a GpuError.

CuPy is imported on first use (import_cupy), so importing this module is harmless on a
machine without a GPU.
"""

from typing import Optional

from jetson_shm_ros.core.errors import BackendUnavailable, GpuError
from jetson_shm_ros.core.logs import get_logger

# CUDA runtime constants (driver_types.h); CuPy does not export all of them.
HOST_REGISTER_PORTABLE = 0x01
HOST_REGISTER_MAPPED = 0x02
EVENT_DISABLE_TIMING = 0x02
EVENT_INTERPROCESS = 0x04
IPC_MEM_LAZY_ENABLE_PEER_ACCESS = 0x01
MEMCPY_DEFAULT = 4
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_INTEGRATED = 18
ATTR_CAN_MAP_HOST_MEMORY = 19
ATTR_COMPUTE_CAPABILITY_MAJOR = 75
ATTR_COMPUTE_CAPABILITY_MINOR = 76
ATTR_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM = 91

_log = get_logger('jetson_shm_ros.gpu')

_cupy = None


def import_cupy():
    """
    Return the cupy module, importing it on first use.

    :raises ImportError: when CuPy is not installed (the message says what to install)
    :raises BackendUnavailable: when CuPy is installed but fails to load
    """
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as error:
            raise ImportError(f'CuPy is not installed ({error}); install cupy-cuda12x '
                              '(JetPack 6, CUDA 12) or the wheel matching your CUDA') from None
        except Exception as error:  # e.g. CUDA libraries that do not load
            raise BackendUnavailable(f'CuPy failed to load: {error}') from None
        _cupy = cupy
    return _cupy


def cupy_runtime():
    """Return cupy.cuda.runtime (CuPy must have been imported by import_cupy)."""
    return _cupy.cuda.runtime


def _is_cuda_error(error: BaseException) -> bool:
    cuda = getattr(_cupy, 'cuda', None)
    kinds = tuple(kind for kind in (
        getattr(getattr(cuda, 'runtime', None), 'CUDARuntimeError', None),
        getattr(getattr(cuda, 'driver', None), 'CUDADriverError', None),
        getattr(getattr(cuda, 'compiler', None), 'CompileException', None)) if kind is not None)
    return bool(kinds) and isinstance(error, kinds)


def call(name: str, function, *args):
    """Run one CUDA call; turn CuPy's CUDA errors into GpuError naming the call."""
    try:
        return function(*args)
    except Exception as error:
        if _is_cuda_error(error):
            raise GpuError(name, str(error)) from error
        raise


def _check_bindings(name: str, err) -> None:
    """Raise GpuError for a cuda-python status that is not success."""
    if int(err) != 0:
        raise GpuError(name, f'{getattr(err, "name", err)} ({int(err)})')


def _cuda_bindings(module: str):
    """Import cuda-python's runtime or driver module (either package layout), or None."""
    try:
        if module == 'runtime':
            from cuda.bindings import runtime as bindings
        else:
            from cuda.bindings import driver as bindings
        return bindings
    except ImportError:
        pass
    try:
        if module == 'runtime':
            from cuda import cudart as bindings
        else:
            from cuda import cuda as bindings
        return bindings
    except ImportError:
        return None


def host_device_pointer(host_address: int) -> int:
    """Return cudaHostGetDevicePointer(host_address) (cuda-python; CuPy lacks this call)."""
    cudart = _cuda_bindings('runtime')
    if cudart is None:
        raise BackendUnavailable(
            'this GPU needs cudaHostGetDevicePointer for registered memory, and cuda-python '
            '(cuda.bindings) is not installed: pip install cuda-python')
    err, device_address = cudart.cudaHostGetDevicePointer(host_address, 0)
    _check_bindings('cudaHostGetDevicePointer', err)
    return int(device_address)


def allocation_size(device_address: int) -> Optional[int]:
    """Return the bytes from device_address to the end of its allocation, None if unknown."""
    driver = _cuda_bindings('driver')
    if driver is None:
        return None
    try:
        err, base, size = driver.cuMemGetAddressRange(device_address)
        _check_bindings('cuMemGetAddressRange', err)
    except Exception as error:  # only a sanity check: say so and go on without it
        _log.warning('cannot check the size of CUDA IPC memory: %s', error)
        return None
    return int(size) - (device_address - int(base))
