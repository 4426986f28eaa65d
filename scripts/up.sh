#!/usr/bin/env bash
# Set-up command 1 of the README: install hakube, start a local three-master cluster in the
# background (`hakube up`), and apply the sample manifest from examples/.
#
# The cluster keeps its state and ports in ~/.hakube/cluster (HAKUBE_UP_DATA_DIR overrides);
# running this again reuses a running cluster or resumes a stopped one. Stop it with
#     kill $(cat ~/.hakube/cluster/up.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
. scripts/lib/python.sh
hakube_python "$root"

echo "== installing hakube ($PY)"
"$PY" -m pip install -q -e .

# Console scripts of a private venv are not on the user's PATH; link them (as root only, and
# never over a file that is not already such a link).
bindir="$(dirname "$PY")"
if [ "$bindir" = "$root/.venv/bin" ] && [ "$(id -u)" = 0 ]; then
    for tool in hakube hakubectl; do
        dest="/usr/local/bin/$tool"
        if [ ! -e "$dest" ] || { [ -L "$dest" ] && readlink "$dest" | grep -q '/.venv/bin/'; }; then
            ln -sf "$bindir/$tool" "$dest"
        fi
    done
fi

data="${HAKUBE_UP_DATA_DIR:-$HOME/.hakube/cluster}"
mkdir -p "$data"
pid=""
if [ -f "$data/up.pid" ] && kill -0 "$(cat "$data/up.pid")" 2>/dev/null; then
    pid="$(cat "$data/up.pid")"
    echo "== a cluster is already running on $data (pid $pid)"
else
    echo "== starting hakube up in the background (log: $data/up.log)"
    setsid nohup "$PY" -m hakube up --data-dir "$data" >"$data/up.log" 2>&1 </dev/null &
    pid=$!
fi

export HAKUBE_CONFIG="$data/client-config"
deadline=$((SECONDS + 90))
until [ -f "$HAKUBE_CONFIG" ] && "$PY" -m hakube.cli.ctl cluster status --timeout 2s >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "hakube up exited; the end of $data/up.log:" >&2
        tail -n 20 "$data/up.log" >&2
        exit 1
    fi
    if [ "$SECONDS" -gt "$deadline" ]; then
        echo "the cluster did not become ready within 90s; see $data/up.log" >&2
        exit 1
    fi
    sleep 0.5
done

"$PY" -m hakube.cli.ctl apply -f examples/hello.yaml
# The scheduler, the controllers and two node agents (simulated runtime) run the sample.
"$PY" -m hakube.cli.ctl rollout status deployment/web -n demo --timeout 120s
echo
"$PY" -m hakube.cli.ctl get pods -n demo -o wide
echo
"$PY" -m hakube.cli.ctl cluster status
echo
echo "hakube is running (pid $pid). Try:  hakubectl get all -n demo"
echo "Stop it with:                       kill \$(cat $data/up.pid)"
