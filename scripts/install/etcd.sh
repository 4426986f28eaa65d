#!/usr/bin/env bash
# etcd (Debian's etcd-server, etcd 3.4) for the store benchmark's etcd and etcd-tls systems and
# the tests in tests/bench that start it. Idempotent: installs only when etcd is missing, and
# touches apt only then. Needs root to install; under CI=true a failure to install fails the
# run, so those tests never silently skip.
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
    echo "etcd present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing etcd; run as root to install etcd-server" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing etcd-server"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: etcd-client is not needed, the benchmark speaks etcd's gRPC API.
apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
command -v etcd >/dev/null 2>&1
