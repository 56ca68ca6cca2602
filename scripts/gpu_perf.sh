#!/usr/bin/env bash
# Issue 16 on a GPU machine with no ROS installation: scripts/gpu_ros_env.sh (carried ROS 2
# wheels, colcon build), then what single GPU steps cost (bench.gpu_costs), a frame between two
# processes through the core alone (bench.core_hop), the per-step profile
# of a frame (bench.profile_steps: cpu, pinned, cuda_ipc at 4 KiB and 16 MiB;
# bench.profile_frame) and `python -m bench --mode full`.
#
#   WHEELS=.whl-ros OUT=/some/dir scripts/gpu_perf.sh
#
# WHEELS: as scripts/gpu_ros_env.sh says, plus iceoryx2 (requirements/bench.txt) for the peer
# transport. OUT: where the logs and results go. SKIP_SETUP=1 reuses $WORK's build;
# SKIP_PROFILE=1 / SKIP_BENCH=1 leave a part out; BENCH_ARGS: extra arguments for the bench;
# PROFILE_BACKENDS (default "cpu pinned cuda_ipc") and PROFILE_BIG=0 (no 16 MiB profile);
# RUN_TESTS=1 first runs the GPU tests and the executor tests.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
OUT="${OUT:-$ROOT/bench/results}"
mkdir -p "$OUT"
# shellcheck source=scripts/gpu_ros_env.sh
source "$ROOT/scripts/gpu_ros_env.sh" >"$OUT/setup.log" 2>&1 || {
  tail -40 "$OUT/setup.log"; echo "gpu_perf: ROS set-up failed"; exit 1; }
tail -3 "$OUT/setup.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cd "$ROOT" || exit 1
rc=0
if [ "${RUN_TESTS:-0}" = 1 ]; then
  step "tests"
  (cd "$ROOT/jetson_shm_ros" && python -m pytest -q -rs -p no:cacheprovider test/test_gpu.py \
    test/test_api_gpu.py test/test_executors.py test/test_frames.py 2>&1 \
    | tee "$OUT/tests.log" | tail -n 15; exit "${PIPESTATUS[0]}") || rc=1
fi
if [ "${SKIP_PROFILE:-0}" != 1 ]; then
  step "profile"
  {
    python -m bench.gpu_costs 2>&1
    python -m bench.core_hop 2>&1 | grep -v '^\[INFO\]'
    for backend in ${PROFILE_BACKENDS:-cpu pinned cuda_ipc}; do
      python -m bench.profile_steps --backend "$backend" --frames 2000 2>&1 | grep -v '^\[INFO\]'
    done
    for backend in pinned cuda_ipc; do
      [ "${PROFILE_BIG:-1}" = 1 ] || break
      python -m bench.profile_steps --backend "$backend" --side 4096 --frames 200 2>&1 \
        | grep -v '^\[INFO\]'
    done
    python -m bench.profile_frame --frames 2000 2>&1 | grep -v '^\[INFO\]' | head -12
  } | tee "$OUT/profile.txt" || rc=$?
fi
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  step "python -m bench --mode full ${BENCH_ARGS:-}"
  # shellcheck disable=SC2086
  python -m bench --mode full --out-dir "$OUT" ${BENCH_ARGS:-} >"$OUT/bench.log" 2>&1 || rc=$?
  grep -v '^\[INFO\]' "$OUT/bench.log" | grep -E '^\[|^bench|MISSED|met \||^\|' | tail -150
fi
step "done, exit status $rc"
exit "$rc"
