#!/usr/bin/env bash
# etcd (Debian's etcd-server, etcd 3.4) for the store benchmark's etcd and etcd-tls systems and
# the tests in tests/bench that start it. Idempotent: installs only when etcd is missing, and
# touches apt only then. Needs root to install; under CI=true a failure to install fails the
# run, so those tests never silently skip.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
# etcd-server without recommends: etcd-client is not needed, the benchmark speaks etcd's gRPC API.
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
install_missing "etcd" "${missing[@]}"
