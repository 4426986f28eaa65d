# Sourced by the set-up scripts: sets PY to a Python 3.11+ that pip may install into, and puts
# its bin directory first on PATH.
#
# A fresh Debian 12 has only the system python3, which refuses `pip install` (PEP 668,
# "externally managed") and may lack pip and venv. Then a virtual environment is made in
# .venv of the checkout (installing python3-venv with apt-get if needed). Any other Python
# (an activated venv, pyenv, a CI image's) is used as it is.

hakube_python() {
    local root="$1"
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        PY="$VIRTUAL_ENV/bin/python"
    elif [ -x "$root/.venv/bin/python" ]; then
        PY="$root/.venv/bin/python"
    elif python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            echo "== installing python3-venv (the system Python refuses pip installs)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        fi
        echo "== creating $root/.venv"
        python3 -m venv "$root/.venv"
        PY="$root/.venv/bin/python"
    else
        PY="$(command -v python3)"
    fi
    if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "hakube needs Python 3.11 or newer; $PY is $("$PY" --version 2>&1)" >&2
        return 1
    fi
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m ensurepip -q >/dev/null 2>&1 || {
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >/dev/null
        }
    fi
    PATH="$(dirname "$PY"):$PATH"
    export PY PATH PIP_DISABLE_PIP_VERSION_CHECK=1
}
