"""
Copy a caller's array into a slot with one copy, on the device where the data is.

Sources: NumPy arrays, CuPy arrays, and anything CuPy can take without a copy (objects with
`__cuda_array_interface__` or DLPack, e.g. torch tensors). The slot side is a NumPy view (CPU
backend) or a CuPy array (GPU backends). CuPy is imported only when a device array is involved.
"""

from typing import Sequence

from jetson_shm_ros.core.errors import DescriptorError
import numpy as np


def _is_device_array(source) -> bool:
    if isinstance(source, np.ndarray):
        return False
    if hasattr(source, '__cuda_array_interface__'):
        return True
    device = getattr(source, '__dlpack_device__', None)
    # DLPack device type 1 is the CPU; 2 (CUDA), 3 (CUDA host) and 13 (CUDA managed) are not.
    return device is not None and device()[0] != 1


def _as_cupy(source):
    import cupy
    if hasattr(source, '__cuda_array_interface__') or isinstance(source, cupy.ndarray):
        return cupy.asarray(source)
    return cupy.from_dlpack(source)


def check_source(source, dtype: str, shape: Sequence[int]) -> None:
    """
    Check that `source` has the frame's dtype and shape.

    :raises DescriptorError: with reason 'array_mismatch'
    """
    got_shape = tuple(int(dim) for dim in getattr(source, 'shape', ()))
    # torch names its dtypes 'torch.float32' and so on; NumPy and CuPy use NumPy's names.
    type_name = str(getattr(source, 'dtype', 'void')).replace('torch.', '')
    try:
        got_dtype = np.dtype(type_name).str
    except TypeError:
        got_dtype = type_name
    if got_shape != tuple(shape) or got_dtype != np.dtype(dtype).str:
        raise DescriptorError('array_mismatch', f'array is {got_dtype}{list(got_shape)}, the '
                              f'publisher sends {np.dtype(dtype).str}{list(shape)}')


def copy_array(destination, source) -> None:
    """
    Copy `source` into the slot array `destination` (same dtype and shape; checked by caller).

    NumPy -> host slot: one host copy. Device -> device slot: one device copy.
    NumPy -> device slot: one host-to-device copy. Device -> host slot: one device-to-host copy.
    """
    if isinstance(destination, np.ndarray):
        if _is_device_array(source):
            _as_cupy(source).get(out=destination)
        else:
            np.copyto(destination, np.asarray(source), casting='no')
        return
    if _is_device_array(source):
        destination[...] = _as_cupy(source)
    else:
        destination.set(np.ascontiguousarray(np.asarray(source)))
