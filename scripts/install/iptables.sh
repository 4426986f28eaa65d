#!/usr/bin/env bash
# iptables (the nf_tables flavour) for the fault runs' delay and reorder faults: an iptables
# NFQUEUE rule hands the packets masters send each other to a user-space reader that lets them
# go late and out of order (hakube/testing/jepsen/delayer.py; nft itself has no queue statement
# on kernels built without it, and netem is not always there either). Idempotent: touches apt
# only when `iptables` is missing; under CI=true a missing tool that cannot be installed fails
# the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
{ command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ]; } || missing+=(iptables)
install_missing "iptables" "${missing[@]}"
