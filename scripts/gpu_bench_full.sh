#!/usr/bin/env bash
# `make bench MODE=full` on a GPU machine that has no ROS installation and no registry access:
# scripts/gpu_ros_env.sh (the carried ROS 2 Kilted cp312 wheels in a venv that still sees the
# machine's CuPy/NumPy, colcon build of both packages), then `python -m bench --mode full`:
# every transport (ros_msg, descriptor, cpu, pinned, pinned_copy, cuda_ipc), 4 KiB to 256 MiB,
# hand-over, end to end and throughput, with the GPU ceilings of scripts/gpu_bench.py.
#
#   WHEELS=.whl-ros OUT=/some/dir scripts/gpu_bench_full.sh
#
# WHEELS: as scripts/gpu_ros_env.sh says. OUT: where the results go (default bench/results):
# the .json and .md, and the .png when matplotlib is importable (else run
# `python -m bench.report OUT/<name>.json` where it is). SKIP_SETUP=1 reuses $WORK's build;
# BENCH_ARGS: extra arguments (e.g. "--sizes 4096 67108864" when /dev/shm is small: a latency
# phase holds 4 slots of each shared-memory transport at once, about 4 GiB at 256 MiB).
# Exit status: the benchmark's (non-zero when a phase failed or got no sample).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
OUT="${OUT:-$ROOT/bench/results}"

echo "== /dev/shm: $(df -h /dev/shm | awk 'NR==2 {print $4 " free of " $2}')"
# shellcheck source=scripts/gpu_ros_env.sh
source "$ROOT/scripts/gpu_ros_env.sh" || { echo "gpu_bench_full: ROS set-up failed"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

step "python -m bench --mode full"
mkdir -p "$OUT"
cd "$ROOT" || exit 1
rc=0
# shellcheck disable=SC2086
python -m bench --mode full --out-dir "$OUT" ${BENCH_ARGS:-} || rc=$?
step "done, exit status $rc; results in $OUT"
ls -l "$OUT"
exit "$rc"
