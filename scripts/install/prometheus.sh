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
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the package's service from being started by its postinst script.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
[ "$status" -eq 0 ] || exit "$status"
for bin in prometheus promtool; do
    command -v "$bin" >/dev/null || { echo "missing after install: $bin" >&2; exit 1; }
done
