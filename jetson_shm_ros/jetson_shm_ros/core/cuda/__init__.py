"""
CUDA plumbing of the GPU backends, one job per module; nothing here imports CuPy at import time.

- runtime: checked CUDA calls (CuPy and cuda-python), runtime constants, the lazy CuPy import
- device: DeviceInfo, what the current device can do
- regions: slot memory the device can reach (pinned mapping, cudaMalloc export, IPC import)
- kernels: the production kernels (checksum, fill pattern), compiled once per device
- host_word: a pinned, mapped host word a kernel writes its result into
- tool_kernels: kernels only tests and benchmarks use; the library never imports it
"""
