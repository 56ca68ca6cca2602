#!/usr/bin/env bash
# Run the lifecycle tests (shutdown, crashes, examples, every signal phase, a signal under each
# executor) ROUNDS times while two CPU-bound processes load the machine; print
# `stress: N rounds, F failures` at the end.
#   scripts/stress.sh [ROUNDS] [pytest files...]     (make stress ROUNDS=50)
# Run it in the environment of scripts/env.sh (make stress does). Each round's log is kept in
# $STRESS_LOG_DIR (default: a temporary directory); failed rounds are named at the end, with
# the slowest signal-to-exit time that test_lifecycle measured. STRESS_BURNERS (2): how many
# CPU-bound processes run beside it (0 when another stress run on the host already loads it).
set -u -o pipefail

ROUNDS="${1:-50}"
shift || true
TESTS=("$@")
if [ "${#TESTS[@]}" -eq 0 ]; then
  # The executors' case: a signal mid-spin under events, single and multi, both processes.
  TESTS=(test/test_shutdown.py test/test_crashes.py test/test_examples.py test/test_lifecycle.py
         test/test_signals.py
         test/test_executors.py::test_a_signal_mid_spin_ends_both_processes_cleanly)
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_DIR="${STRESS_LOG_DIR:-$(mktemp -d /tmp/jsr-stress.XXXXXX)}"
mkdir -p "$LOG_DIR"
PYTHON="${JSR_PYTHON:-python3}"
export JSR_LIFECYCLE_TIMES="$LOG_DIR/exit-times.txt"
: > "$JSR_LIFECYCLE_TIMES"

burners=()
stop_burners() {
  local pid
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null; done
}
trap stop_burners EXIT
for _ in $(seq 1 "${STRESS_BURNERS:-2}"); do
  "$PYTHON" -c 'while 1: pass' &
  burners+=("$!")
done

echo "stress: $ROUNDS rounds of ${TESTS[*]} beside ${STRESS_BURNERS:-2} CPU-bound processes" \
     "(rmw: ${RMW_IMPLEMENTATION:-default}); logs in $LOG_DIR"
failures=0
failed_rounds=()
cd "$ROOT/jetson_shm_ros"
for round in $(seq 1 "$ROUNDS"); do
  log="$LOG_DIR/round-$round.log"
  started=$(date +%s)
  if "$PYTHON" -m pytest -q -p no:cacheprovider "${TESTS[@]}" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failures=$((failures + 1))
    failed_rounds+=("$round")
  fi
  echo "round $round/$ROUNDS: $result ($(tail -n 1 "$log" | tr -d '=') ; $(( $(date +%s) - started )) s)"
  if [ "$result" = FAILED ]; then
    grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
  fi
done

if [ -s "$JSR_LIFECYCLE_TIMES" ]; then
  slowest=$(sort -n "$JSR_LIFECYCLE_TIMES" | tail -n 1)
  over=$(awk '$1 > 1.0' "$JSR_LIFECYCLE_TIMES" | wc -l)
  echo "stress: signal-to-exit: $(wc -l < "$JSR_LIFECYCLE_TIMES") measured, slowest $slowest," \
       "$over over 1 s"
fi
[ "${#failed_rounds[@]}" -eq 0 ] || echo "stress: failed rounds: ${failed_rounds[*]} (logs in $LOG_DIR)"
echo "stress: $ROUNDS rounds, $failures failures"
[ "$failures" -eq 0 ]
