"""The Node object and its heartbeat: registration, the node Lease, node conditions.

Two signals, as in Kubernetes since node leases: the Lease ``kube-node-lease/<node>`` is
renewed every ``lease_interval`` (cheap; it is what says "this agent is alive"), while the
Node's status (conditions, capacity, addresses) is written only when it changes or once a
minute, because it is large and every watcher of nodes receives it.

Conditions: Ready (the runtime answers and reports RuntimeReady), MemoryPressure (less than
100 MiB available), DiskPressure (less than 10 % free where the agent keeps pods), PIDPressure
(more than 90 % of pid_max in use) -- the kubelet's default hard eviction thresholds.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass

import hakube
from hakube.agent.config import AgentSettings
from hakube.api import quantity
from hakube.api.conditions import since
from hakube.api.timestamps import micro_time, rfc3339
from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import AlreadyExists, Client, Conflict, NotFound
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError

log = logging.getLogger("hakube.agent.node")
LEASE_NAMESPACE = "kube-node-lease"
STATUS_REFRESH = 60.0
"""Seconds after which the node status is rewritten even if nothing changed."""


def node_ip(configured: str) -> str:
    if configured:
        return configured
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}.get(platform.machine(), platform.machine())


@dataclass(frozen=True)
class Capacity:
    cpu_millis: int
    memory_bytes: int
    pods: int

    def as_map(self) -> dict[str, str]:
        cpu = str(self.cpu_millis // 1000) if self.cpu_millis % 1000 == 0 else f"{self.cpu_millis}m"
        return {
            "cpu": cpu,
            "memory": f"{self.memory_bytes // 1024}Ki",
            "pods": str(self.pods),
            "ephemeral-storage": "0",
        }


def capacity(settings: AgentSettings, cpu: str = "", memory: str = "") -> Capacity:
    """This machine's CPUs and memory, unless overridden (simulated nodes)."""
    cpu_m = quantity.cpu_millis(cpu) if cpu else (os.cpu_count() or 1) * 1000
    mem = quantity.memory_bytes(memory) if memory else meminfo().get("MemTotal", 0)
    return Capacity(cpu_m, mem, settings.max_pods)


