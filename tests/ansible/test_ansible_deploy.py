"""ansible/site.yml deploys a real three-master cluster behind a keepalived VIP, and a node,
over real SSH.

Each Ansible "host" is a network namespace of the test's own running Debian's sshd (its own
host key, the test's authorised key; tests/ansible/sshlab.py): three masters on 192.0.2.11-13,
each with its keepalived guarding 192.0.2.100, and a node agent (simulated runtime) on
192.0.2.21. ansible-playbook runs in a control namespace and connects as root with the test's
key, verifying host keys against the known_hosts the test wrote. The hosts share this machine's
file system, so each has its own directories (hakube_root for the host preparation's files,
hakube_host_live off: nothing of this machine's kernel, swap or hostname is touched) and the
playbook's process mode runs the services, which start in the host's namespace because the
SSH session does. A client in a further namespace talks only to what the playbook wrote: the
VIP, or one master at a time. The wheel is built before the run (the control namespace has no
way out to a package index) and given as hakube_package.

What it proves: the preflight and the host preparation run first (hosts entries for the VIP's
name on every host); the playbook installs hakube from the wheel, creates the
cluster PKI on the first master and gives each master only the CA and its own certificate (which
names the VIP), keys 0600 in 0700 directories, and the client the admin's credentials; the
masters form one cluster with a leader that hakubectl reaches over TLS, keepalived accepted the
rendered configuration and exactly one master holds the VIP, a write through one master is read
from another, the node joined with a bootstrap token and is Ready, a second run changes nothing
(no certificate or token made again), --check changes nothing either, and after kill -9 of the
master holding the VIP, writes through the VIP succeed again. A non-loopback metrics address is
refused unless asked for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakube.pki import certs
from hakube.testing import containerd as ctdmod
from hakube.testing.netnodes import NET_IMAGE, net_image
from hakube.testing.netns import Host, Network
from hakube.testing.wait import wait_for
from tests.ansible.sshlab import SshLab
from tests.ansible.sshlab import unavailable_reason as ssh_unavailable
from tests.ansible.tools import (
    MODULE_PYTHON,
    hakube_wheel,
    recap,
    run_playbook,
    task_time_summary,
)
from tests.conftest import require

# Each test runs playbooks over SSH against up to six netns hosts: minutes each on a 2-core
# machine, and a first deployment took 13 min while a dozen other suites ran (load 18), so the
# bound per test is generous.
pytestmark = [pytest.mark.netns, pytest.mark.timeout(1800)]

VIP = "192.0.2.100"
MASTERS = {"m1": "192.0.2.11", "m2": "192.0.2.12", "m3": "192.0.2.13"}
NODE = ("n1", "192.0.2.21")
# The web pod's port, and the kube-dns ClusterIP (the agent's --cluster-dns default).
WEB_PORT = 8080
CLUSTER_DNS = "10.96.0.10"
# Added and removed again by the grow/shrink test.
EXTRA_MASTERS = {"m4": "192.0.2.14", "m5": "192.0.2.15"}
API = 6443
# Where the refused runs start (the master role's first task).
FIRST_MASTER_TASK = "Describe this master to the others"
VIP_API = f"{VIP}:{API}"


@dataclass
class Deployment:
    net: Network
    lab: SshLab
    hosts: dict[str, Host]
    client: Host
    root: Path
    inventory: Path
    build_dir: Path
    control_dir: Path
    wheel: Path
    containerd: ctdmod.Containerd
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
        """site.yml from the control namespace over SSH."""
        return self.run("site.yml", *args, extra_vars=extra_vars)

    def run(
        self,
        playbook: str,
        *args: str,
        inventory: Path | None = None,
        extra_vars: dict[str, object] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``playbook`` from the control namespace over SSH, with the test's inventory or
        ``inventory``."""
        return run_playbook(
            self.lab,
            self.control_dir,
            self.root,
            inventory or self.inventory,
            playbook,
            *args,
            extra_vars=extra_vars,
            timeout=900,
        )

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


