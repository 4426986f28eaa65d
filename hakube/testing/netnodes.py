"""A multi-node cluster on one machine: nodes in network namespaces, each a real node.

The layout::

    host namespace: masters (API on the bridge address), controller-manager, scheduler,
                    bridge hk<pid>x<hex> with 10.A.B.1/24
        │ veth            │ veth            │ veth
    node n1 (netns)   node n2 (netns)   node n3 (netns)    eth0 = 10.A.B.11, .12, .13
      containerd        containerd        containerd       (own root, state, socket)
      hakube agent      hakube agent      hakube agent     (joined with a bootstrap token)

Each node is what a machine would be: its own network namespace (only the network namespace:
processes keep the caller's mount namespace, so tmpfs volumes, overlay mounts and the sandbox
netns files are where every cleanup expects them), its own containerd with the CRI plugin and
the test images, its own ``hakube agent`` with its own identity (``system:node:<name>``). The
masters listen on the bridge address of the host namespace, so the agents reach them over the
bridge and the masters reach each agent's API at its node address, as on a real network; a
test in the host namespace reaches a node at its address (hostPort, NodePort).

Addresses: the bridge subnet is a random 10.A.B.0/24 (A in 200..239) that overlaps nothing
routed in the host namespace; nodes have no default route, so nothing a test does leaves the
machine. Pod networks live inside the node namespaces only.

Everything is named ``hk<pid>x<hex4>...`` (unique per run; a later run removes what a dead run
left), and :meth:`NetCluster.close` -- the context manager's exit, or a finalizer at
interpreter exit -- ends each process it started by pid, stops every containerd (removing its
sandboxes, mounts and cgroups), deletes the namespaces, the bridge, and the work directory.

Needs root, iproute2, util-linux ``nsenter``, containerd, runc and the CNI plugins;
:func:`missing_prerequisites` lists what is missing.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hakube.agent.runtime import LABEL_POD_NAME, LABEL_POD_NAMESPACE
from hakube.client import Client, NotFound
from hakube.cri.client import ExecResult
from hakube.cri.v1 import api_pb2 as cri_pb
from hakube.local import procs
from hakube.local.cluster import cluster_pki, write_config
from hakube.pki.layout import Pki
from hakube.testing import containerd as ctdmod
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs, scheduler_procs
from hakube.testing.images import OciImage
from hakube.testing.join import agent_args
from hakube.testing.mounts import unmount_under
from hakube.testing.netmasters import env as source_env
from hakube.testing.netns import NetnsError, cleanup_stale, ip, kill_namespace, netns_pids
from hakube.testing.sampleimages import sample_image
from hakube.testing.wait import wait_for

NET_IMAGE = "hakube.test/net:1"
"""busybox with the network applets (httpd, wget, nc, nslookup, ip, ping), for pods of tests."""

AGENT_FAST = [
    "--node-lease-interval",
    "1",
    "--node-lease-duration",
    "5",
    "--node-status-interval",
    "1",
    "--relist-interval",
    "0.3",
    "--resync-interval",
    "2",
    "--backoff-base",
    "1",
    "--backoff-max",
    "4",
]
"""Short agent timings for tests (production defaults are 10 s leases, 10 s back-off)."""

_BRIDGE = re.compile(r"^hk(\d+)x[0-9a-f]{4}$")
_SUBNET_POOL = (200, 239)


def missing_prerequisites() -> list[str]:
    """What this machine lacks to build a NetCluster (empty when all is there)."""
    missing = list(ctdmod.missing_prerequisites())
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (Debian: apt-get install {package})")
    if not (ctdmod.CNI_PLUGINS / "bridge").exists():
        missing.append(f"CNI plugins in {ctdmod.CNI_PLUGINS} (scripts/install/cni.sh)")
    return missing


def cleanup_stale_bridges() -> list[str]:
    """Delete harness bridges of runs whose process is dead (their namespaces go with
    ``netns.cleanup_stale``); returns their names."""
    removed = []
    for line in ip("-o", "link", "show", "type", "bridge", check=False).splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        m = _BRIDGE.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.A.B.0/24 that overlaps no route or address of the host namespace."""
    used = []
    for line in ip("-4", "route", "show", "table", "all", check=False).splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1]
        try:
            used.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            continue  # "default" and the like: the default route overlaps by design
    for _ in range(200):
        net = ipaddress.IPv4Network(
            f"10.{random.randint(*_SUBNET_POOL)}.{random.randint(0, 255)}.0/24"
        )
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise NetnsError("no free 10.x.y.0/24 for a test bridge in the host namespace")


