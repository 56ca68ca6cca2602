#!/usr/bin/env bash
# `make demo`: the installed producer and consumer executables (the files `ros2 run jetson_shm_ros
# producer|consumer` runs) stream frames through shared memory; the consumer verifies every byte.
# Exits non-zero unless every frame sent was verified and none was invalid.
#
# Knobs (environment): FRAMES (300), SHAPE ([1024,1024,4] uint8 = 4 MiB), DTYPE (uint8),
# RATE_HZ (200.0), SLOTS (4), POLICY (reliable), BACKEND (auto), ROS_DOMAIN_ID (random 100-199).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/env.sh"

FRAMES="${FRAMES:-300}"
SHAPE="${SHAPE:-[1024,1024,4]}"
DTYPE="${DTYPE:-uint8}"
RATE_HZ="${RATE_HZ:-200.0}"
SLOTS="${SLOTS:-4}"
POLICY="${POLICY:-reliable}"
BACKEND="${BACKEND:-auto}"
# A domain of its own, so the demo neither hears nor disturbs other ROS 2 graphs on this host.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((100 + RANDOM % 100))}"
export PYTHONUNBUFFERED=1

PREFIX="$(python3 -c 'from ament_index_python.packages import get_package_prefix as p; print(p("jetson_shm_ros"))')"
BIN="$PREFIX/lib/jetson_shm_ros"
SEGMENT="/jetson_shm_ros.demo.$$"
LOG_DIR="$(mktemp -d)"
pids=()

cleanup() {
  # Ctrl-C reaches the nodes too; SIGTERM the rest and wait, so they unlink their segment.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$LOG_DIR"
}
trap cleanup EXIT
trap 'echo "demo: interrupted"; exit 130' INT TERM

echo "demo: ROS_DOMAIN_ID=$ROS_DOMAIN_ID, $FRAMES frames of $DTYPE$SHAPE, $POLICY policy, backend $BACKEND"
"$BIN/consumer" --ros-args -p frames:="$FRAMES" -p idle_timeout_s:=10.0 -p backend:="$BACKEND" \
  -p status_period_s:=1.0 >"$LOG_DIR/consumer.log" 2>&1 &
pids+=($!)
consumer_pid=$!
"$BIN/producer" --ros-args -p shm_name:="$SEGMENT" -p frames:="$FRAMES" -p shape:="$SHAPE" \
  -p dtype:="$DTYPE" -p rate_hz:="$RATE_HZ" -p slots:="$SLOTS" -p policy:="$POLICY" \
  -p backend:="$BACKEND" -p wait_for_consumers:=1 -p status_period_s:=1.0 \
  >"$LOG_DIR/producer.log" 2>&1 &
pids+=($!)
producer_pid=$!

status=0
wait "$producer_pid" || status=$?
wait "$consumer_pid" || status=$?
pids=()
sed 's/^/  /' "$LOG_DIR/producer.log" "$LOG_DIR/consumer.log"

summary="$(grep -o 'summary: .*' "$LOG_DIR/consumer.log" | tail -n 1 || true)"
if [ -e "/dev/shm$SEGMENT" ]; then
  echo "demo: FAILED: /dev/shm$SEGMENT was left behind"
  exit 1
fi
echo "demo: consumer $summary"
if [ "$status" -ne 0 ] || ! grep -q "verified=$FRAMES .*invalid=0 " <<<"$summary "; then
  echo "demo: FAILED: want verified=$FRAMES and invalid=0 (exit status $status)"
  exit 1
fi
echo "demo: OK: all $FRAMES frames verified, nothing left in /dev/shm"
