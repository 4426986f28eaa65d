#!/usr/bin/env bash
# Chromium and its WebDriver for the web console's browser tests (tests/console). Idempotent:
# touches apt only when one is missing; under CI=true a missing browser that cannot be
# installed fails the run.
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium and chromedriver present"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "missing chromium/chromedriver; run as root to install them" >&2
    [ "${CI:-}" = "true" ] && exit 1
    exit 0
fi
echo "installing chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
