#!/usr/bin/env bash
# Installs the CNI plugins the node agent's pod network uses (bridge, host-local, loopback,
# portmap) from Debian's containernetworking-plugins, and iptables, which portmap programs its
# hostPort rules with; only what is missing (scripts/lib/apt.sh: idempotent, and under CI=true
# a missing package that cannot be installed fails the run).
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
for pkg in containernetworking-plugins iptables; do
    if package_missing "$pkg"; then missing+=("$pkg"); fi
done
install_missing "CNI plugins (containernetworking-plugins, iptables)" "${missing[@]}"
[ "$(id -u)" -eq 0 ] || [ "${#missing[@]}" -eq 0 ] || exit 0
require_after_install /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback \
    /usr/lib/cni/portmap
