#!/usr/bin/env bash
# iperf3 for bench/bench_net.py (pod-to-pod and host-to-host throughput between netns nodes), and
# ethtool for bench/bench_net_ab.py (its gro variant sets the pod veths' offloads).
# Only the benchmarks need them, so a machine without them still runs the tests: idempotent, touches
# apt only when one is missing; under CI=true a failed install fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v ethtool >/dev/null 2>&1 || missing+=(ethtool)
install_missing "iperf3 ethtool" "${missing[@]}"
