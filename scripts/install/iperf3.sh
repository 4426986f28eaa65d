#!/usr/bin/env bash
# iperf3 for bench/bench_net.py (pod-to-pod and host-to-host throughput between netns nodes).
# Only the benchmark needs it, so a machine without it still runs the tests: idempotent, touches
# apt only when iperf3 is missing; under CI=true a failed install fails the run.
set -euo pipefail

if command -v iperf3 >/dev/null 2>&1; then
    echo "iperf3 present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing iperf3; run as root to install it" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing iperf3"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends iperf3 >/dev/null
