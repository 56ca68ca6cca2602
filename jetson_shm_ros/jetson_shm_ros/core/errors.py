"""
The one exception hierarchy of jetson_shm_ros (modelled on rclpy/exceptions.py).

Every error the library raises on purpose derives from ShmRosError and carries `reason`: a
short, stable key that counters, logs and /diagnostics use. Callers catch ShmRosError (or a
subclass) narrowly, so an unrelated error, e.g. from a user's callback, is never mistaken for
bad input.
"""


class ShmRosError(Exception):
    """Base class: `reason` is a stable counter key, `detail` says what happened."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f'{reason}: {detail}')
        self.reason = reason
        self.detail = detail


class DescriptorError(ShmRosError, ValueError):
    """A descriptor that must not be acted on (checked before any payload byte is read)."""


class SegmentError(ShmRosError):
    """A segment that cannot be created, attached, or read as the descriptor says."""


class BackendUnavailable(ShmRosError):
    """A GPU backend was asked for explicitly, but this process cannot run it."""

    def __init__(self, detail: str):
        super().__init__('backend_unavailable', detail)


class GpuError(ShmRosError):
    """A CUDA call failed; `call` names it and the detail carries CUDA's error name."""

    def __init__(self, call: str, detail: str):
        super().__init__('gpu_error', f'{call} failed: {detail}')
        self.call = call


class NoFreeSlot(ShmRosError):
    """Every slot is still held by a reader: the frame was not written (see ShmPublisher)."""

    def __init__(self, detail: str):
        super().__init__('no_free_slot', detail)


class ArrayMismatch(ShmRosError, ValueError):
    """A caller's array that cannot be copied into a slot as it is (dtype, shape, layout, kind)."""


class ArgumentError(ShmRosError, ValueError):
    """An argument of the public API (e.g. ShmPublisher's) outside its type, range or choices."""

    def __init__(self, detail: str):
        super().__init__('bad_argument', detail)


class OptionError(ShmRosError, ValueError):
    """A start-up option (node parameter, CLI option) outside its type, range or choices."""

    def __init__(self, detail: str):
        super().__init__('bad_option', detail)


class BagError(ShmRosError):
    """A bag cannot be written or read as asked (unwritable, full disk, truncated, corrupt)."""
