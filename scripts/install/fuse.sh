#!/usr/bin/env bash
# FUSE for the power-loss tests, which mount a lazy file system (hakube/testing/lazyfs, served by
# fusepy on libfuse 2) under each master's data directory: libfuse2 and fusermount. Idempotent:
# touches apt only when one is missing; under CI=true a missing one that cannot be installed
# fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=(libfuse2)
command -v fusermount >/dev/null 2>&1 || missing+=(fuse)
install_missing "libfuse2 and fusermount" "${missing[@]}"
