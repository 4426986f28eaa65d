#!/usr/bin/env bash
# Chromium and its WebDriver for the web console's browser tests (tests/console). Idempotent:
# touches apt only when one is missing; under CI=true a missing browser that cannot be
# installed fails the run.
set -euo pipefail
# shellcheck source=../lib/apt.sh
. "$(dirname "$0")/../lib/apt.sh"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
install_missing "chromium and chromedriver" "${missing[@]}"
