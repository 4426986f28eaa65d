#!/usr/bin/env bash
# keepalived and iproute2 for the VIP layer and its netns tests (tests/vip). Idempotent: installs
# only what is missing, and touches apt only then. Needs root to install; under CI=true a
# missing tool that cannot be installed fails the run, so the VIP tests never silently skip.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
{ command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ]; } || missing+=(keepalived)
{ command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ]; } || missing+=(iproute2)
install_missing "keepalived and iproute2" "${missing[@]}"
