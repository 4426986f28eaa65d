#!/usr/bin/env bash
# nftables (the `nft` tool) for the fault-injection tests, which cut links between netns hosts
# with a table of drop rules in each host (tests/jepsen), and for hakube proxy, which programs
# Services into a table of its own (tests/proxy, tests/net). Idempotent: touches apt only when `nft`
# is missing; under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
{ command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; } || missing+=(nftables)
install_missing "nftables" "${missing[@]}"
