#!/usr/bin/env bash
# nftables (the `nft` tool) for the fault-injection tests, which cut links between netns hosts
# with a table of drop rules in each host (tests/jepsen), and for hakube proxy, which programs
# Services into a table of its own (tests/proxy, tests/net). Idempotent: touches apt only when `nft`
# is missing; under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail

if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; then
    echo "nftables present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing nftables; run as root to install it" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing nftables"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nftables >/dev/null
