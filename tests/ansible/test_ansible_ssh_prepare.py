"""Preflight and host preparation (ansible/prepare.yml, role hakube_host) over real SSH.

Two hosts in network namespaces, a master and a node, each with its own sshd; ansible-playbook
runs in a third namespace and connects as root with the test's key, verifying host keys against
the known_hosts the test wrote. The hosts share this machine's file system, so each gets its own
``hakube_root`` for the files the role writes, and ``hakube_host_live: false`` (no modprobe,
swapoff, sysctl, hostname or apt on this machine): the test asserts the files. What runs on the
hosts runs in their namespaces, so the preflight's port check sees each host's own sockets.

What it proves: the files the seed's preparation needs (hosts entries for the VIP's name and each
member, hostname, swap lines of fstab commented out, modules at boot, the sysctl file, limits,
containerd's configuration on the node only); a second run and a --check run change nothing;
--check on fresh hosts writes nothing; each preflight failure -- swap on, a port in use, another
OS, too little memory -- stops every host with one line naming the host, and nothing is written;
a host whose key does not match known_hosts is not connected to.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hakube.testing.netns import Host, Network, unavailable_reason
from hakube.testing.wait import wait_for
from tests.ansible.sshlab import SshLab
from tests.ansible.sshlab import unavailable_reason as ssh_unavailable
from tests.ansible.tools import ansible_tool, recap, run_playbook
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

VIP = "192.0.2.100"
HOSTS = {"m1": "192.0.2.11", "n1": "192.0.2.21"}
NO_SWAP = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


@dataclass
class Lab:
    net: Network
    ssh: SshLab
    hosts: dict[str, Host]
    control_dir: Path

    @property
    def root(self) -> Path:
        return self.net.workdir

    def inventory(self, tag: str, **host_overrides: dict[str, object]) -> Path:
        """An inventory whose hosts write below ``<workdir>/<tag>/<host>``; per-host variables
        in ``host_overrides``."""
        base = self.root / tag
        hosts: dict[str, dict[str, object]] = {}
        for name, address in HOSTS.items():
            (base / name / "etc").mkdir(parents=True, exist_ok=True)
            swaps = base / name / "swaps"
            swaps.write_text(NO_SWAP)
            hosts[name] = {
                "ansible_host": address,
                "hakube_root": str(base / name / "root"),
                "hakube_preflight_swaps_file": str(swaps),
                "ansible_remote_tmp": str(base / name / "tmp"),
                **host_overrides.get(name, {}),
            }
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "hakube_host_live": False,
                    "hakube_install_os_packages": False,
                    "hakube_service_mode": "process",
                    "hakube_vip": f"{VIP}/24",
                },
                "children": {
                    "masters": {"hosts": {"m1": hosts["m1"]}},
                    "nodes": {"hosts": {"n1": hosts["n1"]}},
                },
            }
        }
        path = base / "inventory.yml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return path

    def play(self, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """ansible-playbook prepare.yml from the control namespace, over SSH."""
        return run_playbook(self.ssh, self.control_dir, self.root, inventory, "prepare.yml", *args)


def failure_line(output: str) -> str:
    """The one message of a failed assert in ansible-playbook's output."""
    lines = [line for line in output.splitlines() if '"msg":' in line or "msg:" in line]
    return " ".join(lines)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if ansible_tool("ansible-playbook") is None:
        require("ansible-playbook is not installed (pip install -e '.[dev]')")
    require(unavailable_reason())
    require(ssh_unavailable())
    control_dir = Path(tempfile.mkdtemp(prefix="hks", dir="/tmp"))
    try:
        with Network() as net:
            ssh = SshLab(net)
            hosts = {name: ssh.add_host(name, f"{a}/24") for name, a in HOSTS.items()}
            yield Lab(net, ssh, hosts, control_dir)
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


