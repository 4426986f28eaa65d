#!/usr/bin/env bash
# The cluster DNS tests and benchmark: `dig` (dnsutils) to query hakube dns as a stub resolver
# would, `dnsmasq` (dnsmasq-base) as the upstream resolver in the tests and the peer in
# bench/bench_dns.py, and `dnsperf` for that benchmark. Idempotent: touches apt only when one is
# missing; under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v dig >/dev/null 2>&1 || missing+=(dnsutils)
command -v dnsperf >/dev/null 2>&1 || missing+=(dnsperf)
{ command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } || missing+=(dnsmasq-base)
install_missing "DNS tools (dig, dnsperf, dnsmasq)" "${missing[@]}"