def host_vars(root: Path, host: Host, name: str) -> dict[str, object]:
    """What differs between the Ansible hosts on this one machine: directories, address."""
    base = root / name
    return {
        "ansible_user": "root",
        "ansible_python_interpreter": MODULE_PYTHON,
        "ansible_host": host.ip,
        "ansible_remote_tmp": str(base / "ansible-tmp"),
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
    the system's, and pip would fetch hakube's dependencies from the network instead.

    Without a pip of its own (ensurepip takes half a minute per venv on a loaded machine): its
    ``bin/pip``, which the role runs, is the test's pip run by the venv's Python, so it installs
    into the venv."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    pip = venv / "bin/pip"
    pip.write_text('#!/bin/sh\nexec "${0%/*}/python" -m pip "$@"\n')
    pip.chmod(0o755)
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    for site in venv.glob("lib/python*/site-packages"):
        (site / "_hakube_test_outer.pth").write_text("\n".join(sorted(ours)) + "\n")


def write_inventory(
    root: Path,
    hosts: dict[str, Host],
    wheel: Path,
    containerd: ctdmod.Containerd,
    *,
    masters: tuple[str, ...] = tuple(MASTERS),
    removed: tuple[str, ...] = (),
    name: str = "inventory.yml",
) -> Path:
    """The test's inventory: ``masters`` in the masters group, the node, and ``removed`` in a
    group of their own (reachable, but no longer masters)."""
    common = {
        "hakube_service_mode": "process",  # no systemd in the test machine's containers
        "hakube_install_os_packages": False,  # scripts/install/keepalived.sh did that
        "hakube_python": sys.executable,  # its site-packages hold hakube's dependencies
        "hakube_venv_site_packages": True,
        "hakube_link_dir": "",
        "hakube_package": str(wheel),
        "hakube_vip": f"{VIP}/24",
        "hakube_vip_interface": "eth0",
        "hakube_client_config_local": str(root / "client-config"),
        "hakube_kubeconfig_local": str(root / "kubeconfig"),
        "hakube_prometheus_dir_local": str(root / "prometheus"),
        "hakube_prometheus_scrape_interval": "1s",
        # Host preparation writes its files only (no modprobe, swapoff, sysctl, hostname).
        "hakube_host_live": False,
    }
    node_name, _ = NODE
    inventory = {
        "all": {
            "vars": common,
            "children": {
                "masters": {"hosts": {n: host_vars(root, hosts[n], n) for n in masters}},
                "masters_removed": {"hosts": {n: host_vars(root, hosts[n], n) for n in removed}},
                "nodes": {
                    "hosts": {
                        node_name: {
                            **host_vars(root, hosts[node_name], node_name),
                            # The node's own containerd, which the test started in its
                            # namespace: its socket and CNI directory instead of the paths
                            # of a real host's.
                            "hakube_agent_cri_endpoint": containerd.endpoint,
                            "hakube_agent_settings": {
                                "node-ip": hosts[node_name].ip,
                                "cni-conf-dir": str(containerd.cni_conf_dir),
                            },
                            # The SSH session's mount namespace (ip netns exec makes one) is
                            # not containerd's: the agent starts in the test's, so the mounts
                            # it makes for pods are those containerd sees, as on a real host.
                            "hakube_exec_prefix": f"nsenter --mount=/proc/{os.getpid()}/ns/mnt --",
                        }
                    }
                },
            },
        }
    }
    path = root / name
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


def check_container_on_the_node(dep: Deployment) -> str:
    """A Deployment runs a real container on the node the playbook set up: its pod Running
    with an address from the node's pod network, its log read through the masters. Returns
    the pod's name."""
    manifest = dep.root / "web.yaml"
    labels = {"app": "ansible-web"}
    container = {
        "name": "web",
        "image": NET_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        # A web server answering with the pod's name, for the Service checks that follow.
        "command": [
            "sh",
            "-c",
            "echo hello from $(hostname); mkdir /www; hostname >/www/index.html;"
            f" exec httpd -f -p {WEB_PORT} -h /www",
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "ansible-web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }
    manifest.write_text(yaml.safe_dump(deployment))
    dep.ctl("apply", "-f", str(manifest), server=VIP_API)
    pod: dict[str, Any] = {}

    def running() -> bool:
        out = dep.ctl("get", "pods", "-l", "app=ansible-web", "-o", "json", check=False)
        items = json.loads(out)["items"] if out else []
        pod.clear()
        pod.update(items[0] if items else {})
        status = pod.get("status", {})
        return status.get("phase") == "Running" and bool(status.get("podIP"))

    dep.wait(running, 120, "the Deployment's pod Running on the node")
    assert pod["spec"]["nodeName"] == NODE[0]
    assert pod["status"]["podIP"] not in (NODE[1], "127.0.0.1")
    name = pod["metadata"]["name"]
    dep.wait(
        lambda: dep.ctl("logs", name, check=False) == f"hello from {name}\n",
        30,
        f"the log of pod {name}",
    )
    return name


def dns_query(host: Host, server: str, name: str) -> list[str]:
    """The A records of ``name`` that ``server`` (port 53, UDP) answers, asked from inside
    ``host`` ([] for an empty answer; the error if nothing answered)."""
    code = (
        "import sys, dns.message, dns.query, dns.rdatatype\n"
        "q = dns.message.make_query(sys.argv[2], 'A')\n"
        "r = dns.query.udp(q, sys.argv[1], timeout=2)\n"
        "print(' '.join(sorted(a.address for s in r.answer for a in s"
        " if s.rdtype == dns.rdatatype.A)))\n"
    )
    done = host.run([sys.executable, "-I", "-c", code, server, name], timeout=30, check=False)
    assert done.returncode == 0, f"DNS query {name} @{server}: {done.stderr.strip()[-500:]}"
    return done.stdout.split()


def check_proxy_and_dns_on_the_node(dep: Deployment, pod: str) -> None:
    """The node's service proxy and cluster DNS, as the playbook deployed them: each with its
    own identity (its credentials only on the node, and no right to write); the proxy's nft
    table on the node; a ClusterIP Service in front of the web pod answers through it, from
    the node and from the pod itself by name (the pod's resolv.conf names 10.96.0.10, which
    the proxy sends to the node's DNS instance); and that instance answers for the Services."""
    node = dep.hosts[NODE[0]]
    etc = dep.dirs(NODE[0]) / "etc"
    staging = dep.dirs("m1") / "etc/cluster-pki"
    for user, cn in (("proxy", "system:kube-proxy"), ("dns", "system:hakube-dns")):
        assert_private(etc / user)
        assert {p.name for p in (etc / user).iterdir()} == {
            "ca.crt",
            f"{user}.crt",
            f"{user}.key",
            "config",
        }
        assert (etc / user / f"{user}.key").read_bytes() == (
            staging / f"users/{user}.key"
        ).read_bytes()
        cert = certs.load_cert((etc / user / f"{user}.crt").read_bytes())
        assert certs.identity_of(cert).user == cn
        # Least privilege: its credentials cannot write (RBAC answers PERMISSION_DENIED).
        denied = dep.client.run(
            [str(dep.dirs("m1") / "venv/bin/hakubectl"), "--config", str(etc / user / "config")]
            + ["apply", "-f", str(dep.manifest(f"by-{user}"))],
            timeout=60,
            check=False,
        )
        assert denied.returncode != 0 and f'user "{cn}" cannot' in denied.stderr, denied.stderr
    proxy_yaml = yaml.safe_load((etc / "proxy.yaml").read_text())
    assert proxy_yaml["cluster-cidr"] == "10.244.0.0/16" and proxy_yaml["servers"] == VIP_API
    for name in MASTERS:  # the controllers cut the same range into podCIDRs
        master_yaml = yaml.safe_load((dep.dirs(name) / "etc/master.yaml").read_text())
        assert master_yaml["cluster-cidr"] == proxy_yaml["cluster-cidr"]
    assert not list(etc.glob("*/admin.key")) and not list(etc.glob("**/ca.key"))

    # The proxy's table in the node's kernel.
    dep.wait(
        lambda: (
            node.run(["nft", "list", "table", "ip", "hakube-proxy"], check=False).returncode == 0
        ),
        60,
        "the proxy's nft table on the node",
    )
    # A Service in front of the web pod; its Endpoints from the masters' controllers.
    service = dep.root / "web-service.yaml"
    service.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "ansible-web"},
                "spec": {
                    "selector": {"app": "ansible-web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": WEB_PORT}],
                },
            }
        )
    )
    dep.ctl("apply", "-f", str(service))
    got: dict[str, Any] = {}

    def allocated() -> bool:  # by the masters' ClusterIP allocator
        out = dep.ctl("get", "service", "ansible-web", "-o", "json", check=False)
        got.update(json.loads(out)["spec"] if out else {})
        return bool(got.get("clusterIP"))

    dep.wait(allocated, 30, "a ClusterIP for the web Service")
    cluster_ip = got["clusterIP"]
    # The node reaches ClusterIPs by its default route (a real host has one; this namespace
    # has none): the proxy's DNAT in nat-output picks the endpoint after that route lookup.
    node.run(["ip", "route", "add", "10.96.0.0/12", "dev", "eth0"])
    url = f"http://{cluster_ip}/"
    dep.wait(
        lambda: node.fetch(url, timeout=2) == (200, f"{pod}\n"),
        60,
        f"the web pod through ClusterIP {cluster_ip} from the node",
    )

    # The cluster DNS behind 10.96.0.10: the kube-dns Service names the node's instance...
    eps = json.loads(dep.ctl("get", "endpoints", "kube-dns", "-n", "kube-system", "-o", "json"))
    assert [a["ip"] for s in eps["subsets"] for a in s["addresses"]] == [NODE[1]]
    # ... which answers there and, through the proxy, at the ClusterIP.
    assert dns_query(node, NODE[1], "kube-dns.kube-system.svc.cluster.local") == [CLUSTER_DNS]
    for server in (NODE[1], CLUSTER_DNS):
        assert dns_query(node, server, "ansible-web.default.svc.cluster.local") == [cluster_ip]
    # The pod itself, by the Service's short name: its resolv.conf, the DNS through the
    # ClusterIP, then the Service's ClusterIP back to itself (hairpin).
    dep.wait(
        lambda: (
            dep.ctl("exec", pod, "--", "wget", "-qO-", "http://ansible-web/", check=False)
            == f"{pod}\n"
        ),
        60,
        "the web Service by name from inside the pod",
    )


