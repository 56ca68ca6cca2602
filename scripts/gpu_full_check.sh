#!/usr/bin/env bash
# Everything GPU in one call of a lent GPU machine (no registry access, ROS wheels carried):
# build the ROS packages there (scripts/gpu_ros_env.sh), then run every GPU test with the built
# packages (core kernels and backends, the public API, the pipeline stage, the bridges), then
# the node-to-node runs of scripts/gpu_ros_path.sh. Output under $OUT when it is set.
#
#   WHEELS=.whl-ros scripts/gpu_full_check.sh [extra test files...]
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
LOG_DIR="${OUT:-/tmp/jsr-gpu-out}"
mkdir -p "$LOG_DIR"
# shellcheck source=scripts/gpu_ros_env.sh
source "$ROOT/scripts/gpu_ros_env.sh" || { echo "gpu_full_check: ROS set-up failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python -c 'import cupy, rclpy, sys; print("python", sys.version.split()[0], "cupy", cupy.__version__)'

status=0
TESTS=(test/test_gpu.py test/test_api_gpu.py "$@")
step "GPU tests: ${TESTS[*]}"
(cd "$ROOT/jetson_shm_ros" && python -m pytest -v -rs -p no:cacheprovider "${TESTS[@]}" \
  2>&1 | tee "$LOG_DIR/gpu_tests.log" | grep -E 'PASSED|FAILED|ERROR|SKIPPED|passed|failed|Error' \
  | tail -n 80; exit "${PIPESTATUS[0]}") || status=1
step "nodes across processes (gpu_ros_path.sh)"
SKIP_SETUP=1 FRAMES="${FRAMES:-100}" "$ROOT/scripts/gpu_ros_path.sh" 2>&1 \
  | tee "$LOG_DIR/gpu_ros_path.log" | grep -E '==|consumer summary|exit codes|FAILED|OK' || status=1
if [ "$status" -eq 0 ]; then echo "gpu_full_check: OK"; else echo "gpu_full_check: FAILED"; fi
exit "$status"
