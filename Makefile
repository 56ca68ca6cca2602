# Build / test toolchain for jetson_shm_ros (ROS 2, colcon).
#
#   make setup   use a sourced ROS 2 installation, or create .venv with the pinned ROS 2 Kilted wheels
#   make build   colcon build of jetson_shm_ros_interfaces and jetson_shm_ros into build/ install/ log/
#   make shell   build, then an interactive bash with scripts/env.sh sourced (exit to leave)
#   make docs    regenerate doc/api.md, doc/nodes.md and doc/benchmark.md (python -m docgen)
#   make test    colcon test + colcon test-result; fails on any failure and when no test ran
#   make demo    run scripts/demo.sh in the built environment
#   make soak    stream 100,000 frames through restarting nodes and check for leaks (SOAK_ARGS)
#   make stress  the shutdown, crash, example and lifecycle tests ROUNDS times (default 50)
#                beside two CPU-bound processes; not part of `make test`
#   make bench   latency/throughput vs a plain ROS 2 message, and recording/replay against the
#                disk (bench/record.py) -> bench/results/local/ (git-ignored;
#                BENCH_ARGS="--out-dir bench/results" to commit a run) (MODE=quick|full)
#   make clean   remove build/ install/ log/      make distclean   also remove the venv
#
# Variables: PYTHON (interpreter for the venv, default python3.11), VENV, BUILD_BASE, INSTALL_BASE,
# LOG_BASE, COLCON_BUILD_ARGS, COLCON_TEST_ARGS, PYTEST_ARGS, SOAK_ARGS (e.g. --frames 20000),
# MODE and BENCH_ARGS (make bench), RECORD_BENCH_ARGS (its recorder part, bench/record.py,
# e.g. --seconds 60 --frames 400),
# ROUNDS and STRESS_TESTS (make stress).
# Another interpreter needs its own venv and workspace, e.g.
#   make PYTHON=python3.10 VENV=.venv-py310 BUILD_BASE=build-py310 INSTALL_BASE=install-py310 test

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
.DELETE_ON_ERROR:

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
in_root = $(if $(filter /%,$(1)),$(1),$(ROOT)/$(1))

PYTHON ?= python3.11
VENV ?= .venv
BUILD_BASE ?= build
INSTALL_BASE ?= install
LOG_BASE ?= log
COLCON_BUILD_ARGS ?=
COLCON_TEST_ARGS ?=
PYTEST_ARGS ?= -ra

PACKAGES := jetson_shm_ros_interfaces jetson_shm_ros
REQUIREMENTS := $(ROOT)/requirements/ros-kilted.txt $(ROOT)/requirements/record.txt
VENV_DIR := $(call in_root,$(VENV))
STAMP := $(VENV_DIR)/.jsr-setup.stamp

# scripts/env.sh reads these.
export JSR_VENV := $(VENV_DIR)
export JSR_INSTALL_BASE := $(call in_root,$(INSTALL_BASE))
ENV := source $(ROOT)/scripts/env.sh
# For colcon build: leave this workspace's own install/ out of the environment.
ENV_NO_INSTALL := export JSR_ENV_NO_INSTALL=1; $(ENV); unset JSR_ENV_NO_INSTALL

# The venv is an ament prefix: install/setup.{sh,bash,zsh} source its local_setup.<shell>, and
# warn "not found" without one. Empty ones (scripts/env.sh sets the venv up) keep them quiet.
LOCAL_SETUP_TEXT := \# jetson_shm_ros: the venv is an ament prefix; nothing to set up here (see scripts/env.sh).

COLCON_PATHS := --base-paths $(PACKAGES) --build-base $(BUILD_BASE) --install-base $(INSTALL_BASE)
COLCON_EVENTS := desktop_notification- status-

.PHONY: setup build shell docs test demo soak stress bench clean distclean

