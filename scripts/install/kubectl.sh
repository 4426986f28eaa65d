#!/usr/bin/env bash
# kubectl for the tests of the Kubernetes REST API (tests/kubeapi), which drive the real client
# as users do. Idempotent: touches apt only when kubectl is missing (Debian's package is
# kubernetes-client); under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail

if command -v kubectl >/dev/null 2>&1; then
    echo "kubectl present ($(kubectl version --client 2>/dev/null | head -1))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing kubectl; run as root to install it" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing kubectl (kubernetes-client)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