class NodeReporter:
    """Registers the Node, renews its Lease, keeps its status current."""

    def __init__(
        self,
        client: Client,
        settings: AgentSettings,
        cri: CriClient,
        *,
        host_ip: str,
        agent_port: int,
        cap: Capacity,
        runtime_version: str,
        simulated: bool = False,
    ) -> None:
        self.client = client
        self.s = settings
        self.cri = cri
        self.host_ip = host_ip
        self.agent_port = agent_port
        self.cap = cap
        self.runtime_version = runtime_version
        self.simulated = simulated
        self.node_uid = ""
        self._last_written = 0.0
        self._last_conditions: dict[str, str] = {}
        self._lease: core_pb2.Lease | None = None

    # -- node -----------------------------------------------------------------------------------

    def _desired(self) -> core_pb2.Node:
        name = self.s.node_name
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": ARCH,
            **self.s.labels,
        }
        node = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name, labels=labels))
        for t in self.s.taints:
            node.spec.taints.add(key=t.key, value=t.value, effect=t.effect)
        if self.s.pod_cidr:
            node.spec.pod_cidr = self.s.pod_cidr
            node.spec.pod_cidrs.append(self.s.pod_cidr)
        return node

    def _status(self, old: core_pb2.NodeStatus) -> core_pb2.NodeStatus:
        now = rfc3339(time.time())
        st = core_pb2.NodeStatus(
            capacity=self.cap.as_map(), allocatable=self.cap.as_map(), phase="Running"
        )
        st.addresses.add(type="InternalIP", address=self.host_ip)
        st.addresses.add(type="Hostname", address=self.s.node_name)
        st.node_info.CopyFrom(
            core_pb2.NodeSystemInfo(
                machine_id=_machine_id(),
                kernel_version=platform.release(),
                os_image=_os_image(),
                container_runtime_version=self.runtime_version,
                kubelet_version=f"hakube-{hakube.__version__}",
                operating_system="linux",
                architecture=ARCH,
            )
        )
        st.daemon_endpoints.kubelet_endpoint.port = self.agent_port
        prev = {c.type: c for c in old.conditions}
        for ctype, ok, reason, message in self.conditions():
            value = "True" if ok else "False"
            st.conditions.add(
                type=ctype,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=since(prev.get(ctype), value, now),
                last_heartbeat_time=now,
            )
        return st

    def conditions(self) -> list[tuple[str, bool, str, str]]:
        """(type, status, reason, message) of each node condition, computed now."""
        try:
            runtime = self.cri.conditions(timeout=5)
            ready = runtime.get("RuntimeReady", False)
            why = "" if ready else "container runtime reports RuntimeReady=false"
        except CriError as e:
            ready, why = False, f"container runtime is down: {e}"
        mem_low = disk_low = pid_low = False
        if not self.simulated:
            mem_low = meminfo().get("MemAvailable", 1 << 40) < 100 * 2**20
            try:
                du = shutil.disk_usage(self.s.root_dir)
                disk_low = du.free < du.total * 0.10
            except OSError:
                pass
            pid_low = _pid_pressure()
        return [
            (
                "Ready",
                ready,
                "KubeletReady" if ready else "KubeletNotReady",
                "hakube agent is posting ready status" if ready else why,
            ),
            (
                "MemoryPressure",
                mem_low,
                "KubeletHasInsufficientMemory" if mem_low else "KubeletHasSufficientMemory",
                "less than 100Mi memory available" if mem_low else "node has sufficient memory",
            ),
            (
                "DiskPressure",
                disk_low,
                "KubeletHasDiskPressure" if disk_low else "KubeletHasNoDiskPressure",
                "less than 10% disk free" if disk_low else "node has no disk pressure",
            ),
            (
                "PIDPressure",
                pid_low,
                "KubeletHasInsufficientPID" if pid_low else "KubeletHasSufficientPID",
                "more than 90% of pids in use" if pid_low else "node has sufficient PID",
            ),
        ]

    def register(self) -> core_pb2.Node:
        """Create the Node, or adopt an existing one (adding our labels), then write status."""
        want = self._desired()
        try:
            node = self.client.nodes.create(want)
            log.info("registered node %s", self.s.node_name)
        except AlreadyExists:
            node = self.client.nodes.get(self.s.node_name)
            if any(node.metadata.labels.get(k) != v for k, v in want.metadata.labels.items()):
                node.metadata.labels.update(want.metadata.labels)
                node = self.client.nodes.update(node)
            log.info("node %s already registered; taking it over", self.s.node_name)
        self.node_uid = node.metadata.uid
        return self.update_status(node, force=True)

    def update_status(
        self, node: core_pb2.Node | None = None, *, force: bool = False
    ) -> core_pb2.Node:
        """Write the status if a condition changed, ``force``, or a minute passed."""
        for attempt in range(3):
            if node is None:
                node = self.client.nodes.get(self.s.node_name)
            st = self._status(node.status)
            conds = {c.type: c.status for c in st.conditions}
            if (
                not force
                and conds == self._last_conditions
                and time.monotonic() - self._last_written < STATUS_REFRESH
            ):
                return node
            out = core_pb2.Node()
            out.CopyFrom(node)
            out.status.CopyFrom(st)
            try:
                node = self.client.nodes.update_status(out)
            except Conflict:
                node = None
                if attempt == 2:
                    raise
                continue
            self._last_conditions = conds
            self._last_written = time.monotonic()
            return node
        raise AssertionError("unreachable")

    # -- lease ----------------------------------------------------------------------------------

    def renew_lease(self) -> core_pb2.Lease:
        """Create or renew ``kube-node-lease/<node>``."""
        now = micro_time(time.time())
        lease = self._lease
        for _ in range(3):
            if lease is None:
                try:
                    lease = self.client.leases.get(self.s.node_name, namespace=LEASE_NAMESPACE)
                except NotFound:
                    lease = core_pb2.Lease(
                        metadata=meta_pb2.ObjectMeta(
                            name=self.s.node_name, namespace=LEASE_NAMESPACE
                        )
                    )
                    if self.node_uid:
                        lease.metadata.owner_references.add(
                            api_version="v1", kind="Node", name=self.s.node_name, uid=self.node_uid
                        )
                    lease.spec.holder_identity = self.s.node_name
                    lease.spec.lease_duration_seconds = self.s.lease_duration
                    lease.spec.renew_time = now
                    try:
                        self._lease = self.client.leases.create(lease)
                        return self._lease
                    except AlreadyExists:
                        lease = None
                        continue
            out = core_pb2.Lease()
            out.CopyFrom(lease)
            out.spec.holder_identity = self.s.node_name
            out.spec.lease_duration_seconds = self.s.lease_duration
            out.spec.renew_time = now
            try:
                self._lease = self.client.leases.update(out)
                return self._lease
            except (Conflict, NotFound):
                lease = None
        raise Conflict(
            f"leases/{self.s.node_name} in namespace {LEASE_NAMESPACE}: kept "
            "changing while being renewed"
        )


def _machine_id() -> str:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_pressure() -> bool:
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[1])
        return running > pid_max * 0.9
    except (OSError, ValueError, IndexError):
        return False
