#!/usr/bin/env bash
# The lifecycle matrix on a lent GPU machine, for backend pinned and cuda_ipc (doc/lifecycle.md):
#  1. test_lifecycle.py and test_shutdown.py with every node on that backend (JSR_TEST_BACKEND):
#     a signal in every start-up/teardown phase exits 0, no traceback, no segment left;
#  2. a consumer SIGKILLed while it holds the producer's segment mapped (pinned registration or
#     CUDA IPC mapping): the producer goes on, a new consumer verifies frames;
#  3. a producer SIGKILLed while a consumer has its segment (and, cuda_ipc, its IPC event) open:
#     the consumer goes on and verifies the frames of a new producer of the same segment name;
#  after 2 and 3 `nvidia-smi --query-compute-apps` must not list the killed process, and after
#  everything it must list none of ours; no segment may be left.
#
#   WHEELS=.whl-ros scripts/gpu_lifecycle_check.sh        (output also under $OUT when set)
#
# Takes about 7 minutes on an H200 machine (build ~20 s, each backend's tests ~100 s, the kill
# cases ~70 s each): more than one 250 s call; TESTS/BACKENDS split it.
#
# WHEELS as for scripts/gpu_ros_env.sh (the cp312 ROS wheels). BACKENDS ("pinned cuda_ipc"),
# TESTS (the pytest files of step 1; none: leave step 1 out), SKIP_SETUP=1 reuses a build made before.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
LOG_DIR="${OUT:-/tmp/jsr-gpu-out}"
mkdir -p "$LOG_DIR"
BACKENDS="${BACKENDS:-pinned cuda_ipc}"
TESTS="${TESTS:-test/test_lifecycle.py test/test_shutdown.py}"
# shellcheck source=scripts/gpu_ros_env.sh
source "$ROOT/scripts/gpu_ros_env.sh" || { echo "gpu_lifecycle_check: ROS set-up failed"; exit 1; }
BIN="$WORK/install/jetson_shm_ros/lib/jetson_shm_ros"
export PYTHONFAULTHANDLER=1  # a hung node dumps its threads on SIGABRT (stop_and_check)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

status=0
fail() { echo "  FAILED: $*"; status=1; }

# The compute apps nvidia-smi lists now (pid,used_memory), one per line.
gpu_apps() { nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null; }

expect_gone_from_gpu() {  # PID: the process must hold no GPU context any more
  local deadline=$((SECONDS + 10))
  while gpu_apps | grep -q "^$1,"; do
    if [ "$SECONDS" -ge "$deadline" ]; then fail "pid $1 still listed by nvidia-smi"; return; fi
    sleep 0.2
  done
  echo "  nvidia-smi: pid $1 holds nothing"
}

wait_for_line() {  # LOG PATTERN PID: wait up to 60 s until LOG matches PATTERN
  local deadline=$((SECONDS + 60))
  until grep -Eq "$2" "$1"; do
    if [ "$SECONDS" -ge "$deadline" ] || ! kill -0 "$3" 2>/dev/null; then
      fail "no '$2' in $1"; sed 's/^/    /' "$1" | tail -n 20; return 1
    fi
    sleep 0.1
  done
}

count_of() {  # LOG KEY: the last KEY=N the log shows (verified=, not unverified=)
  grep -Eo "(^|[^a-z_])$2=[0-9]+" "$1" | tail -n 1 | grep -Eo '[0-9]+$'
}

