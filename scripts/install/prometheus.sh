#!/usr/bin/env bash
# Prometheus and promtool (Debian's `prometheus`) for tests/observability: a real Prometheus
# scrapes a local cluster with the prometheus.yml `hakube up` writes, and `promtool check rules` /
# `promtool test rules` check deploy/prometheus. Idempotent: touches apt only when a tool is
# missing. The package's own service is not started (the tests run their own Prometheus on
# loopback). Under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus and promtool present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing prometheus/promtool; run as root to install Debian's prometheus" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing prometheus"
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"
apt_install_quiet prometheus
for bin in prometheus promtool; do
    command -v "$bin" >/dev/null || { echo "missing after install: $bin" >&2; exit 1; }
done
