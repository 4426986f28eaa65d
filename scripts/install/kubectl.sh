#!/usr/bin/env bash
# kubectl for the tests of the Kubernetes REST API (tests/kubeapi), which drive the real client
# as users do. Idempotent: touches apt only when kubectl is missing (Debian's package is
# kubernetes-client); under CI=true a missing tool that cannot be installed fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
install_missing "kubectl" "${missing[@]}"
