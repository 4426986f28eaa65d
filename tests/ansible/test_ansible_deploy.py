"""ansible/site.yml deploys a real three-master cluster behind a keepalived VIP, and a node.

Each Ansible "host" is this machine (``ansible_connection=local``) with its own directories, and
the playbook's process mode runs its services inside a network namespace of the test's own
(``hakube_exec_prefix: ip netns exec NS``): three masters on 192.0.2.11-13, each with its
keepalived guarding 192.0.2.100, and a node agent (simulated runtime) on 192.0.2.21. A client in
a fifth namespace talks only to what the playbook wrote: the VIP, or one master at a time.

What it proves: the playbook installs hakube from a wheel it builds from this tree, creates the
cluster PKI on the first master and gives each master only the CA and its own certificate (which
names the VIP), keys 0600 in 0700 directories, and the client the admin's credentials; the
masters form one cluster with a leader that hakubectl reaches over TLS, keepalived accepted the
rendered configuration and exactly one master holds the VIP, a write through one master is read
from another, the node joined with a bootstrap token and is Ready, a second run changes nothing
(no certificate or token made again), and after kill -9 of the master holding the VIP, writes
through the VIP succeed again. A non-loopback metrics address is refused unless asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakube.pki import certs
from hakube.testing.netns import Host, Network
from hakube.testing.wait import wait_for
from tests.ansible.tools import ansible_tool

# Builds a wheel, runs the playbook three times over five netns hosts: minutes on a busy
# 2-core machine (7 min seen while other suites ran), so the bound is generous.
pytestmark = [pytest.mark.netns, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK_DIR = REPO / "ansible"
VIP = "192.0.2.100"
MASTERS = {"m1": "192.0.2.11", "m2": "192.0.2.12", "m3": "192.0.2.13"}
NODE = ("n1", "192.0.2.21")
API = 6443
VIP_API = f"{VIP}:{API}"
# Ansible's modules need only the standard library. Debian's python3 starts several times faster
# than a Python whose site-packages hold the dev tools, and every task of every host starts one.
MODULE_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


@dataclass
class Deployment:
    net: Network
    hosts: dict[str, Host]
    client: Host
    root: Path
    inventory: Path
    build_dir: Path
    last_ctl: str = ""

    def wait(self, cond: Callable[[], object], timeout: float, what: str) -> None:
        """wait_for ``cond``; a timeout also tells what the last hakubectl said."""
        try:
            wait_for(cond, timeout, what, interval=0.5)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (last: {self.last_ctl})") from None

    def dirs(self, name: str) -> Path:
        return self.root / name

    def play(self, *args: str, **extra_vars: object) -> subprocess.CompletedProcess[str]:
        """Run the playbook with ``args``; fails the test with its output if it fails."""
        proc = self.try_play(*args, **extra_vars)
        assert proc.returncode == 0, f"ansible-playbook failed:\n{proc.stdout[-6000:]}{proc.stderr}"
        return proc

    def try_play(self, *args: str, **extra_vars: object) -> subprocess.CompletedProcess[str]:
        env = ansible_env(self.root)
        playbook = ansible_tool("ansible-playbook") or "ansible-playbook"
        argv = [playbook, "-i", str(self.inventory), str(PLAYBOOK_DIR / "site.yml")]
        argv += args
        proc = subprocess.run(
            argv + (["-e", json.dumps(extra_vars)] if extra_vars else []),
            cwd=PLAYBOOK_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        with (self.root / "playbook.log").open("a") as log:
            log.write(proc.stdout + proc.stderr)
        return proc

    def ctl(self, *args: str, server: str = "", check: bool = True) -> str:
        """hakubectl as the playbook installed it, run from the client namespace, with the
        client config the playbook wrote on the controller (the VIP and every master, the
        admin's credentials); ``server`` instead of its servers if given. Returns its output;
        "" when it failed and ``check`` is off."""
        target = ["--config", str(self.root / "client-config")]
        target += ["--server", server] if server else []
        argv = [str(self.dirs("m1") / "venv/bin/hakubectl"), *target, *args]
        res = self.client.run(argv, timeout=60, check=False)
        self.last_ctl = f"hakubectl {' '.join(args)}: exit {res.returncode}: {res.stderr.strip()}"
        if check:
            assert res.returncode == 0, f"hakubectl {' '.join(args)}: {res.stderr}"
        return res.stdout if res.returncode == 0 else ""

    def manifest(self, name: str) -> Path:
        """A ConfigMap manifest named ``name`` (data by=name), readable from every namespace."""
        path = self.root / f"{name}.yaml"
        cm = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name},
            "data": {"by": name},
        }
        path.write_text(yaml.safe_dump(cm))
        return path

    def pid(self, name: str, service: str = "hakube-master") -> int:
        return int((self.dirs(name) / f"run/{service}.pid").read_text())

    def vip_holders(self) -> list[str]:
        return [n for n in MASTERS if self.hosts[n].has_address(VIP)]


def ansible_env(workdir: Path) -> dict[str, str]:
    """Ansible's environment for a test: this tree's ansible.cfg, its state kept in
    ``workdir``, nothing inherited that would change what hakube or Ansible do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAKUBE_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_CONFIG=str(PLAYBOOK_DIR / "ansible.cfg"),
        ANSIBLE_HOME=str(workdir / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(workdir / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    return env


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {"m1": {"ok": 20, "changed": 0, ...}}."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", output, re.MULTILINE):
        found[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
    return found


def host_vars(root: Path, host: Host, name: str) -> dict[str, object]:
    """What differs between the Ansible hosts on this one machine: directories, address, netns."""
    base = root / name
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": MODULE_PYTHON,
        "ansible_host": host.ip,
        "hakube_exec_prefix": f"ip netns exec {host.netns}",
        "hakube_venv": str(base / "venv"),
        "hakube_config_dir": str(base / "etc"),
        "hakube_data_dir": str(base / "data"),
        "hakube_run_dir": str(base / "run"),
        "hakube_log_dir": str(base / "log"),
        "hakube_keepalived_dir": str(base / "keepalived"),
        "hakube_client_config_path": str(base / "client/config"),
        # hakube_host writes this host's /etc files below its own directory.
        "hakube_root": str(base / "root"),
    }


def make_venv_seeing_our_packages(venv: Path) -> None:
    """The venv the role would make (``--system-site-packages`` from ``hakube_python``), made
    first so that it also sees the packages of the Python running the tests: when that Python
    is itself a venv (a fresh Debian's .venv, see scripts/lib/python.sh), its packages are not
    the system's, and pip would fetch hakube's dependencies from the network instead."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    for site in venv.glob("lib/python*/site-packages"):
        (site / "_hakube_test_outer.pth").write_text("\n".join(sorted(ours)) + "\n")


def write_inventory(root: Path, hosts: dict[str, Host], build_dir: Path) -> Path:
    common = {
        "hakube_service_mode": "process",  # no systemd in the test machine's containers
        "hakube_install_os_packages": False,  # scripts/install/keepalived.sh did that
        "hakube_python": sys.executable,  # its site-packages hold hakube's dependencies
        "hakube_venv_site_packages": True,
        "hakube_link_dir": "",
        "hakube_build_dir": str(build_dir),
        "hakube_source_dir": str(REPO),
        "hakube_vip": f"{VIP}/24",
        "hakube_vip_interface": "eth0",
        "hakube_client_config_local": str(root / "client-config"),
        "hakube_agent_runtime": "simulated",
        # Host preparation writes its files only (no modprobe, swapoff, sysctl, hostname).
        "hakube_host_live": False,
        # These hosts run in this machine's network namespace (local connection): its other
        # listeners are not theirs to refuse.
        "hakube_preflight_ports": [],
    }
    node_name, _ = NODE
    inventory = {
        "all": {
            "vars": common,
            "children": {
                "masters": {"hosts": {n: host_vars(root, hosts[n], n) for n in MASTERS}},
                "nodes": {
                    "hosts": {
                        node_name: {
                            **host_vars(root, hosts[node_name], node_name),
                            "hakube_agent_settings": {"node-ip": hosts[node_name].ip},
                            # m1's: the node's play runs after the masters', and a venv of
                            # its own would cost the test ~10 s more.
                            "hakube_venv": str(root / "m1/venv"),
                        }
                    }
                },
            },
        }
    }
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def snapshot(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every file below ``directory``: its mtime (ns) and content."""
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def assert_private(directory: Path) -> None:
    """``directory`` and every directory below it 0700, every key 0600, nothing else writable
    by others."""
    for path in [directory, *directory.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        if path.is_dir():
            assert mode == 0o700, f"{path}: {mode:o}"
        elif path.suffix == ".key":
            assert mode == 0o600, f"{path}: {mode:o}"
        else:
            assert mode & 0o022 == 0, f"{path}: {mode:o}"


def check_pki(dep: Deployment) -> None:
    """What the playbook made of the cluster PKI: the first master's staging directory holds
    all of it; each master only the CA and its own certificate and key, which names the VIP;
    the clients the admin's credentials; the node its own certificate, and no token."""
    staging = dep.dirs("m1") / "etc/cluster-pki"
    assert_private(staging)
    assert {p.name for p in (staging / "masters").iterdir()} == {
        f"{n}.{ext}" for n in MASTERS for ext in ("crt", "key")
    }
    for name, address in MASTERS.items():
        pki = dep.dirs(name) / "etc/pki"
        assert_private(pki)
        assert {p.name for p in (pki / "masters").iterdir()} == {f"{name}.crt", f"{name}.key"}
        for f in ("ca.crt", "ca.key", f"masters/{name}.crt", f"masters/{name}.key"):
            assert (pki / f).read_bytes() == (staging / f).read_bytes(), f
        cert = certs.load_cert((pki / f"masters/{name}.crt").read_bytes())
        assert {VIP, address} <= set(certs.hosts_of(cert)), certs.hosts_of(cert)
        master_yaml = yaml.safe_load((dep.dirs(name) / "etc/master.yaml").read_text())
        assert master_yaml["pki-dir"] == str(pki) and master_yaml["cert-sans"] == VIP
        assert master_yaml["metrics-listen"].startswith("127.0.0.1:")
        assert "allow-unauthenticated-metrics" not in master_yaml
    for client_pki in [dep.root / "pki", *(dep.dirs(n) / "client/pki" for n in MASTERS)]:
        assert_private(client_pki)
        assert {p.name: p.stat().st_mode & 0o777 for p in client_pki.iterdir()} == {
            "ca.crt": 0o600,
            "admin.crt": 0o600,
            "admin.key": 0o600,
        }
        assert (client_pki / "admin.key").read_bytes() == (staging / "users/admin.key").read_bytes()
    config = yaml.safe_load((dep.root / "client-config").read_text())
    creds = [config[k] for k in ("certificate-authority", "client-certificate", "client-key")]
    assert creds == ["pki/ca.crt", "pki/admin.crt", "pki/admin.key"]
    node_pki = dep.dirs(NODE[0]) / "data/agent/pki"
    assert_private(node_pki)
    assert (node_pki / "node.crt").exists()
    agent_yaml = dep.dirs(NODE[0]) / "etc/agent.yaml"
    assert agent_yaml.stat().st_mode & 0o777 == 0o600
    agent = yaml.safe_load(agent_yaml.read_text())
    assert "token" not in agent and "ca-cert-hash" not in agent
    assert agent["servers"] == VIP_API


@pytest.fixture
def deployment(deploy_prerequisites: None, tmp_path: Path) -> Iterator[Deployment]:
    with Network() as net:
        hosts = {n: net.add_host(n, f"{a}/24") for n, a in [*MASTERS.items(), NODE]}
        client = net.add_host("c1", "192.0.2.50/24")
        # The network's workdir is world-traversable: keepalived's check runs as nobody.
        root = net.workdir
        build_dir = tmp_path / "build"
        for name in MASTERS:
            make_venv_seeing_our_packages(root / name / "venv")
        dep = Deployment(
            net, hosts, client, root, write_inventory(root, hosts, build_dir), build_dir
        )
        try:
            yield dep
        finally:
            # Everything the playbook started, by the pids its control scripts recorded; then
            # Network.close() kills whatever is left in the namespaces and removes the workdir.
            for pidfile in root.glob("*/run/*.pid"):
                try:
                    os.kill(int(pidfile.read_text()), signal.SIGKILL)
                except (ValueError, ProcessLookupError):
                    pass
            for log in [*root.glob("*/log/*.log"), root / "playbook.log"]:
                if log.exists():
                    shutil.copy(log, tmp_path / f"{log.parent.parent.name}-{log.name}")


def test_playbook_deploys_three_masters_behind_a_vip(deployment: Deployment) -> None:
    dep = deployment
    # Peers come from the whole group: a run on some masters only is refused before anything
    # of the master is written (hakube itself is installed by then, which the next run reuses).
    partial = dep.try_play("--limit", "m1")
    assert partial.returncode != 0 and "run the play on all its hosts" in partial.stdout
    assert not (dep.dirs("m1") / "etc/master.yaml").exists()
    assert not (dep.dirs("m1") / "run/hakube-master.pid").exists()

    # Metrics are plain HTTP: a non-loopback metrics host without the variable that accepts
    # that is refused before anything of the master is written. (This run installs hakube on
    # the other masters, which the next run would do anyway.)
    wheel = str(next(dep.build_dir.glob("hakube-*.whl")))
    exposed = dep.try_play(hakube_metrics_host="0.0.0.0", hakube_package=wheel)
    assert exposed.returncode != 0, exposed.stdout[-3000:]
    assert "Set hakube_metrics_allow_unauthenticated: true" in " ".join(exposed.stdout.split())
    assert not any((dep.dirs(n) / "etc/master.yaml").exists() for n in MASTERS)

    started = time.monotonic()
    dep.play()
    first_run = time.monotonic() - started
    check_pki(dep)
    pki_files = snapshot(dep.dirs("m1") / "etc/cluster-pki")

    # hakubectl's config names the VIP and every master; through it, all three are one healthy
    # cluster with a leader.
    config = yaml.safe_load((dep.root / "client-config").read_text())
    assert config["servers"] == [f"{VIP}:{API}", *(f"{a}:{API}" for a in MASTERS.values())]
    assert (dep.dirs("m2") / "client/config").read_text() == (
        dep.root / "client-config"
    ).read_text()
    report: dict[str, Any] = {}

    def healthy() -> bool:
        out = dep.ctl("cluster", "status", "-o", "json", check=False)
        report.clear()
        report.update(json.loads(out) if out else {})
        return bool(report.get("healthy"))

    dep.wait(healthy, 60, "a healthy cluster")
    assert report["leader"] in MASTERS
    answered = {m["name"] for m in report["masters"] if m["reachable"] and m["ready"]}
    assert answered == set(MASTERS)  # the VIP's answer is one of them again

    # keepalived took the configuration the playbook rendered: one master holds the VIP.
    wait_for(lambda: len(dep.vip_holders()) == 1, 30, "one VIP holder", interval=0.1)

    # The client config's credentials work through the VIP.
    dep.ctl("apply", "-f", str(dep.manifest("written-via-vip")), server=VIP_API)

    # A write through one master is read from another.
    dep.ctl("apply", "-f", str(dep.manifest("written-via-m1")), server=f"{MASTERS['m1']}:{API}")
    got = json.loads(
        dep.ctl("get", "configmap", "written-via-m1", "-o", "json", server=f"{MASTERS['m3']}:{API}")
    )
    assert got["data"] == {"by": "written-via-m1"}

    # Secure by default: Secrets are encrypted at rest with one key file, the same on every
    # master (0600), and every master keeps an audit log.
    keys = [dep.dirs(n) / "etc/encryption.yaml" for n in MASTERS]
    assert len({p.read_bytes() for p in keys}) == 1
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys)
    secret = dep.root / "secret.yaml"
    secret.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: pw}\n"
        "stringData: {p: ansible-canary-value}\n"
    )
    dep.ctl("apply", "-f", str(secret))
    assert json.loads(dep.ctl("get", "secret", "pw", "-o", "json"))["data"]["p"]
    for n in MASTERS:
        journal = dep.dirs(n) / "data/master/raft.journal"
        assert b"ansible-canary-value" not in journal.read_bytes()
        assert (dep.dirs(n) / "log/audit.log").stat().st_size > 0

    # The node agent the playbook started registered its node, and it is Ready.
    def node_ready() -> bool:
        out = dep.ctl("get", "node", NODE[0], "-o", "json", check=False)
        conds = json.loads(out).get("status", {}).get("conditions", []) if out else []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    dep.wait(node_ready, 60, f"node {NODE[0]} Ready")

    # Idempotent: a second run finds everything as it should be.
    started = time.monotonic()
    second = dep.play()
    second_run = time.monotonic() - started
    changed = {host: counts["changed"] for host, counts in recap(second.stdout).items()}
    assert changed == {name: 0 for name in [*MASTERS, NODE[0]]}, second.stdout[-3000:]
    # ... the PKI included: no certificate issued or copied again, and no token made for the
    # node that has joined (that task runs for n1, so it would count there).
    assert "TASK [hakube_master : Create the cluster CA" in second.stdout
    assert snapshot(dep.dirs("m1") / "etc/cluster-pki") == pki_files

    # A changed setting restarts the masters one at a time (each ready before the next goes);
    # a changed keepalived.conf is reloaded, not restarted. Only the masters' play runs.
    masters_before = {n: dep.pid(n) for n in MASTERS}
    keepalived_before = {n: dep.pid(n, "hakube-keepalived") for n in MASTERS}
    started = time.monotonic()
    changes = {"hakube_master_settings": {"history-size": 30000}, "hakube_vip_advert_int": 0.2}
    # The wheel the second run rebuilt is the same; no need to build it a third time.
    wheel = str(next(dep.build_dir.glob("hakube-*.whl")))
    third = dep.play("--limit", "masters", **changes, hakube_package=wheel)
    third_run = time.monotonic() - started
    changed = {host: counts["changed"] for host, counts in recap(third.stdout).items()}
    assert sorted(changed) == sorted(MASTERS) and min(changed.values()) >= 3, changed
    assert all(dep.pid(n) != pid for n, pid in masters_before.items())
    assert {n: dep.pid(n, "hakube-keepalived") for n in MASTERS} == keepalived_before
    for name in MASTERS:
        assert "history-size: 30000" in (dep.dirs(name) / "etc/master.yaml").read_text()
        assert "advert_int 0.2" in (dep.dirs(name) / "keepalived/keepalived.conf").read_text()
    dep.wait(healthy, 60, "a healthy cluster after the rolling restart")
    wait_for(lambda: len(dep.vip_holders()) == 1, 30, "one VIP holder", interval=0.1)

    # kill -9 the master that holds the VIP: its keepalived gives the VIP up, another master
    # takes it, and writes through the VIP succeed again.
    holder = dep.vip_holders()[0]
    os.kill(dep.pid(holder), signal.SIGKILL)
    killed = time.monotonic()
    wait_for(
        lambda: dep.ctl(
            "apply", "-f", str(dep.manifest("after-kill")), server=VIP_API, check=False
        ),
        60,
        "a write through the VIP after the kill",
        interval=0.2,
    )
    write_again = time.monotonic() - killed
    wait_for(
        lambda: len(dep.vip_holders()) == 1 and dep.vip_holders()[0] != holder,
        30,
        "the VIP on a surviving master",
        interval=0.1,
    )
    survivor = next(n for n in MASTERS if n != holder)
    for name in ("written-via-m1", "after-kill"):
        dep.ctl("get", "configmap", name, server=f"{MASTERS[survivor]}:{API}")
    print(
        f"\nfirst run {first_run:.1f} s, second run {second_run:.1f} s (changed=0), "
        f"third run (rolling restart) {third_run:.1f} s, "
        f"write via the VIP {write_again:.1f} s after kill -9 of {holder}"
    )
