"""``hakube agent``: flags, their checks, and signal handling around ``Agent.run()``.

Every flag is also a ``HAKUBE_<FLAG>`` environment variable or a key of the ``--config`` file
(``hakube.cli.config``); ``--servers`` falls back to the client config's masters, so on a
machine where ``hakube up`` ran, ``hakube agent --node-name n1 --runtime simulated`` is enough.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from hakube import gctune
from hakube.agent.config import POD_ROUTE_MODES, AgentSettings, parse_labels, parse_taints
from hakube.cri.client import DEFAULT_ENDPOINT
from hakube.lifecycle import run_until_signal

DEFAULT_ROOT = "/var/lib/hakube-agent"


def _typed(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return fn(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    convert.__name__ = fn.__name__
    return convert


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "agent",
        help="run the node agent (runs this node's pods via CRI)",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    p.add_argument("--node-name", default="", help="name of this node's Node object")
    p.add_argument(
        "--servers",
        "--server",
        dest="servers",
        default="",
        help="master API endpoints HOST:PORT,... or one VIP (default: the client config's)",
    )
    p.add_argument(
        "--token",
        default="",
        help="bootstrap token to join with when the node has no certificate yet "
        "(`hakube token create` on a master prints it)",
    )
    p.add_argument(
        "--ca-cert-hash",
        default="",
        help="sha256:<hex> of the cluster CA's public key; the join trusts only that CA",
    )
    p.add_argument(
        "--cert-renew-before",
        type=float,
        default=30 * 86400.0,
        help="seconds before expiry at which the node certificate is renewed",
    )
    p.add_argument(
        "--cert-check-interval",
        type=float,
        default=3600.0,
        help="seconds between checks of the node certificate's expiry",
    )
    p.add_argument(
        "--runtime",
        choices=["containerd", "simulated"],
        default="containerd",
        help="containerd through --cri-endpoint, or an in-process simulated runtime",
    )
    p.add_argument("--cri-endpoint", default=DEFAULT_ENDPOINT, help="CRI socket of containerd")
    p.add_argument(
        "--root-dir",
        default=DEFAULT_ROOT,
        help=f"pod volumes and container logs (default {DEFAULT_ROOT})",
    )
    p.add_argument(
        "--node-ip",
        default="",
        help="InternalIP of the node (default: the address of this host's name)",
    )
    p.add_argument(
        "--listen",
        default="",
        help="HOST:PORT of the agent API for logs/exec/stats (default: the node IP, port "
        "10250; port 0: any free port)",
    )
    p.add_argument(
        "--metrics-listen",
        default="",
        help="HOST:PORT (loopback) for /metrics and /healthz over plain HTTP; empty: off",
    )
    p.add_argument(
        "--metrics-tls-listen",
        default="",
        help="HOST:PORT for /metrics over HTTPS with the node's certificate, for scrapers "
        "with a cluster-CA client certificate in group system:monitoring; empty: off",
    )
    p.add_argument(
        "--pki-dir",
        default="",
        help="the node's ca.crt, node.crt and node.key (default: ROOT-DIR/pki)",
    )
    p.add_argument(
        "--labels", type=_typed(parse_labels), default={}, help="extra node labels KEY=VALUE,..."
    )
    p.add_argument(
        "--register-with-taints",
        type=_typed(parse_taints),
        default=(),
        help="taints for the node KEY[=VALUE]:EFFECT,...",
    )
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument(
        "--capacity-cpu",
        default="",
        help="report this CPU capacity instead of the machine's (simulated nodes)",
    )
    p.add_argument(
        "--capacity-memory",
        default="",
        help="report this memory capacity instead of the machine's (simulated nodes)",
    )
    p.add_argument(
        "--node-lease-interval",
        type=float,
        default=10.0,
        help="seconds between renewals of the node Lease",
    )
    p.add_argument(
        "--node-lease-duration", type=int, default=40, help="leaseDurationSeconds of the node Lease"
    )
    p.add_argument(
        "--node-status-interval",
        type=float,
        default=10.0,
        help="seconds between node condition checks",
    )
    p.add_argument(
        "--relist-interval",
        type=float,
        default=1.0,
        help="seconds between runtime relists that notice exited containers",
    )
    p.add_argument(
        "--resync-interval",
        type=float,
        default=10.0,
        help="every pod is reconciled at least this often (seconds)",
    )
    p.add_argument(
        "--backoff-base",
        type=float,
        default=10.0,
        help="first restart/pull back-off in seconds (doubles each time)",
    )
    p.add_argument("--backoff-max", type=float, default=300.0, help="back-off cap in seconds")
    p.add_argument("--workers", type=int, default=4, help="pods reconciled in parallel")
    p.add_argument(
        "--pod-network",
        choices=["auto", "host"],
        default="auto",
        help="auto: pods get their own network when the runtime has CNI, else the "
        "host's; host: always the host's",
    )
    p.add_argument(
        "--pod-cidr",
        default="",
        help="pod addresses of this node (e.g. "
        "10.244.1.0/24): the agent configures a CNI bridge for the runtime; default: "
        "the Node's spec.podCIDR, else pods use the host network",
    )
    p.add_argument(
        "--cni-conf-dir", default="/etc/cni/net.d", help="the runtime's CNI config directory"
    )
    p.add_argument("--cni-bridge", default="hakube0", help="name of the pod bridge")
    p.add_argument(
        "--pod-cidr-wait",
        type=float,
        default=10.0,
        help="seconds to wait at start for the Node's podCIDR from the controller-manager "
        "before running pods (without --pod-cidr); 0: do not wait",
    )
    p.add_argument(
        "--pod-routes",
        choices=list(POD_ROUTE_MODES),
        default="host-gw",
        help="how pods reach other nodes' pods: host-gw (routes via the nodes' addresses, "
        "one L2 segment), vxlan (a VXLAN device, any IP network), off (the operator's routes)",
    )
    p.add_argument(
        "--secret-volumes-on-disk",
        action="store_true",
        help="development and simulated runtime only: write secret volumes to plain "
        "directories under --root-dir instead of a tmpfs each (default: tmpfs; a pod whose "
        "tmpfs cannot be mounted waits with the error)",
    )
    p.add_argument(
        "--pod-cgroup-parent",
        default="",
        help="give each pod a cgroup <parent>/<node>/pod<uid> limited by its spec.resources "
        "(cgroupfs driver paths, e.g. /hakube; real runtimes, as root; default: off)",
    )
    p.add_argument(
        "--seccomp-default",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run containers whose pod names no seccomp profile under the runtime's default "
        "filter (RuntimeDefault); --no-seccomp-default: Unconfined (default: on)",
    )
    p.add_argument(
        "--seccomp-profile-root",
        default="/var/lib/hakube/seccomp",
        help="directory of Localhost seccomp profiles (localhostProfile is relative to it)",
    )
    p.add_argument(
        "--usage-interval",
        type=float,
        default=15.0,
        help="seconds between writes of pods' CPU usage (annotation "
        "metrics.hakube.io/cpu-usage, read by the autoscaler); 0: off",
    )
    p.add_argument(
        "--cluster-dns",
        default="10.96.0.10",
        help="nameserver(s) IP,... of dnsPolicy ClusterFirst pods (the kube-dns Service's "
        "ClusterIP); empty: such pods get the node's resolv.conf",
    )
    p.add_argument("--cluster-domain", default="cluster.local", help="the cluster DNS zone")
    p.add_argument(
        "--resolv-conf",
        default="/etc/resolv.conf",
        help="the node's resolv.conf, for dnsPolicy Default pods",
    )
    return {"agent": run}


def settings_from(args: argparse.Namespace) -> AgentSettings:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        from hakube.client.config import ConfigError, load_client_config

        try:
            servers = list(load_client_config(None).servers)
        except ConfigError:
            servers = []
    return AgentSettings(
        node_name=args.node_name,
        servers=tuple(servers),
        root_dir=args.root_dir,
        runtime=args.runtime,
        cri_endpoint=args.cri_endpoint,
        node_ip=args.node_ip,
        listen=args.listen,
        metrics_listen=args.metrics_listen,
        metrics_tls_listen=args.metrics_tls_listen,
        pki_dir=args.pki_dir,
        labels=dict(args.labels),
        taints=tuple(args.register_with_taints),
        max_pods=args.max_pods,
        lease_interval=args.node_lease_interval,
        lease_duration=args.node_lease_duration,
        status_interval=args.node_status_interval,
        relist_interval=args.relist_interval,
        resync_interval=args.resync_interval,
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        workers=args.workers,
        pod_network=args.pod_network,
        pod_cidr=args.pod_cidr,
        cni_conf_dir=args.cni_conf_dir,
        cni_bridge=args.cni_bridge,
        pod_routes=args.pod_routes,
        pod_cidr_wait=args.pod_cidr_wait,
        usage_interval=args.usage_interval,
        cluster_dns=tuple(a.strip() for a in args.cluster_dns.split(",") if a.strip()),
        cluster_domain=args.cluster_domain,
        resolv_conf=args.resolv_conf,
        seccomp_default=args.seccomp_default,
        seccomp_profile_root=args.seccomp_profile_root,
        secret_volumes_on_disk=args.secret_volumes_on_disk,
        pod_cgroup_parent=args.pod_cgroup_parent,
        token=args.token,
        ca_cert_hash=args.ca_cert_hash,
        cert_renew_before=args.cert_renew_before,
        cert_check_interval=args.cert_check_interval,
    )


def run(args: argparse.Namespace) -> int:
    from hakube.agent.agent import Agent

    settings = settings_from(args)
    try:
        settings.validate()
    except ValueError as e:
        print(f"hakube agent: {e}", file=sys.stderr)
        return 2
    from hakube.agent.join import JoinError

    try:
        agent = Agent(
            settings, capacity_cpu=args.capacity_cpu, capacity_memory=args.capacity_memory
        )
    except JoinError as e:
        print(f"hakube agent: {e}", file=sys.stderr)
        return 1
    gctune.install()
    try:
        run_until_signal(agent, what=f"hakube agent {settings.node_name}")
    except OSError as e:
        print(f"hakube agent: {e}", file=sys.stderr)
        return 1
    return 0
