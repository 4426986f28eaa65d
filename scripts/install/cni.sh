#!/usr/bin/env bash
# Installs the CNI plugins the node agent's pod network uses (bridge, host-local, loopback,
# portmap) from Debian's containernetworking-plugins, and iptables, which portmap programs its
# hostPort rules with; only what is missing. Idempotent; without root or apt
# it says what is missing and exits non-zero (scripts/test.sh runs it under `set -e`).
set -euo pipefail

missing=()
for pkg in containernetworking-plugins iptables; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "CNI plugins present: containernetworking-plugins, iptables"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for plugin in bridge host-local loopback portmap; do
    [ -x "/usr/lib/cni/$plugin" ] || { echo "missing after install: /usr/lib/cni/$plugin" >&2; exit 1; }
done