def check_kubeconfig(dep: Deployment) -> None:
    """The kubeconfig the playbook wrote (on each master, and on the controller) names the VIP
    and the admin's credentials: real kubectl lists the nodes through it."""
    local = dep.root / "kubeconfig"
    assert local.stat().st_mode & 0o777 == 0o600
    for name in MASTERS:
        on_master = dep.dirs(name) / "etc/kubeconfig"
        assert on_master.stat().st_mode & 0o777 == 0o600
        assert on_master.read_bytes() == local.read_bytes(), name
    config = yaml.safe_load(local.read_text())
    assert config["clusters"][0]["cluster"]["server"] == f"https://{VIP}:{API + 1}"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        require("kubectl is not installed (scripts/install/kubectl.sh)")
    assert kubectl is not None
    done = dep.client.run(
        [kubectl, "--kubeconfig", str(local), "get", "nodes", "-o", "name"], timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"node/{NODE[0]}\n"), done.stderr


def check_prometheus(dep: Deployment) -> None:
    """The scrape configuration the playbook rendered lists every master and the node over
    HTTPS with the scraper's certificate; promtool accepts it, and a real Prometheus scraping
    the cluster with it gets up == 1 for every target."""
    prom_dir = dep.root / "prometheus"
    assert prom_dir.stat().st_mode & 0o777 == 0o700
    assert (prom_dir / "prometheus.key").stat().st_mode & 0o777 == 0o600
    config = yaml.safe_load((prom_dir / "prometheus.yml").read_text())
    targets = {
        (job["job_name"], t, sc["labels"]["name"])
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
    }
    assert targets == {
        *(("hakube-master", f"{a}:9101", n) for n, a in MASTERS.items()),
        ("hakube-agent", f"{NODE[1]}:9102", NODE[0]),
    }
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            require(f"{tool} is not installed (scripts/install/prometheus.sh)")
    checked = subprocess.run(
        ["promtool", "check", "config", str(prom_dir / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Prometheus in the client's namespace: it reaches the masters and the node as a monitoring
    # host would, and listens on that namespace's loopback only.
    argv = [
        "prometheus",
        f"--config.file={prom_dir / 'prometheus.yml'}",
        f"--storage.tsdb.path={dep.root / 'prometheus-data'}",
        "--web.listen-address=127.0.0.1:9090",
        "--log.level=warn",
    ]
    proc = dep.client.spawn(argv, log=dep.root / "prometheus.log")
    up: dict[str, float] = {}

    def all_up() -> bool:
        url = "http://127.0.0.1:9090/api/v1/query?query=up"
        status, body = dep.client.fetch(url, timeout=5)
        results = json.loads(body)["data"]["result"] if status == 200 else []
        up.clear()
        up.update({r["metric"]["name"]: float(r["value"][1]) for r in results})
        return len(up) == len(targets) and all(v == 1 for v in up.values())

    try:
        wait_for(all_up, 60, "every target up in Prometheus", interval=1)
    except TimeoutError:
        log = (dep.root / "prometheus.log").read_text()[-2000:]
        raise AssertionError(f"up: {up}; prometheus log: {log}") from None
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def deployment(
    deploy_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One deployment for the module's tests, in order: the deploy test leaves three masters
    (one killed) and the node; the grow/shrink test starts by running the playbook again."""
    require(ssh_unavailable())
    missing = ctdmod.missing_prerequisites()
    require("; ".join(missing) if missing else None)
    tmp_path = tmp_path_factory.mktemp("deploy")
    # The wheel the playbook installs, built as the role would build it on a controller with
    # access to a package index (pip fetches the build backend); reused while the tree is the same.
    wheel = hakube_wheel()
    build_dir = wheel.parent
    # ssh's multiplexing sockets: a short path (a unix socket's is at most 107 bytes).
    control_dir = Path(tempfile.mkdtemp(prefix="hks", dir="/tmp"))
    try:
        with Network() as net:
            lab = SshLab(net)
            every = [*MASTERS.items(), *EXTRA_MASTERS.items(), NODE]
            hosts = {n: lab.add_host(n, f"{a}/24") for n, a in every}
            client = net.add_host("c1", "192.0.2.50/24")
            # The network's workdir is world-traversable: keepalived's check runs as nobody.
            root = net.workdir
            # The node has a venv of its own too: the upgrade test restarts what it upgrades.
            for name in [*MASTERS, *EXTRA_MASTERS, NODE[0]]:
                make_venv_seeing_our_packages(root / name / "venv")
            # The node's container runtime: a containerd of its own in its namespace, with the
            # test images (the hosts have no registry to pull from).
            ctd = ctdmod.Containerd(
                ctdmod.ContainerdSettings(base_dir=root / "n1-containerd", netns=hosts["n1"].netns)
            )
            inventory = write_inventory(root, hosts, wheel, ctd)
            dep = Deployment(
                net, lab, hosts, client, root, inventory, build_dir, control_dir, wheel, ctd
            )
            try:
                ctd.start()
                ctd.load_test_images()
                ctd.import_image(net_image())  # httpd, wget, nslookup for the Service checks
                yield dep
            finally:
                # Everything the playbook started, by the pids its control scripts recorded;
                # then Network.close() kills whatever is left in the namespaces (the sshds and
                # ssh's multiplexing masters too) and removes the workdir.
                for pidfile in root.glob("*/run/*.pid"):
                    try:
                        os.kill(int(pidfile.read_text()), signal.SIGKILL)
                    except (ValueError, ProcessLookupError):
                        pass
                for log in [*root.glob("*/log/*.log"), root / "playbook.log"]:
                    if log.exists():
                        shutil.copy(log, tmp_path / f"{log.parent.parent.name}-{log.name}")
                ctd.stop()
                summary = task_time_summary(root)
                (tmp_path / "task-times.txt").write_text(summary + "\n")
                print(f"\nwhere the playbooks' time went:\n{summary}")
    finally:
        shutil.rmtree(control_dir, ignore_errors=True)


def test_playbook_deploys_three_masters_behind_a_vip(deployment: Deployment) -> None:
    dep = deployment
    # Peers come from the whole group: a run on some masters only is refused before anything
    # of the master is written. (The refusals start at the master role's first task: the host
    # preparation and the install before it are the first run's, below.)
    partial = dep.try_play("--limit", "m1", "--start-at-task", FIRST_MASTER_TASK)
    assert partial.returncode != 0 and "run the play on all its hosts" in partial.stdout
    assert not (dep.dirs("m1") / "etc/master.yaml").exists()
    assert not (dep.dirs("m1") / "run/hakube-master.pid").exists()

    # Metrics are plain HTTP: a non-loopback metrics host without the variable that accepts
    # that is refused before anything of the master is written.
    exposed = dep.try_play("--start-at-task", FIRST_MASTER_TASK, hakube_metrics_host="0.0.0.0")
    assert exposed.returncode != 0, exposed.stdout[-3000:]
    assert "Set hakube_metrics_allow_unauthenticated: true" in " ".join(exposed.stdout.split())
    assert not any((dep.dirs(n) / "etc/master.yaml").exists() for n in MASTERS)

    started = time.monotonic()
    dep.play()
    first_run = time.monotonic() - started
    check_pki(dep)
    pki_files = snapshot(dep.dirs("m1") / "etc/cluster-pki")
    # The host preparation ran first, on every host (tests/ansible/test_ansible_ssh_prepare.py
    # checks the rest of it).
    for name in [*MASTERS, NODE[0]]:
        hosts_file = (dep.dirs(name) / "root/etc/hosts").read_text().splitlines()
        assert f"{VIP} master.k8s.io" in hosts_file and f"{NODE[1]} {NODE[0]}" in hosts_file
    assert (dep.dirs(NODE[0]) / "root/etc/containerd/config.toml").exists()

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
    pod = check_container_on_the_node(dep)
    check_proxy_and_dns_on_the_node(dep, pod)
    check_kubeconfig(dep)
    check_prometheus(dep)

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
    # --check on the deployed cluster: nothing would change.
    checked = dep.play("--check")
    changed = {host: counts["changed"] for host, counts in recap(checked.stdout).items()}
    assert changed == {name: 0 for name in [*MASTERS, NODE[0]]}, checked.stdout[-3000:]

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
        f"write via the VIP {write_again:.1f} s after kill -9 of {holder}"
    )


class Writer:
    """A client writing ConfigMaps through the VIP, one after the other, in a thread; it keeps
    the names whose write was acknowledged (hakubectl exit 0)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.acked: list[str] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vip-writer", daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            name = f"w-{i}"
            argv = [str(self.dep.dirs("m1") / "venv/bin/hakubectl")]
            argv += ["--config", str(self.dep.root / "client-config"), "--server", VIP_API]
            argv += ["--timeout", "10", "apply", "-f", str(self.dep.manifest(name))]
            done = self.dep.client.run(argv, timeout=60, check=False)
            if done.returncode == 0:
                self.acked.append(name)
            else:
                self.failed += 1
            i += 1

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)


def test_masters_grow_to_five_and_back_to_three_through_the_playbooks(
    deployment: Deployment,
) -> None:
    dep = deployment
    five = (*MASTERS, *EXTRA_MASTERS)

    def status() -> dict[str, Any]:
        out = dep.ctl("cluster", "status", "-o", "json", check=False)
        return json.loads(out) if out else {}

    def healthy_with(names: tuple[str, ...]) -> bool:
        report = status()
        ready = {m["name"] for m in report.get("masters", []) if m["reachable"] and m["ready"]}
        return bool(report.get("healthy")) and ready == set(names)

    def unicast_peers(name: str) -> set[str]:
        conf = (dep.dirs(name) / "keepalived/keepalived.conf").read_text()
        block = conf.split("unicast_peer", 1)[1].split("}", 1)[0]
        return set(block.replace("{", " ").split())

    # The deploy test killed a master; the grow run (site.yml inside) starts it again first.
    # The grow changes every master's settings (its peers; and here also a master setting and
    # the VRRP advert interval): the running masters restart one at a time (each ready before
    # the next goes), and their changed keepalived.conf is reloaded, not restarted.
    masters_before = {n: dep.pid(n) for n in MASTERS}
    keepalived_before = {n: dep.pid(n, "hakube-keepalived") for n in MASTERS}
    changes = {"hakube_master_settings": {"history-size": 30000}, "hakube_vip_advert_int": 0.2}
    started = time.monotonic()
    with Writer(dep) as writer:
        # Grow 3 -> 5 through master-add.yml.
        inventory5 = write_inventory(
            dep.root, dep.hosts, dep.wheel, dep.containerd, masters=five, name="inv5.yml"
        )
        grown = dep.run(
            "master-add.yml", inventory=inventory5, extra_vars={"hakube_add": "m4,m5", **changes}
        )
        assert grown.returncode == 0, grown.stdout[-6000:]
        grow_s = time.monotonic() - started
        dep.wait(lambda: healthy_with(five), 90, "five healthy masters")
        assert all(dep.pid(n) != pid for n, pid in masters_before.items())
        assert {n: dep.pid(n, "hakube-keepalived") for n in MASTERS} == keepalived_before
        for name in five:
            assert "history-size: 30000" in (dep.dirs(name) / "etc/master.yaml").read_text()
            assert "advert_int 0.2" in (dep.dirs(name) / "keepalived/keepalived.conf").read_text()
        assert unicast_peers("m1") == {
            a for n, a in {**MASTERS, **EXTRA_MASTERS}.items() if n != "m1"
        }
        assert unicast_peers("m5") == {
            a for n, a in {**MASTERS, **EXTRA_MASTERS}.items() if n != "m5"
        }
        acked_after_grow = len(writer.acked)

        # Shrink 5 -> 3 through master-remove.yml, m4 and m5 moved out of the masters group.
        inventory3 = write_inventory(
            dep.root,
            dep.hosts,
            dep.wheel,
            dep.containerd,
            removed=tuple(EXTRA_MASTERS),
            name="inv3.yml",
        )
        started = time.monotonic()
        shrunk = dep.run(
            "master-remove.yml", inventory=inventory3, extra_vars={"hakube_remove": "m4,m5"}
        )
        assert shrunk.returncode == 0, shrunk.stdout[-6000:]
        shrink_s = time.monotonic() - started
        dep.wait(lambda: healthy_with(tuple(MASTERS)), 90, "three healthy masters again")
        # A few writes after the shrink, through the VIP on one of the three.
        count = len(writer.acked)
        dep.wait(lambda: len(writer.acked) >= count + 3, 60, "writes after the shrink")
    assert unicast_peers("m1") == {MASTERS["m2"], MASTERS["m3"]}
    for name in EXTRA_MASTERS:
        assert not (dep.dirs(name) / "run/hakube-master.pid").exists(), name
        assert not (dep.dirs(name) / "run/hakube-keepalived.pid").exists(), name
    wait_for(lambda: len(dep.vip_holders()) == 1, 30, "one VIP holder", interval=0.1)

    # No acknowledged write lost.
    listed = json.loads(dep.ctl("get", "configmaps", "-o", "json"))
    present = {item["metadata"]["name"] for item in listed["items"]}
    missing = [n for n in writer.acked if n not in present]
    assert not missing, f"acknowledged but lost: {missing}"
    assert acked_after_grow > 0
    print(
        f"\ngrow 3->5 {grow_s:.1f} s, shrink 5->3 {shrink_s:.1f} s; "
        f"{len(writer.acked)} writes acknowledged through the VIP, {writer.failed} refused"
    )


def test_snapshot_playbook_copies_a_verified_snapshot_to_the_controller(
    deployment: Deployment, tmp_path: Path
) -> None:
    dep = deployment
    dep.ctl("apply", "-f", str(dep.manifest("before-snapshot")), server=VIP_API)
    local = tmp_path / "backups"
    done = dep.run(
        "snapshot.yml",
        extra_vars={
            "hakube_snapshot_local_dir": str(local),
            "hakube_snapshot_dir": str(dep.dirs("m1") / "backups"),
        },
    )
    assert done.returncode == 0, done.stdout[-4000:]
    (snap,) = local.glob("hakube-*.snap")
    inspect = subprocess.run(
        [str(dep.dirs("m1") / "venv/bin/hakube"), "snapshot", "inspect", str(snap), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    meta = json.loads(inspect.stdout)
    assert meta["objects_total"] > 0 and {m["name"] for m in meta["members"]} == set(MASTERS)
    assert (dep.dirs("m1") / "backups").stat().st_mode & 0o777 == 0o700


def build_bumped_wheel(wheel: Path, out: Path, version: str) -> Path:
    """``wheel`` with ``version`` instead of its own: the same files, the version changed where
    a wheel and hakube keep it (the dist-info directory, METADATA, ``hakube.__version__``),
    and RECORD's hashes made again -- what a rebuild of the bumped tree would give, in a
    second instead of a ``pip wheel`` run."""
    with zipfile.ZipFile(wheel) as src:
        old = next(n.split("/")[0] for n in src.namelist() if n.endswith(".dist-info/METADATA"))
        old_version = old.removeprefix("hakube-").removesuffix(".dist-info")
        files: dict[str, bytes] = {}
        for info in src.infolist():
            data = src.read(info)
            name = info.filename.replace(old, f"hakube-{version}.dist-info", 1)
            if name.endswith(".dist-info/METADATA"):
                data = data.replace(
                    f"\nVersion: {old_version}\n".encode(), f"\nVersion: {version}\n".encode(), 1
                )
            elif name == "hakube/__init__.py":
                data = data.replace(
                    f'__version__ = "{old_version}"'.encode(),
                    f'__version__ = "{version}"'.encode(),
                    1,
                )
            files[name] = data
    record_name = f"hakube-{version}.dist-info/RECORD"
    record = []
    for name, data in files.items():
        if name == record_name:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    files[record_name] = ("\n".join([*record, f"{record_name},,"]) + "\n").encode()
    bumped = out / wheel.name.replace(f"-{old_version}-", f"-{version}-")
    with zipfile.ZipFile(bumped, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in files.items():
            dst.writestr(name, data)
    return bumped


def installed_version(dep: Deployment, venv_of: str) -> str:
    code = "import importlib.metadata as m; print(m.version('hakube'))"
    done = subprocess.run(
        [str(dep.dirs(venv_of) / "venv/bin/python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_rolling_upgrade_through_the_playbook_keeps_every_acknowledged_write(
    deployment: Deployment, tmp_path: Path
) -> None:
    dep = deployment
    wheel = build_bumped_wheel(dep.wheel, tmp_path, "0.1.1")
    before = {n: dep.pid(n) for n in MASTERS}
    node_before = dep.pid("n1", "hakube-agent")
    started = time.monotonic()
    with Writer(dep) as writer:
        done = dep.run("upgrade.yml", extra_vars={"hakube_package": str(wheel)})
        assert done.returncode == 0, done.stdout[-6000:]
        upgrade_s = time.monotonic() - started
        count = len(writer.acked)
        dep.wait(lambda: len(writer.acked) >= count + 3, 60, "writes after the upgrade")
    # One master at a time (serial: 1), the node last; every one restarted on 0.1.1.
    plays = re.findall(r"^PLAY \[(.+?)\]", done.stdout, re.MULTILINE)
    assert plays == ["Upgrade the masters, one at a time"] * 3 + [
        "Upgrade the nodes, one at a time"
    ]
    for name in MASTERS:
        assert installed_version(dep, name) == "0.1.1", name
        assert dep.pid(name) != before[name], name
    assert dep.pid("n1", "hakube-agent") != node_before
    listed = json.loads(dep.ctl("get", "configmaps", "-o", "json"))
    present = {item["metadata"]["name"] for item in listed["items"]}
    missing = [n for n in writer.acked if n not in present]
    assert not missing, f"acknowledged but lost: {missing}"
    print(
        f"\nrolling upgrade {upgrade_s:.1f} s; {len(writer.acked)} writes acknowledged through "
        f"the VIP, {writer.failed} refused"
    )
