#!/usr/bin/env bash
# Installs the CNI plugins the node agent's pod-network tests use (bridge, host-local, loopback),
# from Debian's containernetworking-plugins, only when missing. Idempotent; without root or apt
# it says what is missing and exits non-zero (scripts/test.sh runs it under `set -e`).
set -euo pipefail

if dpkg-query -W -f='${Status}' containernetworking-plugins 2>/dev/null \
        | grep -q 'install ok installed'; then
    echo "CNI plugins present: containernetworking-plugins"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install: containernetworking-plugins" >&2
        exit 1
    fi
    echo "installing: containernetworking-plugins"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends containernetworking-plugins
fi

for plugin in bridge host-local loopback; do
    [ -x "/usr/lib/cni/$plugin" ] || { echo "missing after install: /usr/lib/cni/$plugin" >&2; exit 1; }
done
