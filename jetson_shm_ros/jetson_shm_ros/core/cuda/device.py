"""DeviceInfo: what the current CUDA device is and what it can do, probed once."""

from jetson_shm_ros.core.cuda.runtime import (
    ATTR_CAN_MAP_HOST_MEMORY, ATTR_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM,
    ATTR_COMPUTE_CAPABILITY_MAJOR, ATTR_COMPUTE_CAPABILITY_MINOR, ATTR_INTEGRATED,
    ATTR_MULTIPROCESSOR_COUNT, call)
from jetson_shm_ros.core.errors import BackendUnavailable


class DeviceInfo:
    """What make_backend found out about the current CUDA device."""

    def __init__(self, cp):
        """
        Probe the current device.

        :param cp: the cupy module
        :raises BackendUnavailable: when there is no usable driver or device
        """
        runtime = cp.cuda.runtime
        try:
            count = runtime.getDeviceCount()
        except Exception as error:
            raise BackendUnavailable(f'no usable CUDA driver or device: {error}') from None
        if count < 1:
            raise BackendUnavailable('no CUDA device found')
        self.id = cp.cuda.Device().id

        def attribute(number: int) -> int:
            return call('cudaDeviceGetAttribute', runtime.deviceGetAttribute, number, self.id)

        properties = call('cudaGetDeviceProperties', runtime.getDeviceProperties, self.id)
        name = properties['name']
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.integrated = bool(attribute(ATTR_INTEGRATED))
        self.can_map_host_memory = bool(attribute(ATTR_CAN_MAP_HOST_MEMORY))
        self.host_pointer_usable = bool(attribute(ATTR_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM))
        self.sm_count = attribute(ATTR_MULTIPROCESSOR_COUNT)
        self.compute_capability = (attribute(ATTR_COMPUTE_CAPABILITY_MAJOR),
                                   attribute(ATTR_COMPUTE_CAPABILITY_MINOR))

    @property
    def description(self) -> str:
        """E.g. 'NVIDIA H100 80GB HBM3 (discrete, cc 9.0)'."""
        kind = 'integrated' if self.integrated else 'discrete'
        return f'{self.name} ({kind}, cc {self.compute_capability[0]}.' \
               f'{self.compute_capability[1]})'
