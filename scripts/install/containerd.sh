#!/usr/bin/env bash
# Installs what the real-containerd CRI tests need, from Debian's packages, only when missing:
#   containerd + runc   the runtime the node agent drives through CRI (the tests start their own
#                       private containerd; no system service is started or configured here)
#   busybox-static      the binary the local test images are built from (no registry is reachable)
#   docker-registry     a loopback registry, so that CRI PullImage is exercised for real
# Idempotent. Without root or apt it says what is missing and exits non-zero; scripts/test.sh
# runs it under `set -e`, so under CI a failed install fails the run instead of skipping tests.
set -euo pipefail

packages=(containerd runc busybox-static docker-registry)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "containerd prerequisites present: ${packages[*]}"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "installing: ${missing[*]}"
    # shellcheck source=../lib/apt.sh
    . "$(dirname "$0")/../lib/apt.sh"
    apt_install_quiet "${missing[@]}"
fi

for bin in containerd ctr runc containerd-shim-runc-v2 docker-registry; do
    command -v "$bin" >/dev/null || { echo "missing after install: $bin" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "missing after install: /bin/busybox" >&2; exit 1; }
