"""The agent's settings: one dataclass, documented defaults, one validator.

Every field is also a ``hakube agent`` flag (see ``hakube.agent.cli``), settable through a
``HAKUBE_*`` environment variable or the ``--config`` YAML file like every hakube component.
Durations are seconds. Defaults are Kubernetes' where Kubernetes has one, so manifests behave as
operators expect; tests shorten them through the same flags.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from hakube.cri.client import DEFAULT_ENDPOINT
from hakube.settings import internal, setting

AGENT_PORT = 10250
"""The agent API's port when --listen is not given (the kubelet's)."""
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
POD_ROUTE_MODES = ("host-gw", "vxlan", "off")
"""How pods reach other nodes' pods: routes via the nodes' addresses (one L2 segment), over a
VXLAN device (any IP network between the nodes), or not by the agent (hakube.agent.routes)."""


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


DEFAULT_ROOT = "/var/lib/hakube-agent"


def client_config_servers() -> tuple[str, ...]:
    """The masters of the client config (``$HAKUBE_CONFIG`` or ``~/.hakube/config``), when
    ``--servers`` is not given; none if there is no usable client config."""
    from hakube.client.config import ConfigError, load_client_config

    try:
        return tuple(load_client_config(None).servers)
    except ConfigError:
        return ()


def parse_labels(text: str) -> dict[str, str]:
    """``a=b,c=d`` -> {"a": "b", "c": "d"}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ValueError(f'label "{part}" is not KEY=VALUE')
        out[key] = value
    return out


