"""What one master is configured with (``MasterSettings``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hakube.apiserver.audit import AuditSettings
from hakube.apiserver.flowcontrol import Settings as FlowSettings
from hakube.apiserver.tokens import DEFAULT_ISSUER

BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Created by the first master that has a quorum (hakube.master.bootstrap)."""


@dataclass
class MasterSettings:
    """Everything one master needs; each field is also a flag and a HAKUBE_* variable."""

    name: str
    data_dir: str
    api_listen: str
    raft_listen: str
    peers: dict[str, str]
    metrics_listen: str = ""
    """HOST:PORT for /metrics, /healthz, /readyz; empty disables it."""
    metrics_tls_listen: str = ""
    """HOST:PORT for the same endpoints over HTTPS, with this master's certificate, requiring a
    client certificate from the cluster CA in group system:monitoring (or an admin's or a
    master's); for scraping from other hosts. Empty: off."""
    k8s_api_listen: str = ""
    """HOST:PORT for the Kubernetes REST API (kubectl, client libraries; HTTPS with client
    certificates, as the gRPC API). Empty: the gRPC API's host, port + 1 (6444 beside the
    default 6443); "off": not served."""
    history_size: int = 20000
    """Watch history kept, in events; older resourceVersions get OUT_OF_RANGE."""
    ready_interval: float = 0.5
    """Seconds between readiness barriers."""
    ready_timeout: float = 1.5
    """A barrier slower than this marks the master not ready."""
    stall_after: float = 5.0
    """Seconds the API's event loop or the Raft thread may go without a heartbeat before /readyz
    turns false (so keepalived moves the VIP away from a wedged master)."""
    watch_quorum_grace: float = 3.0
    """Seconds without quorum after which watch streams end with UNAVAILABLE (and new ones are
    refused) so that watchers move to a master that still sees changes."""
    raft: dict[str, Any] = field(default_factory=dict)
    """Extra RaftSettings fields (election timeouts, sync_journal, ...)."""
    snapshot_dir: str = ""
    """Directory for scheduled snapshots of the store (empty: none)."""
    snapshot_interval: float = 3600.0
    """Seconds between scheduled snapshots."""
    snapshot_retain: int = 24
    """Scheduled snapshots kept; older ones of this master are deleted."""
    pki_dir: str = ""
    """The cluster's PKI directory (hakube.pki.layout): ca.crt, ca.key and this master's
    masters/<name>.crt/.key. Empty: <data-dir>/pki."""
    cert_sans: list[str] = field(default_factory=list)
    """Extra names and addresses for this master's certificate (e.g. the VIP), beside its
    listen addresses and localhost."""
    metrics_remote_ok: bool = False
    """Serve plain-HTTP metrics on a non-loopback metrics_listen (an explicit user choice)."""
    quota_bytes: int = 2 * 1024**3
    """Store size limit; over it the store only shrinks (ObjectAPI._check_quota). 0: none."""
    flow: FlowSettings = field(default_factory=FlowSettings)
    """API priority and fairness: seats, queues, per-client stream caps (docs/api.md)."""
    pod_security_default: str = "baseline"
    """Pod Security level (privileged, baseline, restricted) enforced in namespaces without a
    pod-security.kubernetes.io/enforce label; kube-system is privileged unless labelled."""
    force_new_cluster: bool = False
    """Rewrite the data dir's membership to this master alone, keeping all its data (quorum
    loss recovery); refused if it already ran on this data dir (flag file)."""
    authorization_mode: str = "RBAC"
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


def api_advertise(s: MasterSettings) -> str:
    """The API address other masters and clients should use: the listen address, or, when it
    is a wildcard (0.0.0.0 / ::), this master's Raft host with the API port."""
    host, _, port = s.api_listen.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = s.raft_listen.rpartition(":")[0]
    return f"{host}:{port}"