def net_image() -> OciImage:
    return sample_image(NET_IMAGE)


@dataclass
class _Resources:
    """What a NetCluster owns, apart from it, so that a finalizer can release it."""

    bridge: str = ""
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    containerds: list[ctdmod.Containerd] = field(default_factory=list)
    masters: LocalCluster | None = None
    components: list[ComponentProcs] = field(default_factory=list)
    workdir: str = ""
    keep_workdir: bool = False

    def release(self) -> None:
        for proc in self.procs:  # agents first: no new sandbox while containerd goes
            _end(proc)
        for ctd in self.containerds:
            ctd.stop()
        self.containerds.clear()
        for ns in self.namespaces:
            kill_namespace(ns)
            ip("netns", "del", ns, check=False)
        self.namespaces.clear()
        for comp in self.components:
            comp.stop_all()
        self.components.clear()
        if self.masters is not None:
            self.masters.__exit__(None, None, None)
            self.masters = None
        if self.bridge:
            ip("link", "del", self.bridge, check=False)
            self.bridge = ""
        if self.workdir:
            unmount_under(self.workdir)  # secret volumes of killed agents
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _end(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class BridgeMasters(LocalCluster):
    """LocalCluster whose API listens on ``address`` (the bridge's, in the host namespace)
    instead of loopback; Raft and metrics stay on loopback. Certificates name both."""

    def __init__(self, base_dir: str, n: int, address: str, extra_args: list[str]) -> None:
        super().__init__(base_dir, n, extra_args=extra_args)
        self.address = address
        for m in self.masters:
            m.api = f"{address}:{m.api.rsplit(':', 1)[1]}"

    def prepare_pki(self) -> Pki:
        sans = ["127.0.0.1", self.address]
        cluster_pki(self.pki.root, {m.name: sans for m in self.masters}, self._ca)
        write_config(self.admin_config, self.pki, self.endpoints())
        return self.pki


class NetNode:
    """One node: a network namespace, its containerd, its agent. Made by NetCluster."""

    def __init__(
        self, cluster: NetCluster, name: str, netns: str, address: str, root: Path
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.netns = netns
        self.ip = address
        self.root = root
        self.containerd: ctdmod.Containerd | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_extra: list[str] = []
        self.log_path = cluster.workdir / f"agent-{name}.log"

    def __repr__(self) -> str:
        return f"NetNode({self.name}, {self.ip}, netns={self.netns})"

    # -- commands in the node's namespace ------------------------------------------------------

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run in this node's network namespace (mounts stay shared)."""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    def run(
        self, argv: Sequence[str], *, timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the node's namespace to completion (NetnsError if it fails and
        ``check``)."""
        res = subprocess.run(
            self.argv(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and res.returncode != 0:
            raise NetnsError(
                f"node {self.name}: {' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()}"
            )
        return res

    def routes(self, *extra: str) -> list[str]:
        """``ip -4 route show [extra]`` in the node, one line per route."""
        return self.run(["ip", "-4", "route", "show", *extra]).stdout.splitlines()

    def pids(self) -> list[int]:
        return netns_pids(self.netns)

    # -- pods ------------------------------------------------------------------------------------

    def pod_exec(
        self,
        pod: str,
        cmd: Sequence[str],
        *,
        namespace: str = "default",
        timeout: int = 20,
    ) -> ExecResult:
        """Run ``cmd`` in the first running container of pod ``namespace/pod`` on this node,
        through the node's CRI (ExecSync), as ``kubectl exec`` would."""
        assert self.containerd is not None, f"node {self.name} has no containerd"
        with self.containerd.client() as cri:
            found = cri.list_containers(
                labels={LABEL_POD_NAME: pod, LABEL_POD_NAMESPACE: namespace},
                state=cri_pb.CONTAINER_RUNNING,
            )
            if not found:
                raise NetnsError(f"pod {namespace}/{pod}: no running container on node {self.name}")
            return cri.exec_sync(found[0].id, list(cmd), timeout_seconds=timeout)

    def pod_argv(self, pod: str, argv: Sequence[str], *, namespace: str = "default") -> list[str]:
        """``argv`` (a program of this machine, e.g. iperf3 or nft) wrapped to run in the
        network namespace of pod ``namespace/pod`` on this node, entered through the pid of its
        sandbox (CRI PodSandboxStatus, verbose)."""
        assert self.containerd is not None, f"node {self.name} has no containerd"
        with self.containerd.client() as cri:
            found = cri.list_pod_sandboxes(
                labels={LABEL_POD_NAME: pod, LABEL_POD_NAMESPACE: namespace}
            )
            ready = [sb for sb in found if sb.state == cri_pb.SANDBOX_READY]
            if not ready:
                raise NetnsError(f"pod {namespace}/{pod}: no ready sandbox on node {self.name}")
            info = cri.pod_sandbox_status(ready[0].id, verbose=True).info.get("info", "{}")
        pid = int(json.loads(info).get("pid", 0))
        if pid <= 0:
            raise NetnsError(f"pod {namespace}/{pod}: the runtime reports no sandbox pid")
        return ["nsenter", "-t", str(pid), "-n", "--", *argv]

    # -- the agent -------------------------------------------------------------------------------

    def agent_argv(self) -> list[str]:
        c = self.cluster
        assert self.containerd is not None
        return procs.hakube_argv(
            "agent",
            "--node-name",
            self.name,
            "--servers",
            ",".join(c.servers),
            "--root-dir",
            str(self.root),
            "--node-ip",
            self.ip,
            "--cri-endpoint",
            self.containerd.endpoint,
            "--cni-conf-dir",
            str(self.containerd.cni_conf_dir),
            *agent_args(c.servers),
            *AGENT_FAST,
            *c.agent_extra,
            *self.agent_extra,
        )

    def start_agent(self, *, wait_ready: bool = True, timeout: float = 60) -> None:
        """Start the agent (in the node's namespace) unless it runs; wait until its Node is
        Ready and its pod network configured."""
        if self.agent_running():
            return
        with open(self.log_path, "ab") as log:
            self.agent = subprocess.Popen(
                self.argv(self.agent_argv()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=source_env(),
                start_new_session=True,
            )
        self.cluster._res.procs.append(self.agent)
        if wait_ready:
            try:
                wait_for(self.network_ready, timeout, f"node {self.name} Ready", interval=0.2)
            except TimeoutError as e:
                raise TimeoutError(f"{e}; agent log:\n{self.agent_log()}") from None

    def agent_running(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        """End the agent (SIGTERM: a clean stop; SIGKILL: a crash). Pods keep running."""
        if self.agent is not None:
            _end(self.agent, sig)

    def kill_agent(self) -> None:
        self.stop_agent(signal.SIGKILL)

    def restart_agent(self, *, wait_ready: bool = True) -> None:
        self.stop_agent()
        self.start_agent(wait_ready=wait_ready)

    def ready(self) -> bool:
        """The Node object exists and reports Ready=True."""
        try:
            node = self.cluster.client.nodes.get(self.name)
        except NotFound:
            return False
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)

    def network_ready(self) -> bool:
        """Ready, with a podCIDR, and the agent's CNI config written for its containerd."""
        if not self.ready() or self.containerd is None:
            return False
        conf = self.containerd.cni_conf_dir / "10-hakube.conflist"
        return conf.exists() and bool(self.cluster.client.nodes.get(self.name).spec.pod_cidr)

    def agent_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class NetCluster:
    """Masters, controller-manager and scheduler on the host; ``nodes`` nodes in namespaces.

    Use as a context manager; :meth:`close` is idempotent. ``cluster_cidr``/``node_cidrs``:
    "allocate" lets the controller-manager hand out podCIDRs; a list of CIDRs gives node i
    ``--pod-cidr`` list[i] instead.
    """

    def __init__(
        self,
        *,
        nodes: int = 2,
        masters: int = 1,
        pod_cidrs: Sequence[str] | None = None,
        controller_args: Sequence[str] = (),
        agent_extra: Sequence[str] = (),
        master_args: Sequence[str] = (),
        keep_workdir: bool = False,
    ) -> None:
        cleanup_stale()
        cleanup_stale_bridges()
        self.prefix = f"hk{os.getpid()}x{secrets.token_hex(2)}"
        self._res = _Resources(keep_workdir=keep_workdir)
        self._finalizer = weakref.finalize(self, self._res.release)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self._res.workdir = str(self.workdir)
        self.n_nodes = nodes
        self.n_masters = masters
        self.pod_cidrs = list(pod_cidrs or [])
        self.controller_args = list(controller_args)
        self.agent_extra = list(agent_extra)
        self.master_args = list(master_args)
        self.subnet = free_subnet()
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self._next_host = 10
        self._hosts = hosts
        self.nodes: dict[str, NetNode] = {}
        self.servers: list[str] = []
        self.masters: BridgeMasters | None = None
        self.controller_manager: ComponentProcs | None = None
        self.scheduler: ComponentProcs | None = None
        self._client: Client | None = None
        self._image: OciImage | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> NetCluster:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        self._res.bridge = self.prefix
        ip("link", "add", self.prefix, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.prefix)
        ip("link", "set", self.prefix, "up")
        masters = BridgeMasters(
            str(self.workdir / "masters"), self.n_masters, self.gateway, self.master_args
        )
        self._res.masters = self.masters = masters
        masters.__enter__()
        self.servers = masters.endpoints()
        self.controller_manager = ComponentProcs(
            "controller-manager",
            self.servers,
            str(self.workdir),
            extra_args=self.controller_args,
            log_level="info",
        )
        self.scheduler = scheduler_procs(self.servers, str(self.workdir))
        self.scheduler.log_level = "info"
        self._res.components += [self.controller_manager, self.scheduler]
        self.controller_manager.start("cm-1")
        self.scheduler.start("sched-1")
        names = [f"n{i + 1}" for i in range(self.n_nodes)]
        for name in names:
            self.add_node(name, start_agent=False)
        for name in names:  # in parallel: each waits only for its own Ready below
            self.nodes[name].start_agent(wait_ready=False)
        for name in names:
            node = self.nodes[name]
            try:
                wait_for(node.network_ready, 60, f"node {name} Ready", interval=0.2)
            except TimeoutError as e:
                raise TimeoutError(f"{e}; agent log:\n{node.agent_log()}") from None

    def __enter__(self) -> NetCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End every process started here (by pid), stop the containerds, delete the
        namespaces, the bridge and the work directory."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._finalizer()

    @property
    def client(self) -> Client:
        """An admin client of the masters (shared; do not close)."""
        if self._client is None:
            assert self.masters is not None, "the cluster is not started"
            self._client = self.masters.client(timeout=20)
        return self._client

    # -- nodes ------------------------------------------------------------------------------------

    def add_node(self, name: str, *, start_agent: bool = True) -> NetNode:
        """A new node ``name``: namespace, veth on the bridge, containerd with the test images,
        and (unless ``start_agent`` is False) its agent, waited for until Ready."""
        if name in self.nodes or not re.match(r"^[a-z0-9]{1,8}$", name):
            raise ValueError(f"node name {name!r}: must be new and 1..8 of a-z 0-9")
        netns = f"{self.prefix}-{name}"
        ip("netns", "add", netns)
        self._res.namespaces.append(netns)
        address = str(self._hosts[self._next_host])
        self._next_host += 1
        veth = f"hkv{secrets.token_hex(4)}"
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", veth, "master", self.prefix)
        ip("link", "set", veth, "up")
        ip("-n", netns, "link", "set", "lo", "up")
        ip("-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        root = self.workdir / "nodes" / name
        root.mkdir(parents=True)
        node = NetNode(self, name, netns, address, root)
        ctd = ctdmod.Containerd(ctdmod.ContainerdSettings(netns=netns))
        self._res.containerds.append(ctd)
        ctd.start()
        ctd.load_test_images()
        if self._image is None:
            self._image = net_image()
        ctd.import_image(self._image)
        node.containerd = ctd
        index = len(self.nodes)
        if index < len(self.pod_cidrs):
            node.agent_extra = ["--pod-cidr", self.pod_cidrs[index]]
        self.nodes[name] = node
        if start_agent:
            node.start_agent()
        return node

    def remove_node(self, name: str, *, delete_object: bool = True) -> None:
        """Take node ``name`` away as an operator would: stop its agent, its containerd (its
        pods with it), delete the Node object (unless not ``delete_object``), and remove the
        namespace."""
        node = self.nodes.pop(name)
        node.stop_agent()
        if node.containerd is not None:
            node.containerd.stop()
            self._res.containerds.remove(node.containerd)
        kill_namespace(node.netns)
        ip("netns", "del", node.netns, check=False)
        self._res.namespaces.remove(node.netns)
        if delete_object:
            try:
                self.client.nodes.delete(name)
            except NotFound:
                pass

    def wait_node_gone(self, name: str, timeout: float = 20) -> None:
        def gone() -> bool:
            try:
                self.client.nodes.get(name)
            except NotFound:
                return True
            return False

        wait_for(gone, timeout, f"node {name} deleted", interval=0.1)

    def logs(self, lines: int = 30) -> str:
        """Tails of every agent's and component's log, for a failing test's message."""
        out = []
        for node in self.nodes.values():
            out.append(f"--- agent {node.name}\n{node.agent_log(lines)}")
        for f in sorted(self.workdir.glob("*.log")):
            if f.name.startswith("agent-"):
                continue
            tail = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f.name}\n" + "\n".join(tail))
        return "\n".join(out)
