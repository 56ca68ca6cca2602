"""
DNN preprocessing of camera frames: HWC uint8 RGB/BGR -> normalized float32 CHW.

One pass over the image: each output element reads one byte, scales and shifts it, so the cost
is one read of the input and one write of the output. NumPy on the CPU; on a GPU backend one
CuPy kernel, compiled on first use in the processes that call it (no other process pays).
"""

from typing import Sequence, Tuple

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_ENCODINGS = ('rgb8', 'bgr8')

_KERNEL_SOURCE = """
    const ptrdiff_t c = i / hw;
    const ptrdiff_t p = i - c * hw;
    const int source_channel = swap_rb ? 2 - (int)c : (int)c;
    out = (float)src[p * 3 + source_channel] * scale[c] + offset[c];
"""
_kernel = None


def chw_shape(image_shape: Sequence[int]) -> list:
    """Return the output shape [3, height, width] of an image of shape (height, width, 3)."""
    height, width, channels = (int(dim) for dim in image_shape)
    if channels != 3:
        raise ValueError(f'need 3 channels, got shape {list(image_shape)}')
    return [3, height, width]


def coefficients(mean: Sequence[float], std: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """Fold (x / 255 - mean) / std into x * scale + offset, per channel, in float32."""
    mean64, std64 = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if mean64.shape != (3,) or std64.shape != (3,) or not np.all(std64 > 0):
        raise ValueError(f'need 3 means and 3 positive standard deviations, got {mean}, {std}')
    return (1.0 / (255.0 * std64)).astype(np.float32), (-mean64 / std64).astype(np.float32)


def normalize_to_chw(image, out, scale: np.ndarray, offset: np.ndarray, swap_rb: bool) -> None:
    """
    Write (image / 255 - mean) / std, channels first, into `out`.

    :param image: (H, W, 3) uint8, NumPy or CuPy
    :param out: (3, H, W) float32 of the same kind (a slot of the output segment)
    :param scale: per output channel, from coefficients()
    :param offset: per output channel, from coefficients()
    :param swap_rb: the input is BGR and the output RGB (or the other way round)
    """
    if isinstance(image, np.ndarray):
        for channel in range(3):
            source = 2 - channel if swap_rb else channel
            np.multiply(image[..., source], scale[channel], out=out[channel], casting='unsafe')
            out[channel] += offset[channel]
        return
    import cupy
    global _kernel
    if _kernel is None:
        _kernel = cupy.ElementwiseKernel(
            'raw uint8 src, int64 hw, bool swap_rb, raw float32 scale, raw float32 offset',
            'float32 out', _KERNEL_SOURCE, 'jsr_normalize_to_chw')
    height, width = int(image.shape[0]), int(image.shape[1])
    _kernel(cupy.ascontiguousarray(image), height * width, swap_rb, cupy.asarray(scale),
            cupy.asarray(offset), out)