def parse_taints(text: str) -> tuple[Taint, ...]:
    """``key=value:NoSchedule,key2:NoExecute`` -> taints (kubelet's --register-with-taints)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = part.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise ValueError(
                f'taint "{part}" is not KEY[=VALUE]:EFFECT with EFFECT one of '
                f"{', '.join(TAINT_EFFECTS)}"
            )
        key, _, value = kv.partition("=")
        if not key:
            raise ValueError(f'taint "{part}" has no key')
        out.append(Taint(key, value, effect))
    return tuple(out)


@dataclass(frozen=True)
class AgentSettings:
    """How one node agent runs."""

    node_name: str = ""
    """The Node object this agent registers and the pods it runs (spec.nodeName)."""
    servers: tuple[str, ...] = setting(
        (), aliases=("--server",), fallback=client_config_servers, shown="the client config's"
    )
    """Master API endpoints HOST:PORT,... or one VIP; the client fails over between them."""
    root_dir: str = DEFAULT_ROOT
    """Pod volumes (``pods/<uid>/volumes``) and container logs (``logs/``) live here."""
    runtime: str = setting("containerd", choices=("containerd", "simulated"))
    """"containerd": drive the CRI at ``cri_endpoint``; "simulated": start an in-process
    simulated CRI runtime (no real containers; for scale and control-plane tests)."""
    cri_endpoint: str = DEFAULT_ENDPOINT
    """The CRI socket of containerd."""
    node_ip: str = ""
    """The node's InternalIP (host IP of its pods); empty: the address of this host's name, or
    127.0.0.1 when that does not resolve."""
    listen: str = ""
    """Where the agent API (logs, exec, stats) listens; empty: the node's InternalIP (see
    ``node_ip``) on the kubelet's port 10250, never every interface by default. Port 0 picks a
    free one. The port is published in the Node's status.daemonEndpoints."""
    metrics_listen: str = ""
    """HOST:PORT for /metrics and /healthz over plain HTTP: loopback only (empty: off)."""
    metrics_tls_listen: str = ""
    """HOST:PORT for the same over HTTPS with the node's certificate, for scrapers with a
    client certificate from the cluster CA in group system:monitoring (empty: off)."""
    pki_dir: str = ""
    """The node's key material (hakube.pki.layout.NodePki: ca.crt, node.crt, node.key); empty:
    ``<root_dir>/pki``. The agent API serves TLS with node.crt and only to the masters."""
    labels: dict[str, str] = setting({}, parse=parse_labels, metavar="KEY=VALUE,...")
    """Extra labels of the Node: KEY=VALUE,..."""
    taints: tuple[Taint, ...] = setting(
        (), flag="register-with-taints", parse=parse_taints, metavar="KEY[=VALUE]:EFFECT,..."
    )
    """Taints the Node registers with: KEY[=VALUE]:EFFECT,... (kubelet's flag)."""
    max_pods: int = 110
    """The node's ``pods`` capacity (Kubernetes' default)."""
    lease_interval: float = setting(10.0, flag="node-lease-interval")
    """How often the node Lease in kube-node-lease is renewed (kubelet: 10 s)."""
    lease_duration: int = setting(40, flag="node-lease-duration")
    """leaseDurationSeconds written into the Lease (kubelet: 40 s)."""
    status_interval: float = setting(10.0, flag="node-status-interval")
    """How often node conditions are recomputed (written when they change, or every minute)."""
    relist_interval: float = 1.0
    """How often the runtime is relisted to notice containers that exited (kubelet's PLEG)."""
    resync_interval: float = 10.0
    """Every pod is reconciled at least this often, even when nothing was noticed."""
    backoff_base: float = 10.0
    """First delay before restarting a crashed container or re-pulling a missing image."""
    backoff_max: float = 300.0
    """The back-off doubles up to this (kubelet: 5 min)."""
    backoff_reset: float = internal(600.0)
    """A container that ran this long without crashing restarts without delay (10 min)."""
    workers: int = 4
    """Pods reconciled in parallel."""
    seccomp_default: bool = True
    """Containers whose pod names no seccomp profile run under the runtime's default filter
    (RuntimeDefault), as kubelet's ``--seccomp-default``, but on by default: off, they run
    Unconfined, as Kubernetes nodes do unless told otherwise."""
    seccomp_profile_root: str = "/var/lib/hakube/seccomp"
    """Where ``Localhost`` seccomp profiles (``localhostProfile``, a relative path) are read."""
    pod_network: str = setting("auto", choices=("auto", "host"))
    """"auto": pods that ask for their own network get one when the runtime reports
    NetworkReady (CNI configured), else they share the host's; "host": always the host's."""

    pod_cidr: str = ""
    """Pod addresses of this node (e.g. 10.244.1.0/24); with it the agent writes a CNI bridge
    config for the runtime (``hakube.agent.network``). Empty: the Node's spec.podCIDR, if any."""
    cni_conf_dir: str = "/etc/cni/net.d"
    """Where the runtime reads CNI configs (containerd's ``plugins.cri.cni.conf_dir``)."""
    cni_mode: str = setting("routed", choices=("routed", "bridge"))
    """How pods attach to the node (``hakube.agent.network``): "routed", a veth per pod with a
    /32 route on the node (CNI ptp; no bridge, the cheaper path); "bridge", every pod on one
    node bridge (CNI bridge, ``--cni-bridge``). Change it only on a node without pods."""
    cni_bridge: str = "hakube0"
    """Name of the node's pod bridge (``--cni-mode bridge``)."""
    pod_cidr_wait: float = 10.0
    """Seconds the agent waits at start, before it runs any pod, for its Node to get a podCIDR
    from the controller-manager (only without --pod-cidr and with a pod network): pods bound
    the moment the node registers would otherwise start on the host network. 0: do not wait."""
    pod_routes: str = setting("host-gw", choices=POD_ROUTE_MODES)
    """How this node reaches other nodes' pods (``hakube.agent.routes``), when it has a pod
    network: "host-gw" routes each podCIDR via that node's InternalIP (nodes on one L2
    segment); "vxlan" sends it over a VXLAN device (any IP network between the nodes); "off":
    the operator routes pod traffic. Every node of a cluster uses the same mode."""

    secret_volumes_on_disk: bool = False
    """Write secret volumes to plain directories under root_dir instead of a tmpfs each: for
    development and the simulated runtime, where the agent may not be root. Off: a pod whose
    secret volume cannot get a tmpfs waits with the error (Secrets never touch the disk)."""

    pod_cgroup_parent: str = ""
    """Where each pod gets a cgroup of its own, ``<parent>/<node>/pod<uid>`` (cgroupfs
    paths, e.g. "/hakube"), limited by the pod's ``spec.resources`` (hakube.agent.podcgroup).
    Empty: off, the runtime places containers itself and pod-level limits are only reserved
    by the scheduler. Real runtimes only; needs root and containerd's cgroupfs driver."""

    usage_interval: float = 15.0
    """Seconds between writes of pods' CPU usage annotations for the autoscaler; 0: off."""

    cluster_dns: tuple[str, ...] = ("10.96.0.10",)
    """Nameservers of ``dnsPolicy: ClusterFirst`` pods: the kube-dns Service's ClusterIP
    (``hakube.api.poddns``); empty: such pods get the node's resolv.conf, as with Default."""
    cluster_domain: str = "cluster.local"
    """The cluster DNS zone: ClusterFirst pods search ``<ns>.svc.<domain> svc.<domain>
    <domain>``."""
    resolv_conf: str = "/etc/resolv.conf"
    """The node's resolvers, handed to ``dnsPolicy: Default`` pods."""

    token: str = ""
    """A bootstrap token (``hakube token create``) to join with when ``<root-dir>/pki`` has no
    node certificate yet (hakube.agent.join); unused once the node has one."""
    ca_cert_hash: str = ""
    """``sha256:<hex>`` of the cluster CA's public key; the join trusts only that CA."""
    cert_renew_before: float = 30 * 86400.0
    """The node certificate is renewed this many seconds before it expires."""
    cert_check_interval: float = 3600.0
    """Seconds between checks whether the node certificate is due for renewal."""

    def node_pki_dir(self) -> str:
        return self.pki_dir or os.path.join(self.root_dir, "pki")

    def listen_address(self, host_ip: str) -> str:
        """``listen``, or ``host_ip`` on the kubelet's port when it is empty."""
        if self.listen:
            return self.listen
        return f"[{host_ip}]:{AGENT_PORT}" if ":" in host_ip else f"{host_ip}:{AGENT_PORT}"

    def validate(self) -> None:
        """ValueError naming the setting and the rule it breaks."""
        if not self.node_name:
            raise ValueError("--node-name is required (the name of this node's Node object)")
        if not self.servers:
            raise ValueError("--servers is required (master API endpoints HOST:PORT,...)")
        if not self.root_dir:
            raise ValueError("--root-dir is required")
        if self.runtime not in ("containerd", "simulated"):
            raise ValueError(f"--runtime {self.runtime!r}: use containerd or simulated")
        if self.pod_network not in ("auto", "host"):
            raise ValueError(f"--pod-network {self.pod_network!r}: use auto or host")
        for name in (
            "lease_interval",
            "status_interval",
            "relist_interval",
            "resync_interval",
            "backoff_base",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} ({getattr(self, name)}) must be > 0")
        if self.backoff_max < self.backoff_base:
            raise ValueError(
                f"--backoff-max ({self.backoff_max}) must be >= --backoff-base "
                f"({self.backoff_base})"
            )
        if self.lease_duration <= self.lease_interval:
            raise ValueError(
                f"--node-lease-duration ({self.lease_duration}) must be longer than "
                f"--node-lease-interval ({self.lease_interval})"
            )
        if self.pod_cidr:
            try:
                ipaddress.ip_network(self.pod_cidr)
            except ValueError as e:
                raise ValueError(f"--pod-cidr {self.pod_cidr!r}: {e}") from e
        if self.pod_routes not in POD_ROUTE_MODES:
            raise ValueError(f"--pod-routes {self.pod_routes!r}: use host-gw, vxlan or off")
        if self.pod_cidr_wait < 0:
            raise ValueError(f"--pod-cidr-wait ({self.pod_cidr_wait}) must be >= 0")
        if self.cni_mode not in ("routed", "bridge"):
            raise ValueError(f"--cni-mode {self.cni_mode!r}: use routed or bridge")
        if not 0 < len(self.cni_bridge) <= 15:
            raise ValueError(f"--cni-bridge {self.cni_bridge!r}: 1 to 15 characters")
        if bool(self.token) != bool(self.ca_cert_hash):
            raise ValueError(
                "--token and --ca-cert-hash go together (`hakube token create` prints both)"
            )
        if self.cert_check_interval <= 0:
            raise ValueError(f"--cert-check-interval ({self.cert_check_interval}) must be > 0")
        for ip in self.cluster_dns:
            try:
                ipaddress.ip_address(ip)
            except ValueError as e:
                raise ValueError(f"--cluster-dns {ip!r}: not an IP address") from e
        if len(self.cluster_dns) > 3:
            raise ValueError("--cluster-dns: at most 3 addresses (resolv.conf reads no more)")
        if self.workers < 1 or self.max_pods < 1:
            raise ValueError("--workers and --max-pods must be at least 1")
