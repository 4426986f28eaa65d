"""The README's tour on ``hakube up --runtime containerd``: a pod fetches the demo web Service
by its DNS name (``http://web.demo.svc.cluster.local:8080``).

``hakube up`` runs as a user would run it -- a subprocess, one master, one node -- but inside a
network namespace of its own (loopback plus a veth pair, both ends inside, holding the "host
address" and the default route, so nothing leaves the machine) against a private containerd
in the same namespace (hakube/testing/containerd.py), whose CRI socket and CNI directory are
passed with ``--cri-endpoint`` / ``--cni-conf-dir``. The sample image gets there as the README
says, with ``python3 -m hakube.testing.sampleimages``. Everything ``hakube up`` programs (pod
bridge, the proxy's nft table, routes, the DNS on port 53) lives in that namespace and goes
with it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hakube.agent import tmpfs
from hakube.testing import containerd as ctdmod
from hakube.testing.netnodes import free_subnet
from hakube.testing.netns import ip, kill_namespace
from hakube.testing.wait import wait_for
from tests.cli.conftest import EXAMPLES, REPO, ctl_command, ctl_env
from tests.cli.test_up import Up
from tests.conftest import require
from tests.net.conftest import prerequisites

pytestmark = [pytest.mark.containerd, pytest.mark.netns, pytest.mark.timeout(300)]

URL = "http://web.demo.svc.cluster.local:8080"


class Machine:
    """A network namespace standing in for a one-machine host, with its own containerd."""

    def __init__(self, workdir: Path) -> None:
        self.netns = f"hk{os.getpid()}x{secrets.token_hex(2)}-up"
        self.workdir = workdir
        self.containerd: ctdmod.Containerd | None = None

    def start(self) -> None:
        ip("netns", "add", self.netns)
        net = free_subnet()
        address = ipaddress.ip_address(int(net.network_address) + 1)
        for cmd in (
            ("link", "set", "lo", "up"),
            # A veth pair, both ends inside: a link that carries nothing off the namespace.
            ("link", "add", "eth0", "type", "veth", "peer", "name", "eth1"),
            ("addr", "add", f"{address}/{net.prefixlen}", "dev", "eth0"),
            ("link", "set", "eth0", "up"),
            ("link", "set", "eth1", "up"),
            ("route", "add", "default", "dev", "eth0"),
        ):
            ip("-n", self.netns, *cmd)
        self.containerd = ctdmod.Containerd(ctdmod.ContainerdSettings(netns=self.netns))
        self.containerd.start()

    def argv(self, *argv: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    def close(self) -> None:
        """After ``hakube up`` is gone: containerd removes its sandboxes (their netns files,
        mounts, cgroups) and stops; then whatever still runs in the namespace is killed, and
        the namespace -- with the pod bridge, routes and the proxy's nft table -- deleted."""
        if self.containerd is not None:
            self.containerd.stop()
        kill_namespace(self.netns)
        for m in tmpfs.mounts_under(self.workdir):
            tmpfs.unmount(m)
        ip("netns", "del", self.netns, check=False)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    prerequisites()
    require(None if os.path.exists("/usr/sbin/nft") else "nft (scripts/install/nftables.sh)")
    m = Machine(tmp_path)
    try:
        m.start()
        yield m
    finally:
        m.close()


def test_readme_tour_fetches_the_web_service_by_name_from_a_pod(
    machine: Machine, tmp_path: Path
) -> None:
    ctd = machine.containerd
    assert ctd is not None
    home = str(tmp_path)
    data, cfg = str(tmp_path / "data"), str(tmp_path / "cfg")
    images = subprocess.run(
        [sys.executable, "-m", "hakube.testing.sampleimages", "--address", str(ctd.socket)]
        + ["--sandbox-image", ctd.settings.sandbox_image, "--snapshotter", ctd.snapshotter],
        capture_output=True,
        text=True,
        timeout=120,
        env=ctl_env(home),
        cwd=REPO,
        check=False,
    )
    assert images.returncode == 0, images.stderr
    assert "imported docker.io/library/busybox:stable" in images.stdout

    def ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            machine.argv(*ctl_command(*args)),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=ctl_env(home, HAKUBE_CONFIG=cfg),
            cwd=REPO,
            check=False,
        )

    up = Up(
        home,
        *("--runtime", "containerd", "--cri-endpoint", ctd.endpoint),
        *("--cni-conf-dir", str(ctd.cni_conf_dir), "--masters", "1", "--nodes", "1"),
        *("--data-dir", data, "--client-config", cfg, "--restart-delay", "1"),
        prefix=machine.argv(),
    )
    try:
        up.expect("Ctrl-C stops the cluster", timeout=120)
        for manifest in ("hello.yaml", "pod.yaml"):
            r = ctl("apply", "-f", os.path.join(EXAMPLES, manifest))
            assert r.returncode == 0, r.stderr

        def serving() -> bool:
            pods = json.loads(ctl("get", "pods", "-A", "-o", "json").stdout or "{}")
            running = [p for p in pods.get("items", []) if p["status"].get("phase") == "Running"]
            return len(running) == 3

        def explain(what: str) -> AssertionError:
            """The state a failure needs explained: pods, the pod's view, the logs."""
            out = [what, ctl("get", "pods", "-A", "-o", "wide").stdout]
            for cmd in (("cat", "/etc/resolv.conf"), ("nslookup", URL.split("/")[2].split(":")[0])):
                r = ctl("exec", "hello", "--", *cmd)
                out.append(f"$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
            nft = subprocess.run(machine.argv("nft", "list", "ruleset"), capture_output=True)
            out.append(nft.stdout.decode(errors="replace")[-4000:])
            out += [
                f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:]
                for f in sorted(Path(data).glob("*.log"))
            ]
            return AssertionError("\n".join(out))

        try:
            wait_for(serving, 120, "the tour's pods Running", interval=1)
        except TimeoutError as e:
            raise explain(str(e)) from None

        failures: list[str] = []

        def fetched() -> str:
            # (busybox-static's wget crashes with -T; the subprocess timeout bounds it instead)
            start = time.monotonic()
            try:
                r = ctl("exec", "hello", "--", "wget", "-qO-", URL, timeout=15)
            except subprocess.TimeoutExpired:
                failures.append(f"timed out after {time.monotonic() - start:.1f}s")
                return ""
            if r.returncode != 0:
                failures.append(
                    f"exit {r.returncode} after {time.monotonic() - start:.1f}s: {r.stderr}"
                )
                return ""
            return r.stdout

        first: list[str] = []
        try:
            wait_for(lambda: first.append(fetched()) or first[-1], 60, URL, interval=1)
        except TimeoutError as e:
            raise explain(str(e)) from None
        page = first[-1]
        assert page.startswith("hello from hakube from web-"), page
        # Served by the Service's pods: both replicas of the Deployment answer in turn.
        servers = {fetched().strip() for _ in range(12)}
        assert len(servers) == 2, (servers, failures)
        assert up.stop() == 0
    finally:
        up.close(data)
