"""A test run that dies by SIGKILL leaves no process behind (hakube.testing.reaper).

A small script plays the test runner: it starts a real master through the harness, a daemon that
double-forks away from it, and -- in a network namespace -- a process with a cleared environment
that escaped its parent (what a service Ansible deploys over the host's sshd is). Then the
script is SIGKILLed, teardown and all, and every one of those processes must be gone within
seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hakube.testing import netns, reaper
from hakube.testing.wait import wait_for
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

RUNNER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from hakube.testing import reaper
    from hakube.testing.cluster import LocalCluster
    from hakube.testing.netns import Network

    reaper.start()
    cluster = LocalCluster(sys.argv[1], 1).start_all(wait=60)
    daemon = subprocess.run(
        ["setsid", "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    net = Network().__enter__()
    host = net.add_host("h", "192.0.2.10/24")
    sshd = host.spawn(["sleep", "600"])  # stands for the host's sshd
    escaped = host.run(
        ["env", "-i", "setsid", "sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"]
    ).stdout.strip()
    pids = [m.proc.pid for m in cluster.masters] + [int(daemon), sshd.pid, int(escaped)]
    print(json.dumps({"pids": pids, "netns": net._res.namespaces}), flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """Running (a killed orphan may stay a zombie of an init that does not reap)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def test_a_sigkilled_runner_leaves_no_process_behind(tmp_path: Path) -> None:
    require(netns.unavailable_reason())
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(tmp_path / "c")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    namespaces: list[str] = []
    try:
        assert runner.stdout is not None
        line = runner.stdout.readline()
        assert line, runner.communicate(timeout=30)[1]
        started = json.loads(line)
        pids, namespaces = started["pids"], started["netns"]
        assert all(alive(p) for p in pids)
        # The marked processes are this run's: the outer run's check sees them as its own too.
        assert {p.pid for p in reaper.session_processes(os.environ[reaper.ENV])} >= set(pids)
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        wait_for(lambda: not any(alive(p) for p in pids), 15, "the runner's processes to end")
        assert runner.stderr is not None
        assert "died: killed" in runner.stderr.read()  # said so, in the run's output
    finally:
        for p in pids:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
        for ns in reversed(namespaces):
            netns.kill_namespace(ns)
            netns.ip("netns", "del", ns, check=False)
