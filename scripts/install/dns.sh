#!/usr/bin/env bash
# The cluster DNS tests and benchmark: `dig` (dnsutils) to query hakube dns as a stub resolver
# would, `dnsmasq` (dnsmasq-base) as the upstream resolver in the tests and the peer in
# bench/bench_dns.py, and `dnsperf` for that benchmark. Idempotent: touches apt only when one is
# missing; without root it says what is missing and exits non-zero (scripts/test.sh runs it
# under `set -e`).
set -euo pipefail

missing=()
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
{ command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } || missing+=(dnsmasq-base)
if [ ${#missing[@]} -eq 0 ]; then
    echo "DNS tools present: dig, dnsperf, dnsmasq"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