setup:
	@$(ENV_NO_INSTALL); \
	if [ "$$JSR_ROS_MODE" = system ]; then \
	  echo "setup: using the sourced ROS 2 '$$ROS_DISTRO' (python3 = $$JSR_PYTHON); installing nothing"; \
	  command -v colcon >/dev/null || { echo "setup: colcon not found; install python3-colcon-common-extensions" >&2; exit 1; }; \
	  python3 -c 'import ament_flake8, ament_pep257, pytest' 2>/dev/null \
	    || echo "setup: warning: ament_flake8/ament_pep257/pytest missing: install ros-$$ROS_DISTRO-ament-flake8 ros-$$ROS_DISTRO-ament-pep257 python3-pytest" >&2; \
	else \
	  want=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ -x "$(VENV_DIR)/bin/python" ]; then \
	    have=$$("$(VENV_DIR)/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    if [ "$$have" != "$$want" ]; then \
	      echo "setup: $(VENV_DIR) has Python $$have but PYTHON=$(PYTHON) is $$want;" \
	           "pass VENV=... (and BUILD_BASE/INSTALL_BASE) or run 'make distclean'" >&2; \
	      exit 1; \
	    fi; \
	  fi; \
	  $(MAKE) --no-print-directory -f $(ROOT)/Makefile "$(STAMP)"; \
	  for shell in sh bash zsh; do \
	    [ -f "$(VENV_DIR)/local_setup.$$shell" ] || echo "$(LOCAL_SETUP_TEXT)" \
	      > "$(VENV_DIR)/local_setup.$$shell"; \
	  done; \
	fi

# The expensive part; redone only when the requirements (or the path fix) change.
$(STAMP): $(REQUIREMENTS) $(ROOT)/scripts/fix_venv_cmake_paths.py
	@if [ ! -x "$(VENV_DIR)/bin/python" ]; then \
	  echo "setup: creating $(VENV_DIR) with $$(command -v $(PYTHON))"; \
	  $(PYTHON) -m venv "$(VENV_DIR)"; \
	fi
	@touch "$(VENV_DIR)/COLCON_IGNORE"  # the venv's share/*/package.xml are not workspace packages
	@# One pip run per file: a file's options (record.txt's --only-binary) apply to its lines only.
	for r in $(REQUIREMENTS); do \
	  "$(VENV_DIR)/bin/python" -m pip install --disable-pip-version-check -r "$$r"; \
	done
	"$(VENV_DIR)/bin/python" "$(ROOT)/scripts/fix_venv_cmake_paths.py"
	@touch "$@"

build: setup
	@$(ENV_NO_INSTALL); cd "$(ROOT)"; \
	set -x; \
	colcon --log-base $(LOG_BASE) build $(COLCON_PATHS) --event-handlers $(COLCON_EVENTS) \
	  $(COLCON_BUILD_ARGS) \
	  --cmake-args "-DPython3_EXECUTABLE=$$JSR_PYTHON" -DBUILD_TESTING=OFF

# An interactive shell where the README's commands run as written: the venv (or the sourced
# ROS 2) and this workspace's install/ on the paths. `source scripts/env.sh` does the same in
# the current shell.
# ~/.bashrc may put another python3 first (pyenv's shims): the caller's PATH goes back in front,
# so the shell finds the ROS 2 (sourced, or the venv) that `make build` used.
shell: build
	@cd "$(ROOT)"; export JSR_CALLER_PATH="$$PATH"; \
	exec bash --rcfile <(printf '%s\n' '[ -f ~/.bashrc ] && . ~/.bashrc' \
	  'PATH="$$JSR_CALLER_PATH:$$PATH"; unset JSR_CALLER_PATH' \
	  'source "$(ROOT)/scripts/env.sh"' 'PS1="(jetson_shm_ros) $${PS1-\$$ }"' \
	  'echo "jetson_shm_ros shell ($$JSR_ROS_MODE mode, $$JSR_PYTHON); exit to leave"') -i

docs: build
	@$(ENV); cd "$(ROOT)"; "$$JSR_PYTHON" -m docgen

test: build
	@$(ENV); cd "$(ROOT)"; \
	colcon --log-base $(LOG_BASE) test-result --test-result-base $(BUILD_BASE) --delete-yes >/dev/null 2>&1 || true; \
	rc=0; \
	( set -x; colcon --log-base $(LOG_BASE) test $(COLCON_PATHS) --packages-select $(PACKAGES) \
	    --event-handlers console_direct+ $(COLCON_EVENTS) --return-code-on-test-failure \
	    $(COLCON_TEST_ARGS) --pytest-args $(foreach a,$(PYTEST_ARGS),' $(a)') ) || rc=$$?; \
	results=$$(colcon --log-base $(LOG_BASE) test-result --test-result-base $(BUILD_BASE) --all --verbose) || rc=1; \
	echo "$$results"; \
	summary=$$(grep -E '^Summary: [0-9]+ tests' <<<"$$results" || true); \
	total=$$(sed -nE 's/^Summary: ([0-9]+) tests.*/\1/p' <<<"$$summary"); \
	if [ -z "$$total" ] || [ "$$total" -eq 0 ]; then \
	  echo "make test: FAILED: no test ran (colcon test-result: '$$summary')" >&2; exit 1; \
	fi; \
	if [ ! -f "$(BUILD_BASE)/jetson_shm_ros/pytest.xml" ]; then \
	  echo "make test: FAILED: jetson_shm_ros was not tested with pytest (no $(BUILD_BASE)/jetson_shm_ros/pytest.xml)" >&2; exit 1; \
	fi; \
	if [ "$$rc" -ne 0 ]; then echo "make test: FAILED ($$summary)" >&2; exit "$$rc"; fi; \
	echo "make test: OK ($$summary)"

demo: build
	@$(ENV); "$(ROOT)/scripts/demo.sh"

soak: build
	@$(ENV); "$$JSR_PYTHON" "$(ROOT)/scripts/soak.py" $(SOAK_ARGS)

ROUNDS ?= 50
STRESS_TESTS ?=
stress: build
	@$(ENV); "$(ROOT)/scripts/stress.sh" $(ROUNDS) $(STRESS_TESTS)

MODE ?= quick
BENCH_ARGS ?=
RECORD_BENCH_ARGS ?=
BENCH_REQUIREMENTS := $(ROOT)/requirements/bench.txt
BENCH_STAMP := $(VENV_DIR)/.jsr-bench.stamp

$(BENCH_STAMP): $(BENCH_REQUIREMENTS)
	"$(VENV_DIR)/bin/python" -m pip install --disable-pip-version-check -r "$(BENCH_REQUIREMENTS)"
	@touch "$@"

# quick: CPU transports up to 64 MiB in a few minutes; full: also 256 MiB and, with a GPU,
# pinned / pinned_copy / cuda_ipc (scripts/gpu_bench_full.sh runs it on a GPU machine).
bench: build
	@$(ENV); if [ "$$JSR_ROS_MODE" = venv ]; then $(MAKE) --no-print-directory -f $(ROOT)/Makefile "$(BENCH_STAMP)"; fi
	@$(ENV); cd "$(ROOT)"; "$$JSR_PYTHON" -m bench --mode $(MODE) $(BENCH_ARGS)
	@$(ENV); cd "$(ROOT)"; "$$JSR_PYTHON" -m bench.record $(RECORD_BENCH_ARGS)

clean:
	cd "$(ROOT)" && rm -rf $(BUILD_BASE) $(INSTALL_BASE) $(LOG_BASE)

distclean: clean
	rm -rf "$(VENV_DIR)"
