# shellcheck shell=bash
# Environment for building, running and testing jetson_shm_ros. Source it (bash):
#   source scripts/env.sh
# - If a ROS 2 installation is sourced (ROS_DISTRO set and rclpy importable, not from our .venv),
#   it is used as is ("system" mode).
# - Otherwise the project venv (.venv, made by `make setup`, ROS 2 Kilted wheels) is activated
#   and exported as an ament/CMake prefix ("venv" mode).
# - Then install/local_setup.bash of this workspace is sourced when it exists, so the built
#   packages are importable and install/jetson_shm_ros/lib/jetson_shm_ros/<exe> can be run.
# Sets JSR_ROOT, JSR_ROS_MODE (system|venv|none) and JSR_PYTHON (the interpreter to build with).
# Overrides: JSR_VENV (venv path), JSR_INSTALL_BASE (colcon install base),
# JSR_USE_SYSTEM_ROS=1|0 (force the mode), JSR_ENV_NO_INSTALL=1 (skip the install/ overlay).

_jsr_saved_opts="$-"
set +u  # venv activate and colcon's setup scripts are not nounset-safe

JSR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JSR_VENV="${JSR_VENV:-$JSR_ROOT/.venv}"
JSR_INSTALL_BASE="${JSR_INSTALL_BASE:-$JSR_ROOT/install}"
export JSR_ROOT JSR_VENV JSR_INSTALL_BASE

_jsr_prepend() {  # _jsr_prepend VAR DIR: put DIR first in the colon list VAR, once
  local var="$1" dir="$2" cur
  cur="${!var}"
  case ":$cur:" in
    *":$dir:"*) ;;
    *) if [ -n "$cur" ]; then export "$var=$dir:$cur"; else export "$var=$dir"; fi ;;
  esac
}

if [ "$JSR_USE_SYSTEM_ROS" = 1 ]; then
  JSR_ROS_MODE=system
elif [ "$JSR_USE_SYSTEM_ROS" != 0 ] && [ -n "$ROS_DISTRO" ] \
    && [ "$VIRTUAL_ENV" != "$JSR_VENV" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  JSR_ROS_MODE=system
elif [ -x "$JSR_VENV/bin/python" ]; then
  JSR_ROS_MODE=venv
else
  JSR_ROS_MODE=none
fi
export JSR_ROS_MODE

if [ "$JSR_ROS_MODE" = venv ]; then
  # Also when the venv looks active but another python3 comes first on PATH (a ~/.bashrc that
  # puts pyenv's shims first, as `make shell` runs it before this file).
  if [ "$VIRTUAL_ENV" != "$JSR_VENV" ] || [ "$(command -v python3)" != "$JSR_VENV/bin/python3" ]; then
    VIRTUAL_ENV_DISABLE_PROMPT="${VIRTUAL_ENV_DISABLE_PROMPT:-1}"
    # shellcheck disable=SC1091
    source "$JSR_VENV/bin/activate"
  fi
  # The venv holds share/ament_index and share/*/cmake of the ROS wheels: it is an ament prefix.
  _jsr_prepend AMENT_PREFIX_PATH "$JSR_VENV"
  _jsr_prepend CMAKE_PREFIX_PATH "$JSR_VENV"
fi
JSR_PYTHON="$(command -v python3)"
export JSR_PYTHON

if [ "$JSR_ENV_NO_INSTALL" != 1 ] && [ -f "$JSR_INSTALL_BASE/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$JSR_INSTALL_BASE/local_setup.bash"
fi

unset -f _jsr_prepend
case "$_jsr_saved_opts" in *u*) set -u ;; esac
unset _jsr_saved_opts
