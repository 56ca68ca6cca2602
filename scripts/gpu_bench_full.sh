#!/usr/bin/env bash
# `make bench MODE=full` on a GPU machine that has no ROS installation and no registry access:
# scripts/gpu_ros_path.sh's set-up (the carried ROS 2 Kilted cp312 wheels in a venv that still
# sees the machine's CuPy/NumPy, colcon build of both packages), then `python -m bench --mode
# full`: every transport (ros_msg, descriptor, cpu, pinned, pinned_copy, cuda_ipc), 4 KiB to
# 256 MiB, hand-over, end to end and throughput, with the GPU ceilings of scripts/gpu_bench.py.
#
#   WHEELS=.whl-ros OUT=/some/dir scripts/gpu_bench_full.sh
#
# WHEELS: folder with the cp312 wheels of /work/shared/notes/ros-wheels-for-gpu-machine.txt
# plus ros-diagnostic-msgs (the public API publishes /diagnostics). OUT: where the results go
# (default bench/results); the .json and .md are written there, and the .png too when
# matplotlib is importable (else: `python -m bench.report OUT/<name>.json` on a machine that
# has it). Other knobs: PYTHON, WORK (as in gpu_ros_path.sh), SKIP_SETUP=1 (reuse WORK),
# BENCH_ARGS (extra arguments, e.g. "--sizes 4096 67108864").
# Exit status: the benchmark's (non-zero when a phase failed or got no sample).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/jsr-gpu-ros}"
OUT="${OUT:-$ROOT/bench/results}"
export WORK PYTHONUNBUFFERED=1

echo "== set-up ($(date +%T)); /dev/shm: $(df -h /dev/shm | awk 'NR==2 {print $4 " free"}')"
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  # CASES=' ' (a blank, not empty): the set-up and the build only, no node runs.
  CASES=' ' "$ROOT/scripts/gpu_ros_path.sh" | grep -v '^gpu_ros_path: OK$'
fi
set +u
# shellcheck disable=SC1091
source "$WORK/venv/bin/activate"
# The venv is the ament prefix of the ROS wheels; the workspace's packages go in front of it.
export AMENT_PREFIX_PATH="$WORK/venv" CMAKE_PREFIX_PATH="$WORK/venv"
# shellcheck disable=SC1091
source "$WORK/install/local_setup.bash"
set -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

echo "== python -m bench --mode full ($(date +%T))"
mkdir -p "$OUT"
cd "$ROOT"
rc=0
# shellcheck disable=SC2086
"$WORK/venv/bin/python" -m bench --mode full --out-dir "$OUT" ${BENCH_ARGS:-} || rc=$?
echo "== done ($(date +%T)), exit status $rc; results in $OUT:"
ls -l "$OUT"
exit "$rc"
