#!/usr/bin/env bash
# GPU check of jetson_shm_ros: run it from a clean checkout on any machine with an NVIDIA GPU,
# CuPy (cupy-cuda12x / cupy-cuda13x), NumPy and pytest; cuda-python and PyTorch are optional
# (the tests that need them say so when they skip). No ROS build is needed: the ROS-free core
# is imported straight from the source tree (its small C extension is built in place first).
#
#   scripts/gpu_check.sh
#
# Prints the GPU, runs jetson_shm_ros/test/test_gpu.py verbosely (every skip with its reason),
# then the benchmark (scripts/gpu_bench.py). Exit status: non-zero when a test fails or the
# benchmark misses its bar. Environment: PYTHON (python3), PYTEST_ARGS, BENCH_ARGS.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="$(command -v "${PYTHON:-python3}")" || { echo "gpu_check: no ${PYTHON:-python3}"; exit 1; }
case "$PYTHON" in /*) ;; *) PYTHON="$PWD/$PYTHON" ;; esac
export PYTHONPATH="$ROOT/jetson_shm_ros${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

# The package's C extensions (core._atomics, core._checksum, process._deadline): build them
# beside the sources.
echo "== build the C extensions in place"
build_temp="$(mktemp -d)"  # keeps the checkout free of build/ files
(cd "$ROOT/jetson_shm_ros" && "$PYTHON" setup.py -q build_ext --inplace --build-temp "$build_temp") || {
  echo "gpu_check: cannot build the C extensions (needs gcc, setuptools and Python.h)"; exit 1; }
rm -rf "$build_temp"

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "nvidia-smi: not available"
"$PYTHON" - <<'EOF'
import sys
print(f'python {sys.version.split()[0]} ({sys.executable})')
try:
    import cupy
    import numpy
    print(f'cupy {cupy.__version__}, numpy {numpy.__version__}, CUDA runtime '
          f'{cupy.cuda.runtime.runtimeGetVersion()}, driver {cupy.cuda.runtime.driverGetVersion()}')
    from jetson_shm_ros.core import gpu_backend
    backend = gpu_backend.make_backend('auto')
    print(f'GPU: {backend.device}; auto backend: {backend.name}; '
          f'registered-memory pointer: {backend.pointer_source}')
    backend.close()
except Exception as error:  # the tests below say the same, as skips
    print(f'no usable GPU: {error}')
EOF
df -h /dev/shm | tail -n 1 | awk '{print "/dev/shm: " $2 " total, " $4 " free"}'

status=0
echo "== tests: jetson_shm_ros/test/test_gpu.py"
(cd "$ROOT/jetson_shm_ros" && "$PYTHON" -m pytest -v -rs -p no:cacheprovider test/test_gpu.py \
  ${PYTEST_ARGS:-}) || status=1

echo "== benchmark: scripts/gpu_bench.py"
"$PYTHON" "$ROOT/scripts/gpu_bench.py" ${BENCH_ARGS:-} || status=1

if [ "$status" -eq 0 ]; then echo "gpu_check: OK"; else echo "gpu_check: FAILED"; fi
exit "$status"
