#!/usr/bin/env bash
# FUSE for the power-loss tests, which mount a lazy file system (hakube/testing/lazyfs, served by
# fusepy on libfuse 2) under each master's data directory: libfuse2 and fusermount. Idempotent:
# touches apt only when one is missing; under CI=true a missing one that cannot be installed
# fails the run.
set -euo pipefail

if ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' && command -v fusermount >/dev/null 2>&1; then
    echo "libfuse2 and fusermount present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing libfuse2/fusermount; run as root to install them" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing libfuse2 and fuse"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends libfuse2 fuse >/dev/null
