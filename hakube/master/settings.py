"""What one master is configured with (``MasterSettings``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from hakube.apiserver.audit import AuditSettings
from hakube.apiserver.flowcontrol import Settings as FlowSettings
from hakube.apiserver.tokens import DEFAULT_ISSUER
from hakube.settings import internal, setting

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Created by the first master that has a quorum (hakube.master.bootstrap)."""


def parse_peers(text: str) -> dict[str, str]:
    """``n2=127.0.0.1:7002,n3=127.0.0.1:7003`` -> {"n2": "127.0.0.1:7002", ...}."""
    peers: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, addr = part.partition("=")
        if not sep or not name or not addr:
            raise argparse.ArgumentTypeError(f'peer "{part}" is not NAME=HOST:PORT')
        if name in peers:
            raise argparse.ArgumentTypeError(f'peer "{name}" is listed twice')
        peers[name] = addr
    return peers


@dataclass
class MasterSettings:
    """Everything one master needs; each field is also a flag, a HAKUBE_* variable and a
    config key (``hakube.settings``) unless marked internal."""

    name: str = ""
    """This master's name, unique in the cluster (required)."""
    data_dir: str = ""
    """Directory for the Raft journal and dumps (required)."""
    api_listen: str = "127.0.0.1:6443"
    """HOST:PORT for the gRPC API."""
    raft_listen: str = ""
    """HOST:PORT for Raft traffic between masters (required)."""
    peers: dict[str, str] = setting({}, parse=parse_peers, metavar="NAME=HOST:PORT,...")
    """The other masters: NAME=HOST:PORT,... (their Raft addresses)."""
    metrics_listen: str = ""
    """HOST:PORT for /metrics, /healthz, /readyz (empty: off)."""
    metrics_tls_listen: str = ""
    """HOST:PORT for the same endpoints over HTTPS, with this master's certificate, requiring a
    client certificate from the cluster CA in group system:monitoring (or an admin's or a
    master's); for scraping from other hosts. Empty: off."""
    k8s_api_listen: str = ""
    """HOST:PORT for the Kubernetes REST API (kubectl, client libraries; HTTPS with client
    certificates, as the gRPC API). Empty: the gRPC API's host, port + 1 (6444 beside the
    default 6443); "off": not served."""
    history_size: int = setting(20000, minimum=1)
    """Watch history kept, in events; older resourceVersions get OUT_OF_RANGE."""
    ready_interval: float = internal(0.5)
    """Seconds between readiness barriers."""
    ready_timeout: float = internal(1.5)
    """A barrier slower than this marks the master not ready."""
    stall_after: float = internal(5.0)
    """Seconds the API's event loop or the Raft thread may go without a heartbeat before /readyz
    turns false (so keepalived moves the VIP away from a wedged master)."""
    watch_quorum_grace: float = internal(3.0)
    """Seconds without quorum after which watch streams end with UNAVAILABLE (and new ones are
    refused) so that watchers move to a master that still sees changes."""
    raft: dict[str, Any] = field(default_factory=dict, metadata={"internal": True})
    """Extra RaftSettings fields (election timeouts, sync_journal, ...)."""
    snapshot_dir: str = ""
    """Directory for scheduled snapshots of the store (empty: none)."""
    snapshot_interval: float = 3600.0
    """Seconds between scheduled snapshots."""
    snapshot_retain: int = setting(24, minimum=1)
    """Scheduled snapshots kept; older ones of this master are deleted."""
    pki_dir: str = ""
    """The cluster's PKI directory (hakube.pki.layout): ca.crt, ca.key and this master's
    masters/<name>.crt/.key. Empty: <data-dir>/pki."""
    cert_sans: list[str] = field(default_factory=list)
    """Extra names and addresses for this master's certificate (e.g. the VIP), beside its
    listen addresses and localhost."""
    metrics_remote_ok: bool = setting(False, flag="allow-unauthenticated-metrics")
    """Serve /metrics, /healthz, /readyz on a non-loopback --metrics-listen (plain HTTP, no
    authentication; an explicit user choice)."""
    quota_bytes: int = setting(2 * 1024**3, minimum=0)
    """Store size limit in bytes (2 GiB, as etcd); over it only deletes, shrinking updates and
    Lease renewals are accepted (0: no limit)."""
    flow: FlowSettings = field(default_factory=FlowSettings)
    """API priority and fairness: seats, queues, per-client stream caps (docs/api.md)."""
    pod_security_default: str = setting(
        "baseline", choices=("privileged", "baseline", "restricted")
    )
    """Pod Security level (privileged, baseline, restricted) enforced in namespaces without a
    pod-security.kubernetes.io/enforce label; kube-system is privileged unless labelled."""
    force_new_cluster: bool = False
    """Rewrite the data dir's membership to this master alone, keeping all its data (quorum
    loss recovery); refused if it already ran on this data dir (flag file)."""
    authorization_mode: str = setting("RBAC", choices=("RBAC", "AlwaysAllow"))
    """RBAC (with the node authorizer; the default) or AlwaysAllow: any authenticated caller
    may do anything. AlwaysAllow exists to measure what authorization costs; never run a
    cluster with it."""
    rbac_reconcile_interval: float = 5.0
    """Seconds between checks (on the Raft leader) that the default roles and bindings are
    present and unchanged."""
    encryption_provider_config: str = ""
    """EncryptionConfiguration file (0600) with the keys that seal Secrets before they enter
    the Raft log; every master needs the same file. Empty: Secrets are stored in clear."""
    audit: AuditSettings = field(default_factory=AuditSettings)
    """The audit log (off unless ``audit.path`` is set)."""
    service_account_issuer: str = DEFAULT_ISSUER
    """The ``iss`` of the ServiceAccount tokens this cluster signs (and accepts)."""
    api_audiences: list[str] = field(default_factory=list)
    """Audiences a bearer token must name one of to authenticate here (empty: the issuer)."""

    def validate(self) -> None:
        """The rules between flags, and the required ones, each naming the flag."""
        missing = [
            f"--{n}"
            for n in ("name", "data-dir", "raft-listen")
            if not getattr(self, n.replace("-", "_"))
        ]
        if missing:
            raise ValueError(f"missing required setting {', '.join(missing)}")
        if self.snapshot_interval <= 0:
            raise ValueError(f"--snapshot-interval {self.snapshot_interval}: must be > 0")
        if self.rbac_reconcile_interval <= 0:
            raise ValueError(
                f"--rbac-reconcile-interval {self.rbac_reconcile_interval}: must be > 0"
            )


def api_advertise(s: MasterSettings) -> str:
    """The API address other masters and clients should use: the listen address, or, when it
    is a wildcard (0.0.0.0 / ::), this master's Raft host with the API port."""
    host, _, port = s.api_listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = s.raft_listen.rpartition(":")[0]
    return f"{host}:{port}"