def written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_prepare_over_ssh_writes_the_seeds_preparation_and_is_idempotent(lab: Lab) -> None:
    # --check on fresh hosts reports what it would do and writes nothing.
    inventory = lab.inventory("fresh")
    fstab = lab.root / "fresh/n1/root/etc/fstab"
    fstab.parent.mkdir(parents=True)
    fstab.write_text("UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n")
    checked = lab.play(inventory, "--check")
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr
    assert written(lab.root / "fresh/m1/root") == []
    assert written(lab.root / "fresh/n1/root") == ["etc/fstab"]

    first = lab.play(inventory)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    m1, n1 = lab.root / "fresh/m1/root", lab.root / "fresh/n1/root"
    for name, root in (("m1", m1), ("n1", n1)):
        hosts = (root / "etc/hosts").read_text().splitlines()
        assert f"{VIP} master.k8s.io" in hosts
        assert {"192.0.2.11 m1", "192.0.2.21 n1"} <= set(hosts)
        assert (root / "etc/hostname").read_text() == f"{name}\n"
        modules = (root / "etc/modules-load.d/hakube.conf").read_text().split("\n")
        assert {"br_netfilter", "overlay"} <= set(modules)
        sysctl = (root / "etc/sysctl.d/90-hakube.conf").read_text()
        for key in (
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
            "net.ipv4.ip_forward",
        ):
            assert f"{key} = 1\n" in sysctl
        limits = (root / "etc/security/limits.d/90-hakube.conf").read_text()
        assert "* soft nofile" in " ".join(limits.split())
    assert fstab.read_text().splitlines() == [
        "UUID=abc / ext4 defaults 0 1",
        "# /swapfile none swap sw 0 0  # swap off for hakube",
    ]
    containerd = (n1 / "etc/containerd/config.toml").read_text()
    assert 'bin_dir = "/usr/lib/cni"' in containerd
    assert 'runtime_type = "io.containerd.runc.v2"' in containerd
    assert not (m1 / "etc/containerd").exists()

    # The same again, and --check: nothing to change.
    for args in ((), ("--check",)):
        again = lab.play(inventory, *args)
        assert again.returncode == 0, again.stdout[-4000:]
        assert {h: c["changed"] for h, c in recap(again.stdout).items()} == {"m1": 0, "n1": 0}


def refused(lab: Lab, tag: str, expected: str, **overrides: dict[str, object]) -> None:
    """prepare.yml with ``overrides`` fails with ``expected`` in its message, for every host
    stopping before anything was written."""
    proc = lab.play(lab.inventory(tag, **overrides))
    assert proc.returncode != 0, proc.stdout[-3000:]
    message = failure_line(proc.stdout)
    assert expected in message, proc.stdout[-3000:]
    for name in HOSTS:
        assert written(lab.root / tag / name / "root") == [], name
    counts = recap(proc.stdout)
    assert all(c["changed"] == 0 for c in counts.values()), counts


def test_preflight_refuses_a_host_with_swap_on(lab: Lab) -> None:
    swaps = lab.root / "swap-n1-swaps"
    swaps.write_text(NO_SWAP + "/dev/sdz9  partition\t1048572\t0\t-2\n")
    refused(
        lab,
        "swap",
        "n1 has swap on (/dev/sdz9) and this play will not turn it off",
        n1={"hakube_preflight_swaps_file": str(swaps)},
    )


def test_preflight_refuses_a_port_in_use(lab: Lab) -> None:
    code = (
        "import socket,time\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('0.0.0.0', 7000)); s.listen(); print('listening', flush=True); time.sleep(600)\n"
    )
    log = lab.root / "squatter.log"
    squatter = lab.hosts["m1"].spawn([sys.executable, "-I", "-c", code], log=log)
    try:
        wait_for(
            lambda: log.exists() and "listening" in log.read_text(), 30, "the squatter listening"
        )
        refused(lab, "port", f"m1: in use: port 7000 by pid {squatter.pid}")
    finally:
        squatter.kill()
        squatter.wait(timeout=10)


def test_preflight_refuses_another_os(lab: Lab) -> None:
    release = lab.root / "os-release-ubuntu"
    release.write_text('PRETTY_NAME="Ubuntu 22.04.4 LTS"\nID=ubuntu\nVERSION_ID="22.04"\n')
    refused(
        lab,
        "os",
        "m1 runs Ubuntu 22.04.4 LTS: the hakube playbook supports Debian 12 only",
        m1={"hakube_preflight_os_release_file": str(release)},
    )


def test_preflight_refuses_too_little_memory(lab: Lab) -> None:
    refused(
        lab,
        "memory",
        "MB of memory, less than hakube_preflight_min_memory_mb (100000000)",
        n1={"hakube_preflight_min_memory_mb": 100_000_000},
    )


def test_a_host_whose_key_does_not_match_is_not_connected_to(lab: Lab, tmp_path: Path) -> None:
    # A fresh control directory: no multiplexed connection from earlier runs to reuse.
    other = Path(tempfile.mkdtemp(prefix="hks", dir="/tmp"))
    known = lab.ssh.known_hosts.read_text()
    try:
        forged = SshLab.__new__(SshLab)
        forged.__dict__.update(lab.ssh.__dict__)
        forged.known_hosts = tmp_path / "known_hosts"
        wrong = tmp_path / "wrong"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True
        )
        key = " ".join(wrong.with_suffix(".pub").read_text().split()[:2])
        forged.known_hosts.write_text(
            "".join(
                f"{line.split()[0]} {key}\n" if line.startswith("192.0.2.11 ") else line + "\n"
                for line in known.splitlines()
            )
        )
        proc = run_playbook(forged, other, lab.root, lab.inventory("forged"), "prepare.yml")
        assert proc.returncode != 0
        assert "Host key verification failed" in proc.stdout + proc.stderr, proc.stdout[-3000:]
        assert written(lab.root / "forged/m1/root") == []
    finally:
        shutil.rmtree(other, ignore_errors=True)
