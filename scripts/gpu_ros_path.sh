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
WHEELS="${WHEELS:-$ROOT/.whl-ros}"
FRAMES="${FRAMES:-200}"
SHAPE="${SHAPE:-[1024,1024,4]}"
RATE_HZ="${RATE_HZ:-200.0}"
CASES="${CASES:-pinned:zero_copy pinned:copy cuda_ipc:zero_copy cuda_ipc:copy}"
VENV="$WORK/venv"
export PYTHONUNBUFFERED=1

step() { echo "== $* ($(date +%T))"; }

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  step "venv with the ROS wheels ($(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS)"
  rm -rf "$VENV"
  "$PYTHON" -m venv --system-site-packages --without-pip "$VENV"
  # The machine's python3 may itself be a venv: point the new one at its packages (CuPy...).
  image_site="$("$PYTHON" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')"
  venv_site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$image_site" >"$venv_site/zz_machine_site.pth"
  "$VENV/bin/python" -m pip install -q --no-index --no-deps --no-compile \
    --disable-pip-version-check "$WHEELS"/*.whl
  "$VENV/bin/python" "$ROOT/scripts/fix_venv_cmake_paths.py"
  touch "$VENV/COLCON_IGNORE"
  echo '# jetson_shm_ros: the venv is an ament prefix' >"$VENV/local_setup.sh"
  set +u
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  set -u
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  "$VENV/bin/python" - <<'EOF'
import rclpy
try:
    import cupy
    print(f'venv: rclpy from {rclpy.__file__}, cupy {cupy.__version__}')
except ImportError as error:
    print(f'venv: rclpy from {rclpy.__file__}; no CuPy ({error}): GPU backends will fail')
EOF

  step "colcon build"
  cd "$ROOT"
  colcon --log-base "$WORK/log" build --base-paths jetson_shm_ros_interfaces jetson_shm_ros \
    --build-base "$WORK/build" --install-base "$WORK/install" \
    --event-handlers console_cohesion+ desktop_notification- status- \
    --cmake-args "-DPython3_EXECUTABLE=$VENV/bin/python" -DBUILD_TESTING=OFF
fi
set +u
# shellcheck disable=SC1091
source "$WORK/install/local_setup.bash"
set -u
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
