#!/usr/bin/env bash
# iperf3 for bench/bench_net.py (pod-to-pod and host-to-host throughput between netns nodes).
# Only the benchmark needs it, so a machine without it still runs the tests: idempotent, touches
# apt only when iperf3 is missing; under CI=true a failed install fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
install_missing "iperf3" "${missing[@]}"
