#!/usr/bin/env bash
# keepalived and iproute2 for the VIP layer and its netns tests (tests/vip). Idempotent: installs
# only what is missing, and touches apt only then. Needs root to install; under CI=true a
# missing tool that cannot be installed fails the run, so the VIP tests never silently skip.
set -euo pipefail

need=()
command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ] || need+=(keepalived)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then
    echo "keepalived and iproute2 present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]}; run as root to install them" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# keepalived's Recommends (ipvsadm) are for its load balancer, which hakube does not use.
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
