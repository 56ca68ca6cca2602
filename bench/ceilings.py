"""
The hardware's limits, measured in the same run, and what machine and software ran it.

Host: memcpy bandwidth (NumPy copyto, bytes copied per second, best of several), and what the
CPU checksum reads per second (to set it against memcpy). GPU: the pinned
H2D cudaMemcpy bandwidth, the best kernel read of a mapped pinned slot, and a kernel read of
device memory, all from scripts/gpu_bench.py (CUDA events, queued batches, results checked).
"""

import importlib.metadata
import os
import platform
import re
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_memcpy_GBps(nbytes: int, min_seconds: float = 0.2, max_reps: int = 200) -> float:
    """Best bandwidth of np.copyto between two warm buffers of nbytes."""
    source = np.ones(nbytes, dtype=np.uint8)
    target = np.empty_like(source)
    np.copyto(target, source)
    best, spent, reps = float('inf'), 0.0, 0
    while reps < 3 or (spent < min_seconds and reps < max_reps):
        began = time.perf_counter()
        np.copyto(target, source)
        seconds = time.perf_counter() - began
        best, spent, reps = min(best, seconds), spent + seconds, reps + 1
    return nbytes / best / 1e9


def cpu_checksum_GBps(nbytes: int, min_seconds: float = 0.2, max_reps: int = 200) -> float:
    """Best bandwidth of the CPU checksum (core.payload.checksum_words) over nbytes."""
    from jetson_shm_ros.core.payload import checksum_words
    payload = np.ones(nbytes, dtype=np.uint8)
    best, spent, reps = float('inf'), 0.0, 0
    while reps < 3 or (spent < min_seconds and reps < max_reps):
        began = time.perf_counter()
        checksum_words(payload)
        seconds = time.perf_counter() - began
        best, spent, reps = min(best, seconds), spent + seconds, reps + 1
    return nbytes / best / 1e9


def gpu_GBps(sizes: list, reps: int = 7, batch: int = 3) -> dict:
    """{size: {'h2d', 'kernel_read', 'device_read'}} in GB/s from scripts/gpu_bench.py."""
    sys.path.insert(0, os.path.join(ROOT, 'scripts'))
    import gpu_bench
    from jetson_shm_ros.core import gpu_backend
    backend = gpu_backend.make_backend('pinned', 'zero_copy')
    try:
        result = {}
        for size in sizes:
            rates = gpu_bench.bench_size(backend, size, reps, batch)
            result[size] = {'h2d': rates['h2d'], 'kernel_read': rates['checksum'],
                            'device_read': rates['dev_checksum']}
        return result
    finally:
        backend.close()


def _version(*distributions: str) -> str:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return ''


def _ros_package_version(package: str) -> str:
    """Version from the package.xml of an installed ROS package (wheels or apt)."""
    try:
        from ament_index_python.packages import get_package_share_directory
        with open(os.path.join(get_package_share_directory(package), 'package.xml')) as xml:
            match = re.search(r'<version>([^<]+)</version>', xml.read())
        return match.group(1) if match else ''
    except Exception:  # noqa: B902 - a missing package or index: report no version
        return ''


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> dict:
    try:
        import cupy
        runtime = cupy.cuda.runtime
        props = runtime.getDeviceProperties(0)
        name = props['name']
        info = {'name': name.decode() if isinstance(name, bytes) else str(name),
                'cuda_driver_api': runtime.driverGetVersion(),
                'cuda_runtime': runtime.runtimeGetVersion(),
                'integrated': bool(props.get('integrated', 0))}
    except Exception as error:  # noqa: B902 - no CuPy, no GPU, no driver: CPU machine
        return {'name': '', 'why_none': f'{type(error).__name__}: {error}'}
    try:
        info['driver'] = subprocess.run(
            ['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
            capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        info['driver'] = ''
    info['mps'] = mps_on()
    return info


def mps_on() -> bool:
    """
    Tell whether this process's CUDA work goes through an MPS daemon (scripts/gpu_mps.sh).

    Then all processes share one GPU context, which changes what a GPU hand-over between
    processes costs (bench.gpu_costs).
    """
    pipes = os.environ.get('CUDA_MPS_PIPE_DIRECTORY', '')
    return bool(pipes) and os.path.exists(os.path.join(pipes, 'control'))


def machine() -> dict:
    """Describe the machine, CPU, GPU and driver."""
    try:
        with open('/proc/meminfo') as meminfo:
            mem_kb = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {'hostname': socket.gethostname(), 'os': platform.platform(),
            'arch': platform.machine(), 'cpu': _cpu_model(), 'cores': os.cpu_count(),
            'memory_GiB': round(mem_kb / 2**20, 1), 'gpu': _gpu()}


def machine_slug(info: dict) -> str:
    """Return a file-name label: the GPU name, else CPU cores and arch (BENCH_MACHINE first)."""
    label = os.environ.get('BENCH_MACHINE') or info['gpu'].get('name') or \
        f'cpu-{info["cores"]}core-{info["arch"]}'
    if info['gpu'].get('mps'):
        label += '-mps'
    return re.sub(r'[^a-z0-9]+', '-', label.lower()).strip('-')


def versions() -> dict:
    """Return the versions of what the numbers depend on."""
    return {'python': platform.python_version(), 'numpy': np.__version__,
            'cupy': _version('cupy-cuda12x', 'cupy-cuda13x', 'cupy-cuda11x', 'cupy'),
            'rclpy': _version('ros-rclpy') or _ros_package_version('rclpy'),
            'rmw_fastrtps_cpp': _version('ros-rmw-fastrtps-cpp') or
            _ros_package_version('rmw_fastrtps_cpp'),
            'fastdds': _version('ros-fastdds') or _ros_package_version('fastdds'),
            'ros_distro': os.environ.get('ROS_DISTRO', 'kilted (PyPI wheels)'
                                         if _version('ros-rclpy') else '')}
