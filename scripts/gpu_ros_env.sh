#!/usr/bin/env bash
# shellcheck shell=bash
# Source this on a GPU machine with no ROS installation and no registry access: it installs the
# carried ROS 2 Kilted cp312 wheels into a venv that still sees the machine's own CuPy/NumPy,
# builds both packages with colcon into $WORK, and sources the result.
#
#   WHEELS=.whl-ros source scripts/gpu_ros_env.sh
#
# WHEELS: the wheels of /work/shared/notes/ros-wheels-for-gpu-machine.txt plus
# ros-diagnostic-msgs (cp312; empy built with `pip wheel --no-deps empy==4.2.1`; no setuptools).
# PYTHON (python3), WORK (/tmp/jsr-gpu-ros); SKIP_SETUP=1 reuses a build made before.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PYTHON="${PYTHON:-python3}"
WORK="${WORK:-/tmp/jsr-gpu-ros}"
WHEELS="${WHEELS:-$ROOT/.whl-ros}"
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
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# shellcheck disable=SC1091
source "$WORK/install/local_setup.bash"
set -u
