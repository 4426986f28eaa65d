"""How long ``hakube master`` takes from SIGTERM to exit (the lifecycle's stop path).

Starts one single-master cluster per round in a temporary directory, waits for /readyz, sends
SIGTERM and times the exit; prints each round and the median. Run from the repository root:

    python bench/bench_stop.py [ROUNDS]
"""

from __future__ import annotations

import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_round() -> float:
    d = tempfile.mkdtemp(prefix="hakube-bench-stop-")
    api, raft, metrics = _free_port(), _free_port(), _free_port()
    argv = [sys.executable, "-m", "hakube", "master", "--name", "m1", "--data-dir", f"{d}/m1"]
    argv += ["--api-listen", f"127.0.0.1:{api}", "--raft-listen", f"127.0.0.1:{raft}"]
    argv += ["--metrics-listen", f"127.0.0.1:{metrics}", "--k8s-api-listen", "off"]
    with open(f"{d}/log", "w") as log:
        p = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"the master did not get ready; see {d}/log")
        started = time.monotonic()
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
        took = time.monotonic() - started
        if rc != 0:
            raise RuntimeError(f"the master exited with {rc}; see {d}/log")
        return took
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    times = []
    for i in range(rounds):
        times.append(one_round())
        print(f"round {i + 1}: SIGTERM to exit {times[-1]:.2f} s", flush=True)
    print(f"median {statistics.median(times):.2f} s over {rounds} rounds")


if __name__ == "__main__":
    main()
