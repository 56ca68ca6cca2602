#!/usr/bin/env bash
# Run a command with its GPU processes sharing one context through a private CUDA MPS daemon
# (Multi-Process Service), then stop the daemon again:
#
#   scripts/gpu_mps.sh python -m bench.gpu_costs
#
# Without MPS a discrete GPU switches between the contexts of a producer and a consumer at
# every hand-over (bench.gpu_costs measures it; doc/gpu.md). The daemon's pipe and log
# directories are private to this run (MPS_DIR, default a fresh temporary folder), so it does
# not meet another daemon; the GPU's compute mode is left as it is. Ran on H100 hosts on
# 2026-12-06, as root only: bench.gpu_costs, bench.core_hop, the bench and the GPU tests under
# it (bench/results/nvidia-h100-80gb-hbm3-2026-12-06-mps.txt).
set -uo pipefail
if ! command -v nvidia-cuda-mps-control >/dev/null; then
  echo "gpu_mps: nvidia-cuda-mps-control is not installed here" >&2
  exit 3
fi
MPS_DIR="${MPS_DIR:-$(mktemp -d /tmp/jsr-mps.XXXXXX)}"
export CUDA_MPS_PIPE_DIRECTORY="$MPS_DIR/pipe" CUDA_MPS_LOG_DIRECTORY="$MPS_DIR/log"
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
stop() {
  echo quit | nvidia-cuda-mps-control 2>/dev/null
  for _ in $(seq 50); do pgrep -f "nvidia-cuda-mps-(control|server)" >/dev/null || break; sleep 0.1; done
}
nvidia-cuda-mps-control -d || { echo "gpu_mps: the MPS daemon did not start" >&2; exit 3; }
trap stop EXIT
echo "gpu_mps: MPS daemon started (pipes in $CUDA_MPS_PIPE_DIRECTORY)"
"$@"
