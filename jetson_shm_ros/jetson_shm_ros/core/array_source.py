"""
A caller's array as the source of a copy into a slot: where its bytes are, whether they fit.

Accepted: NumPy arrays (and objects with __array_interface__), objects with
__cuda_array_interface__ (CuPy, Numba, PyTorch CUDA tensors), and DLPack producers
(__dlpack__ / __dlpack_device__: PyTorch, JAX, CuPy, NumPy). A host source becomes a NumPy
view, a device source a CuPy view (CuPy is imported only then); neither copies. DLPack is
preferred over __cuda_array_interface__ because it orders the producer's stream before
CuPy's current stream.
"""

from typing import Sequence

from jetson_shm_ros.core.cuda.runtime import import_cupy
from jetson_shm_ros.core.errors import ArrayMismatch, BackendUnavailable
import numpy as np

HOST = 'host'
DEVICE = 'device'
# DLPack device types (dlpack.h) whose memory the host or the CUDA device addresses.
_DLPACK_HOST = {1: 'CPU', 3: 'CUDA host'}
_DLPACK_DEVICE = {2: 'CUDA', 13: 'CUDA managed'}
# What exporting a view raises for a source that cannot be exported as it is
# (e.g. PyTorch: a tensor that requires grad).
_EXPORT_ERRORS = (TypeError, ValueError, RuntimeError, BufferError)


def _exports(source, attribute: str) -> bool:
    try:
        getattr(source, attribute)
    except AttributeError:  # e.g. __cuda_array_interface__ of a PyTorch CPU tensor
        return False
    except _EXPORT_ERRORS:
        return True  # it has the interface; exporting it will say what is wrong
    return True


def location(source) -> str:
    """
    Return HOST or DEVICE: where the source's bytes live.

    :raises ArrayMismatch: 'unsupported_source' for anything that is not an array
    """
    if isinstance(source, np.ndarray):
        return HOST
    if hasattr(type(source), '__dlpack_device__'):
        try:
            kind = int(source.__dlpack_device__()[0])
        except _EXPORT_ERRORS as error:
            raise ArrayMismatch('unsupported_source', f'{type(source).__name__}: {error}') \
                from None
        if kind in _DLPACK_HOST:
            return HOST
        if kind in _DLPACK_DEVICE:
            return DEVICE
        raise ArrayMismatch('unsupported_source', f'{type(source).__name__} lives on DLPack '
                            f'device type {kind}, neither the host nor a CUDA device')
    if _exports(source, '__cuda_array_interface__'):
        return DEVICE
    if _exports(source, '__array_interface__'):
        return HOST
    raise ArrayMismatch('unsupported_source', f'{type(source).__name__} is not an array: pass '
                        'a NumPy array or one with DLPack or __cuda_array_interface__')


def host_view(source) -> np.ndarray:
    """Return a NumPy view of a host source (no copy)."""
    if isinstance(source, np.ndarray):
        return source
    try:
        if hasattr(type(source), '__dlpack__'):
            return np.from_dlpack(source)
        return np.asarray(source)
    except _EXPORT_ERRORS as error:
        raise ArrayMismatch('unsupported_source', f'{type(source).__name__}: {error}') from None


def device_view(source):
    """
    Return a CuPy view of a device source (no copy).

    :raises ArrayMismatch: 'needs_cupy' when CuPy cannot be loaded in this process
    """
    try:
        cp = import_cupy()
    except (ImportError, BackendUnavailable) as error:
        raise ArrayMismatch('needs_cupy', f'{type(source).__name__} is in GPU memory and '
                            f'copying it needs CuPy: {error}') from None
    if isinstance(source, cp.ndarray):
        return source
    try:
        if hasattr(type(source), '__dlpack__'):
            return cp.from_dlpack(source)
        return cp.asarray(source)  # __cuda_array_interface__: a view owned by the source
    except _EXPORT_ERRORS as error:
        raise ArrayMismatch('unsupported_source', f'{type(source).__name__}: {error}') from None


def check_fits(array, dtype: str, shape: Sequence[int]) -> None:
    """
    Raise ArrayMismatch unless a NumPy/CuPy array has the slot's dtype and shape, C-contiguous.

    :raises ArrayMismatch: reason 'dtype_mismatch', 'shape_mismatch' or 'not_contiguous'
    """
    want = np.dtype(dtype)
    if np.dtype(array.dtype) != want:
        raise ArrayMismatch('dtype_mismatch', f'the array is {np.dtype(array.dtype).str}, the '
                            f'slot holds {want.str}')
    slot_shape = tuple(int(dim) for dim in shape)
    if tuple(array.shape) != slot_shape:
        raise ArrayMismatch('shape_mismatch', f'the array has shape {tuple(array.shape)}, the '
                            f'slot holds {slot_shape}')
    if not array.flags.c_contiguous:
        raise ArrayMismatch('not_contiguous', 'the array is not C-contiguous: copy it with '
                            'ascontiguousarray() first')
