"""``hakube up``: one command to a working HA cluster, which survives a killed master and comes
back with its state and ports when started again on the same data dir."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

import pytest
import yaml

from tests.cli.conftest import REPO, ctl_command, ctl_env, pump

pytestmark = pytest.mark.timeout(120)


class Up:
    """A running ``hakube up`` with its output readable line by line."""

    def __init__(self, home: str, *args: str, prefix: Sequence[str] = ()) -> None:
        """``prefix``: a command that runs the rest (e.g. nsenter into a network namespace)."""
        self.env = ctl_env(home)
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "hakube", "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=REPO,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        pump(self.proc.stdout, self.lines)

    def expect(self, text: str, timeout: float = 60) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r}; saw {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def close(self, data_dir: str) -> None:
        """After a test, pass or fail: stop ``hakube up`` the way a user would (SIGTERM: it
        stops everything it started), and if it does not, end what it left behind -- its
        masters, agents and components run in sessions of their own and would outlive it.
        Only processes of this run are touched: found by their data dir or up's pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        marks = (data_dir.encode(), f"up-{self.proc.pid}-".encode())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if b"hakube" in cmdline and any(m in cmdline for m in marks):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def hakubectl(
    home: str, config: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ctl_command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=ctl_env(home, HAKUBE_CONFIG=config),
        timeout=60,
        cwd=REPO,
    )


def pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read()


def test_up_runs_a_cluster_that_outlives_a_master_and_resumes_on_restart(tmp_path: object) -> None:
    home = str(tmp_path)
    data, cfg = os.path.join(home, "data"), os.path.join(home, "cfg")
    up = Up(
        home, "--data-dir", data, "--client-config", cfg, "--restart-delay", "0.5", "--nodes", "0"
    )
    try:
        up.expect("3 masters ready")
        servers = yaml.safe_load(open(cfg))["servers"]
        assert len(servers) == 3
        kubeconfig = os.path.join(data, "kubeconfig")
        up.expect(f"kubeconfig: {kubeconfig} - try `KUBECONFIG={kubeconfig} kubectl get pods`")
        up.expect("Ctrl-C stops the cluster")
        scrape_config = open(os.path.join(data, "prometheus.yml")).read()
        r = hakubectl(
            home,
            cfg,
            "apply",
            "-f",
            "-",
            stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\n",
        )
        assert r.stdout.strip() == "configmap/kept created", r.stderr
        # The real kubectl, through the Kubernetes API, with the kubeconfig hakube up wrote.
        assert os.stat(kubeconfig).st_mode & 0o777 == 0o600
        if shutil.which("kubectl"):
            got = subprocess.run(
                ["kubectl", "--kubeconfig", kubeconfig, "get", "cm", "kept", "-o", "name"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert got.stdout.strip() == "configmap/kept", got.stderr
        # Secure by default: a key file (0600) names every master's encryption config, and
        # each master keeps an audit log.
        keys = os.path.join(data, "encryption.yaml")
        assert os.stat(keys).st_mode & 0o777 == 0o600
        r = hakubectl(
            home,
            cfg,
            "apply",
            "-f",
            "-",
            stdin="apiVersion: v1\nkind: Secret\n"
            "metadata: {name: pw}\nstringData: {p: up-canary-value}\n",
        )
        assert r.returncode == 0, r.stderr
        for name in os.listdir(data):
            if name.startswith("m") and os.path.isdir(os.path.join(data, name)):
                with open(os.path.join(data, name, "raft.journal"), "rb") as f:
                    assert b"up-canary-value" not in f.read()
        assert os.path.getsize(os.path.join(data, "audit", "m1.log")) > 0
        second = subprocess.run(
            [sys.executable, "-m", "hakube", "up", "--data-dir", data, "--client-config", cfg],
            capture_output=True,
            text=True,
            env=up.env,
            timeout=30,
            cwd=REPO,
        )
        assert second.returncode == 1 and "another hakube up is running" in second.stderr
        victim = int(open(os.path.join(data, "m1.pid")).read())
        os.kill(victim, signal.SIGKILL)
        assert hakubectl(home, cfg, "get", "cm", "kept").returncode == 0
        up.expect("master m1 stopped (killed by signal 9)")
        up.expect("master m1 started again")
        pids = [int(open(os.path.join(data, f"m{i}.pid")).read()) for i in (1, 2, 3)]
        assert up.stop() == 0
        up.expect("stopped")
        assert not any(pid_alive(p) for p in pids)  # before close() would end leftovers
    finally:
        up.close(data)
    again = Up(home, "--data-dir", data, "--client-config", cfg, "--nodes", "0")
    try:
        again.expect("3 masters ready")
        assert yaml.safe_load(open(cfg))["servers"] == servers
        # Every metrics address (masters and components) is kept: a Prometheus config stays valid.
        again.expect("Ctrl-C stops the cluster")
        assert open(os.path.join(data, "prometheus.yml")).read() == scrape_config
        got = hakubectl(home, cfg, "get", "cm", "kept", "-o", "name")
        assert got.stdout.strip() == "configmap/kept", got.stderr
        assert again.stop(signal.SIGTERM) == 0
    finally:
        again.close(data)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--nodes", "-1"], "must be 0 or more"),
        (["--masters", "2"], "use 1, 3, 5 or 7"),
    ],
)
def test_up_refuses_what_it_cannot_do_yet(tmp_path: object, args: list[str], message: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakube", "up", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env=ctl_env(str(tmp_path)),
        timeout=30,
        cwd=REPO,
    )
    # A bad setting, like every command's: one line naming it, exit status 2.
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
