#!/usr/bin/env bash
# Prometheus and promtool (Debian's `prometheus`) for tests/observability: a real Prometheus
# scrapes a local cluster with the prometheus.yml `hakube up` writes, and `promtool check rules` /
# `promtool test rules` check deploy/prometheus. Idempotent: touches apt only when a tool is
# missing. The package's own service is not started (the tests run their own Prometheus on
# loopback). Under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing+=(prometheus)
install_missing "prometheus and promtool" "${missing[@]}"
