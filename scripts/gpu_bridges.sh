#!/usr/bin/env bash
# The image bridges with each GPU backend: a stand-in camera (scripts/bridge_camera.py) publishes
# sensor_msgs/Image -> image_to_shm (backend B) -> the consumer node (backend B, verifies every
# frame on the GPU) and -> shm_to_image (backend B, 5 Hz) -> back to the camera, which checks
# each returned image byte for byte. All installed executables, each in its own process.
#
#   WHEELS=.whl-ros scripts/gpu_bridges.sh              # GPU machine: set up and build first
#   SKIP_SETUP=1 scripts/gpu_bridges.sh                 # reuse that build (gpu_full_check.sh runs this)
#   SKIP_SETUP=1 BACKENDS=cpu scripts/gpu_bridges.sh    # here: the CPU path, in the environment of
#                                                       # `source scripts/env.sh` after `make build`
# Set-up is scripts/gpu_ros_env.sh's (same WHEELS, PYTHON, WORK).
# Knobs: BACKENDS ("pinned cuda_ipc"), FRAMES (150), RATE_HZ (30.0), WORK (/tmp/jsr-gpu-ros).
# Exit status: non-zero unless, for every backend, the consumer received frames and verified
# every one (none invalid or dropped), and every image shm_to_image sent back was equal to the
# one the camera sent.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/tmp/jsr-gpu-ros}"
BACKENDS="${BACKENDS:-pinned cuda_ipc}"
FRAMES="${FRAMES:-150}"
RATE_HZ="${RATE_HZ:-30.0}"
SLOTS=8
export PYTHONUNBUFFERED=1

step() { echo "== $* ($(date +%T))"; }

if [ "${SKIP_SETUP:-0}" != 1 ] || [ -x "$WORK/venv/bin/python" ]; then
  # Build (or, with SKIP_SETUP=1, reuse) the ROS set-up of the GPU machine, and source it.
  # shellcheck source=scripts/gpu_ros_env.sh
  source "$ROOT/scripts/gpu_ros_env.sh"
fi  # else: the environment as it is (here: `source scripts/env.sh` after `make build`)
PREFIX="$(python3 -c 'from ament_index_python.packages import get_package_prefix as p; print(p("jetson_shm_ros"))')"
BIN="$PREFIX/lib/jetson_shm_ros"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/jsr-gpu-bridges.XXXXXX")"
echo "executables: $BIN; logs: $LOGS"

count() {  # count KEY LINE: the number after KEY= in LINE (0 when absent)
  grep -o "\b$1=[0-9]*" <<<"$2" | head -n 1 | cut -d= -f2 || echo 0
}

failed=0
for backend in $BACKENDS; do
  export ROS_DOMAIN_ID=$((100 + RANDOM % 100))
  segment="/jsr_gpu_bridges.$backend.$$"
  step "camera -> image_to_shm -> consumer and shm_to_image, backend $backend (domain $ROS_DOMAIN_ID)"
  common=(-p topic:=/camera/shm -p backend:="$backend" -p status_period_s:=2.0)
  "$BIN/consumer" --ros-args "${common[@]}" -p idle_timeout_s:=5.0 -p queue_depth:=16 \
    >"$LOGS/consumer.$backend.log" 2>&1 &
  consumer=$!
  # reliable: a slow reader (the consumer mapping the segment on the GPU) costs the camera a
  # frame (no_free_slot), never the consumer a frame it was told about.
  "$BIN/image_to_shm" --ros-args "${common[@]}" -p shm_name:="$segment" -p slots:="$SLOTS" \
    -p policy:=reliable \
    -r image_raw:=/camera/image_raw >"$LOGS/image_to_shm.$backend.log" 2>&1 &
  to_shm=$!
  "$BIN/shm_to_image" --ros-args "${common[@]}" -p max_rate_hz:=5 \
    -r image:=/camera/image_shm >"$LOGS/shm_to_image.$backend.log" 2>&1 &
  to_image=$!
  camera_rc=0
  timeout 300 python3 "$ROOT/scripts/bridge_camera.py" --frames "$FRAMES" --rate-hz "$RATE_HZ" \
    >"$LOGS/camera.$backend.log" 2>&1 || camera_rc=$?
  consumer_rc=0 to_shm_rc=0 to_image_rc=0
  # The consumer exits 5 s after the last frame; if none ever came, it is stopped after 30 s.
  for _ in $(seq 300); do kill -0 "$consumer" 2>/dev/null || break; sleep 0.1; done
  kill -INT "$consumer" "$to_shm" "$to_image" 2>/dev/null || true
  wait "$consumer" || consumer_rc=$?
  wait "$to_shm" || to_shm_rc=$?
  wait "$to_image" || to_image_rc=$?
  grep -h 'shm publisher: \|shm subscription: ' "$LOGS"/*."$backend".log | sed 's/^/  start: /' | head -n 3
  to_shm_summary="$(grep -o 'summary: .*' "$LOGS/image_to_shm.$backend.log" | tail -n 1 || true)"
  consumer_summary="$(grep -o 'summary: .*' "$LOGS/consumer.$backend.log" | tail -n 1 || true)"
  to_image_summary="$(grep -o 'summary: .*' "$LOGS/shm_to_image.$backend.log" | tail -n 1 || true)"
  echo "  image_to_shm $to_shm_summary"
  echo "  consumer     $consumer_summary"
  echo "  shm_to_image $to_image_summary"
  echo "  $(tail -n 1 "$LOGS/camera.$backend.log")"
  echo "  exit codes: camera $camera_rc, image_to_shm $to_shm_rc, consumer $consumer_rc, shm_to_image $to_image_rc"
  published="$(count published "$to_shm_summary")"
  received="$(count received "$consumer_summary")"
  if [ -e "/dev/shm$segment" ]; then
    echo "  FAILED: /dev/shm$segment was left behind"; failed=1
  fi
  # Every frame the consumer was told about must verify on the GPU. How many it was told about
  # is DDS's business (the descriptor writer appears with the first image; keep-last QoS), so
  # it is printed, not judged.
  echo "  the consumer saw $received of the $published frames image_to_shm published"
  if [ $((camera_rc + consumer_rc + to_shm_rc + to_image_rc)) -ne 0 ] || [ "$received" -eq 0 ] \
      || [ "$(count verified "$consumer_summary")" -ne "$received" ] \
      || [ "$(count invalid "$consumer_summary")" -ne 0 ] \
      || [ "$(count refused "$to_shm_summary")" -ne 0 ]; then
    echo "  FAILED: want exit codes 0, refused=0, consumer verified = received > 0 (invalid=0,"
    echo "  dropped=0) and every returned image equal; the logs:"
    tail -n 30 "$LOGS"/*."$backend".log | sed 's/^/    /'
    failed=1
  fi
done
if [ "$failed" -eq 0 ]; then echo "gpu_bridges: OK"; else echo "gpu_bridges: FAILED"; fi
exit "$failed"