signal_state() {  # PID: the process's signal dispositions (hex masks: bit n-1 = signal n)
  grep -E '^Sig(Pnd|Blk|Ign|Cgt)|^ShdPnd' "/proc/$1/status" 2>/dev/null | tr '\n\t' '  '
  echo -n "threads blocking SIGINT:"
  local task
  for task in /proc/"$1"/task/*; do
    # SIGINT is bit 1 of the blocked mask.
    (( 0x$(awk '/^SigBlk/ {print $2}' "$task/status" 2>/dev/null || echo 0) & 2 )) && \
      echo -n " $(basename "$task")($(cat "$task/comm" 2>/dev/null))"
  done
}

stop_and_check() {  # NAME PID LOG: SIGINT, exit 0 expected within 20 s, no traceback
  local rc=0 deadline
  echo "  $1 before SIGINT: $(signal_state "$2")"
  kill -INT "$2" 2>/dev/null
  deadline=$((SECONDS + 20))
  while kill -0 "$2" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$2/stat" 2>/dev/null)" != Z ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      # Where it is: the dispositions now, then every thread's Python stack (faulthandler).
      fail "$1 still running 20 s after SIGINT: $(signal_state "$2")"
      kill -ABRT "$2" 2>/dev/null; sleep 3; kill -KILL "$2" 2>/dev/null
      sed 's/^/    /' "$3" | tail -n 60
      break
    fi
    sleep 0.1
  done
  wait "$2" || rc=$?
  echo "  $1 exit $rc"
  [ "$rc" -eq 0 ] || fail "$1 exited $rc"
  if grep -q Traceback "$3"; then fail "$1 printed a traceback"; sed 's/^/    /' "$3" | tail -n 30; fi
}

for backend in $BACKENDS; do
  if [ "$TESTS" != none ]; then
    step "lifecycle tests, backend $backend: $TESTS"
    (cd "$ROOT/jetson_shm_ros" && JSR_TEST_BACKEND="$backend" \
      JSR_LIFECYCLE_TIMES="$LOG_DIR/exit-times.$backend.txt" \
      python -m pytest -q -rf -p no:cacheprovider $TESTS 2>&1 \
      | tee "$LOG_DIR/lifecycle.$backend.log" | tail -n 15; exit "${PIPESTATUS[0]}") || status=1
    [ -s "$LOG_DIR/exit-times.$backend.txt" ] && \
      echo "  slowest signal-to-exit: $(sort -n "$LOG_DIR/exit-times.$backend.txt" | tail -n 1)"
  fi

  export ROS_DOMAIN_ID=$((100 + RANDOM % 100))
  segment="/jsr_gpu_lifecycle.$backend.$$"
  logs="$LOG_DIR/kill.$backend"
  mkdir -p "$logs"
  common=(-p backend:="$backend" -p status_period_s:=0.5)
  producer_args=(--ros-args -p shm_name:="$segment" -p shape:=[512,512,4] -p rate_hz:=50.0
                 -p slots:=4 "${common[@]}")

  step "backend $backend: a consumer killed while it holds the mapping (domain $ROS_DOMAIN_ID)"
  "$BIN/producer" "${producer_args[@]}" >"$logs/producer1.log" 2>&1 &
  producer=$!
  "$BIN/consumer" --ros-args "${common[@]}" >"$logs/consumer1.log" 2>&1 &
  consumer=$!
  if wait_for_line "$logs/consumer1.log" "verified=[1-9]" "$consumer"; then
    kill -KILL "$consumer"; wait "$consumer" 2>/dev/null
    echo "  consumer $consumer killed (it held $segment mapped)"
    expect_gone_from_gpu "$consumer"
    before=$(count_of "$logs/producer1.log" published)
    "$BIN/consumer" --ros-args "${common[@]}" >"$logs/consumer2.log" 2>&1 &
    consumer=$!
    wait_for_line "$logs/consumer2.log" "verified=[1-9]" "$consumer" && \
      echo "  a new consumer verifies frames: $(grep -o 'status: .*' "$logs/consumer2.log" | tail -n 1)"
    after=$(count_of "$logs/producer1.log" published)
    echo "  producer went on: published $before -> $after"
    [ "${after:-0}" -gt "${before:-0}" ] || fail "the producer stopped after the consumer died"
    stop_and_check consumer "$consumer" "$logs/consumer2.log"
    grep -q 'invalid=0 ' "$logs/consumer2.log" || fail "the new consumer saw invalid frames"
  fi

  step "backend $backend: a producer killed while a consumer has its segment and event open"
  if wait_for_line "$logs/producer1.log" "published=[1-9]" "$producer"; then
    "$BIN/consumer" --ros-args "${common[@]}" >"$logs/consumer3.log" 2>&1 &
    consumer=$!
    wait_for_line "$logs/consumer3.log" "verified=[1-9]" "$consumer"
    kill -KILL "$producer"; wait "$producer" 2>/dev/null
    echo "  producer $producer killed"
    expect_gone_from_gpu "$producer"
    "$BIN/producer" "${producer_args[@]}" >"$logs/producer2.log" 2>&1 &
    producer=$!
    # Count from the consumer's remap onto the new producer: frames of the killed one still in
    # flight must not pass for the new one's. Until the new producer publishes it may not have
    # installed its handler yet, and a background job inherits SIGINT ignored: a SIGINT then
    # would be discarded by the kernel (doc/lifecycle.md).
    wait_for_line "$logs/producer2.log" "published=[1-9]" "$producer"
    wait_for_line "$logs/consumer3.log" "re-created by a new producer" "$consumer"
    verified=$(count_of "$logs/consumer3.log" verified)
    deadline=$((SECONDS + 60))
    while [ "$(count_of "$logs/consumer3.log" verified)" -le "${verified:-0}" ]; do
      if [ "$SECONDS" -ge "$deadline" ]; then fail "the consumer verified nothing new"; break; fi
      sleep 0.2
    done
    echo "  consumer went on with the new producer: verified ${verified:-0} ->" \
         "$(count_of "$logs/consumer3.log" verified)"
    stop_and_check producer "$producer" "$logs/producer2.log"
    stop_and_check consumer "$consumer" "$logs/consumer3.log"
    grep -o 'summary: .*' "$logs/consumer3.log" | sed 's/^/  consumer /'
  fi
  if [ -e "/dev/shm$segment" ]; then fail "/dev/shm$segment left behind"; fi
done

step "nothing left"
left=$(gpu_apps)
if [ -n "$left" ]; then fail "nvidia-smi still lists compute apps: $left"; else echo "  nvidia-smi: no compute app"; fi
leftover=$(ls /dev/shm | grep -E '^(jsr_|jetson_shm_ros)' || true)
if [ -n "$leftover" ]; then fail "segments left: $leftover"; else echo "  /dev/shm: no segment of ours"; fi
if [ "$status" -eq 0 ]; then echo "gpu_lifecycle_check: OK"; else echo "gpu_lifecycle_check: FAILED"; fi
exit "$status"
