#!/usr/bin/env bash
# The full ROS 2 path on a GPU machine that has no ROS installation and no registry access:
# install the carried ROS 2 Kilted cp312 wheels into a venv that still sees the machine's own
# CuPy/NumPy, build both packages with colcon, and run the installed producer and consumer
# executables (what `ros2 run jetson_shm_ros producer|consumer` runs) with each GPU backend.
#
#   WHEELS=.whl-ros scripts/gpu_ros_path.sh
#
# WHEELS: folder with the wheels of /work/shared/notes/ros-wheels-for-gpu-machine.txt (the cp312
# ones; empy built locally with `pip wheel --no-deps empy==4.2.1`; no setuptools).
# Other knobs: PYTHON (python3), WORK (/tmp/jsr-gpu-ros), FRAMES (200), SHAPE ([1024,1024,4]
# uint8 = 4 MiB), RATE_HZ (200.0), CASES ("pinned:zero_copy pinned:copy cuda_ipc:zero_copy
# cuda_ipc:copy"). A working ROS 2 environment can be reused with SKIP_SETUP=1 (then `colcon`
# and the ROS packages must already be on the paths).
# SOAK_FRAMES=20000 then also runs scripts/soak.py through the same installed nodes with
# SOAK_BACKEND (pinned): a consumer restarting every SOAK_FRAMES/4 frames, the producer every
# SOAK_FRAMES/2, fds, mappings, RSS and the GPU resources each process reports checked for growth.
# Exit status: non-zero unless every consumer verified every frame and none was invalid.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="${WORK:-/tmp/jsr-gpu-ros}"
FRAMES="${FRAMES:-200}"
SHAPE="${SHAPE:-[1024,1024,4]}"
RATE_HZ="${RATE_HZ:-200.0}"
CASES="${CASES:-pinned:zero_copy pinned:copy cuda_ipc:zero_copy cuda_ipc:copy}"
# shellcheck source=scripts/gpu_ros_env.sh
source "$ROOT/scripts/gpu_ros_env.sh"
BIN="$WORK/install/jetson_shm_ros/lib/jetson_shm_ros"
LOGS="$WORK/logs"
mkdir -p "$LOGS"

failed=0
for case in $CASES; do
  backend="${case%%:*}" mode="${case##*:}"
  export ROS_DOMAIN_ID=$((100 + RANDOM % 100))
  segment="/jsr_gpu_ros.$backend.$mode.$$"
  step "$FRAMES frames of uint8$SHAPE, reliable, backend $backend, mode $mode (domain $ROS_DOMAIN_ID)"
  timeout 180 "$BIN/consumer" --ros-args -p frames:="$FRAMES" -p idle_timeout_s:=10.0 \
    -p backend:="$backend" -p mode:="$mode" -p queue_depth:=16 -p status_period_s:=2.0 \
    >"$LOGS/consumer.$case.log" 2>&1 &
  consumer=$!
  timeout 180 "$BIN/producer" --ros-args -p shm_name:="$segment" -p frames:="$FRAMES" \
    -p shape:="$SHAPE" -p dtype:=uint8 -p rate_hz:="$RATE_HZ" -p slots:=4 -p policy:=reliable \
    -p backend:="$backend" -p mode:="$mode" -p wait_for_consumers:=1 -p status_period_s:=2.0 \
    >"$LOGS/producer.$case.log" 2>&1 &
  producer=$!
  producer_rc=0 consumer_rc=0
  wait "$producer" || producer_rc=$?
  wait "$consumer" || consumer_rc=$?
  grep -ho 'rmw=.*' "$LOGS/producer.$case.log" "$LOGS/consumer.$case.log" | sed 's/^/  start: /' || true
  grep -ho 'done: .*' "$LOGS/producer.$case.log" | sed 's/^/  producer /' || true
  summary="$(grep -o 'summary: .*' "$LOGS/consumer.$case.log" | tail -n 1 || true)"
  echo "  consumer $summary"
  echo "  exit codes: producer $producer_rc, consumer $consumer_rc"
  if [ -e "/dev/shm$segment" ]; then
    echo "  FAILED: /dev/shm$segment was left behind"
    failed=1
  fi
  if [ "$producer_rc" -ne 0 ] || [ "$consumer_rc" -ne 0 ] \
      || ! grep -q "verified=$FRAMES .*invalid=0 " <<<"$summary "; then
    echo "  FAILED: want verified=$FRAMES invalid=0 and exit codes 0; the logs:"
    sed 's/^/    /' "$LOGS/producer.$case.log" "$LOGS/consumer.$case.log" | tail -n 60
    failed=1
  fi
done
SOAK_FRAMES="${SOAK_FRAMES:-0}"
if [ "$SOAK_FRAMES" -gt 0 ]; then
  export ROS_DOMAIN_ID=$((100 + RANDOM % 100))
  step "soak: $SOAK_FRAMES frames, backend ${SOAK_BACKEND:-pinned} (domain $ROS_DOMAIN_ID)"
  "$VENV/bin/python" "$ROOT/scripts/soak.py" --bin "$BIN" --backend "${SOAK_BACKEND:-pinned}" \
    --frames "$SOAK_FRAMES" --consumer-restart $((SOAK_FRAMES / 4)) \
    --producer-restart $((SOAK_FRAMES / 2)) --shape "${SOAK_SHAPE:-[256,1024,4]}" \
    --rate-hz 1000 2>&1 | tee "$LOGS/soak.log" || failed=1
fi
if [ "$failed" -eq 0 ]; then echo "gpu_ros_path: OK"; else echo "gpu_ros_path: FAILED"; fi
exit "$failed"
