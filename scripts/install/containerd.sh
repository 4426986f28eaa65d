#!/usr/bin/env bash
# Installs what the real-containerd CRI tests need, from Debian's packages, only when missing:
#   containerd + runc   the runtime the node agent drives through CRI (the tests start their own
#                       private containerd; no system service is started or configured here)
#   busybox-static      the binary the local test images are built from (no registry is reachable)
#   docker-registry     a loopback registry, so that CRI PullImage is exercised for real
# Idempotent (scripts/lib/apt.sh); under CI=true a missing package that cannot be installed
# fails the run instead of skipping tests.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
for pkg in containerd runc busybox-static docker-registry; do
    if package_missing "$pkg"; then missing+=("$pkg"); fi
done
install_missing "containerd prerequisites (containerd, runc, busybox-static, docker-registry)" \
    "${missing[@]}"
[ "$(id -u)" -eq 0 ] || [ "${#missing[@]}" -eq 0 ] || exit 0
require_after_install containerd ctr runc containerd-shim-runc-v2 docker-registry /bin/busybox
