#!/usr/bin/env bash
# The one command that installs everything the test suite needs and runs the whole suite.
# Each scripts/install/*.sh installs one group of prerequisites (Debian packages, images) and is
# idempotent; under CI=true a failing install fails the run instead of letting tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# PY: a Python that may pip-install (a .venv on a fresh Debian, whose python3 refuses).
. scripts/lib/python.sh
hakube_python "$PWD"
"$PY" -m pip install -q -e '.[dev]'
for f in scripts/install/*.sh; do
    [ -e "$f" ] || continue
    echo "== $f"
    bash "$f"
done
# Lint, types and import layers first: a wrong-way import fails the run before any test.
bash scripts/check
# --durations: every run says where the time goes (the suite must stay under ~30 minutes).
"$PY" -m pytest -q -p no:cacheprovider --durations=30 "$@"
