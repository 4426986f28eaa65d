"""``hakube master``: one member of the control plane.

It wires the pieces together: the Raft member with its store, the gRPC API, the metrics/health
HTTP endpoint, a readiness probe that proves quorum by committing a barrier through the log (so a
master cut off from the majority reports not-ready even if its TCP connections linger), the
leader's lease-expiry loop, and the bootstrap of the default namespaces.

Membership is owned here, not by flags: the data dir's members.json (hakube.store.datadir) names
the peers once it exists, and the membership loop keeps it equal to the Raft configuration,
registers this master's addresses in the replicated member registry, and stops the master if the
registry says it was removed (so a removed member never serves stale data).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from hakube.api import kinds
from hakube.api.v1 import api_pb2, core_pb2
from hakube.apiserver import encryption
from hakube.apiserver.admission import PodSecurity
from hakube.apiserver.audit import AuditError, AuditLog, AuditSettings
from hakube.apiserver.authn import Authenticator
from hakube.apiserver.authz import defaults as rbac_defaults
from hakube.apiserver.authz.authorizer import Authorizer
from hakube.apiserver.authz.review import AUTHORIZATION_SERVICE, ReviewServicer
from hakube.apiserver.encryption import Transformer
from hakube.apiserver.errors import AlreadyExists, ApiError
from hakube.apiserver.flowcontrol import FlowControl
from hakube.apiserver.flowcontrol import Settings as FlowSettings
from hakube.apiserver.join import BOOTSTRAP_METHODS, JOIN_SERVICE, BootstrapTokens, JoinServicer
from hakube.apiserver.metrics import MasterMetrics, NodeReadiness
from hakube.apiserver.nodeproxy import NODE_PROXY_SERVICE, NodeProxyServicer
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.ops import OPS_SERVICE, OpsServicer
from hakube.apiserver.rest.server import RestServer, default_listen
from hakube.apiserver.server import ApiServer
from hakube.apiserver.watch import WatchHub
from hakube.httpendpoint import Heartbeats, serve_http
from hakube.lifecycle import StartupError
from hakube.pki import certs as pki_certs
from hakube.pki.layout import Pki, PkiError, listen_hosts
from hakube.pki.tls import TlsFiles, scrape_refusal, server_context
from hakube.settings import internal, setting
from hakube.store import datadir
from hakube.store.fsm import StoreFSM
from hakube.store.leases import LeaseKeeper
from hakube.store.raft import RaftNode, RaftSettings
from hakube.store.snapshot import SnapshotError, read_meta
from hakube.store.snapshot import write_bytes as write_snapshot
from hakube.store.transport import REFUSAL_REASONS

log = logging.getLogger("hakube.master")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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


class Master:
    """A running master; ``run()`` blocks until ``stop()``."""

    def __init__(
        self,
        settings: MasterSettings,
        on_serving: Callable[[Pki, CollectorRegistry], None] | None = None,
    ) -> None:
        """``on_serving`` is called on the loop once the API serves (with the PKI in place and
        the registry /metrics serves), e.g. to start in-process components."""
        self.settings = settings
        self.on_serving = on_serving
        self.metrics = MasterMetrics()
        self.fsm = StoreFSM(history_size=settings.history_size)
        self.leases = LeaseKeeper(self.fsm)
        self.quorum_ok = False
        """A barrier committed recently: in a quorum with a leader."""
        self.bootstrapped = False
        self.ready = False
        """What /readyz and gRPC health report: quorum_ok and the default namespaces exist."""
        self.heartbeats = Heartbeats(settings.stall_after)
        """The event loop and the Raft thread beat here; /readyz is false while one is
        silent (it is answered from the HTTP thread, which a wedged loop does not stop)."""
        self._stopping: asyncio.Event | None = None
        self._lock_fd: int | None = None
        self.raft: RaftNode | None = None
        self.objects: ObjectAPI | None = None
        self.api_port = 0
        self.k8s_api_port = 0
        self.metrics_port = 0
        self._http: ThreadingHTTPServer | None = None
        self._https: ThreadingHTTPServer | None = None
        self.metrics_tls_port = 0
        self._tls: TlsFiles | None = None
        self._cert_expiry = CertExpiry()
        self._nodes = NodeReadiness(self._stored_nodes)
        self.membership: datadir.Membership | None = None
        self.exit_reason = ""
        self.pki: Pki | None = None
        """Set when the master stops itself (e.g. it was removed from the cluster)."""
        self.transformer = Transformer()
        """Seals and opens Secrets; shared by the API, the watch hub and the token reader, and
        replaced in place by ``reload_encryption`` (SIGHUP)."""

    # -- setup --------------------------------------------------------------------------------

    def _lock_data_dir(self) -> None:
        d = self.settings.data_dir
        try:
            datadir.ensure_private_dir(d)
            fd = os.open(os.path.join(d, "LOCK"), os.O_RDWR | os.O_CREAT, 0o600)
        except datadir.DataDirError as exc:
            raise StartupError(f"hakube master: {exc}") from exc
        except OSError as exc:
            raise StartupError(f"hakube master: data dir {d}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StartupError(f"hakube master: data dir {d} is in use by another master") from exc
        self._lock_fd = fd

    @property
    def api_advertise(self) -> str:
        """The API address other masters and clients should use: the listen address, or, when
        it is a wildcard (0.0.0.0 / ::), this master's Raft host with the API port."""
        host, _, port = self.settings.api_listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = self.settings.raft_listen.rpartition(":")[0]
        return f"{host}:{port}"

    def _prepare_membership(self) -> dict[str, str]:
        """Decide the Raft peers: members.json when the data dir has one (the flags only seed a
        new data dir), after --force-new-cluster has rewritten it if asked."""
        s = self.settings
        try:
            if s.force_new_cluster:
                log.warning(
                    "%s",
                    datadir.force_new_cluster(
                        s.data_dir, name=s.name, raft=s.raft_listen, api=self.api_advertise
                    ),
                )
            m = datadir.read_members(s.data_dir)
            if m is None:
                m = datadir.Membership(name=s.name, raft=s.raft_listen, peers=dict(s.peers))
                datadir.write_members(s.data_dir, m)
        except (datadir.DataDirError, OSError) as exc:
            raise StartupError(f"hakube master: {exc}") from exc
        if m.name != s.name:
            raise StartupError(
                f"hakube master: data dir {s.data_dir} belongs to master {m.name!r}, "
                f"not {s.name!r}; a new member needs an empty data dir"
            )
        if m.raft != s.raft_listen:
            raise StartupError(
                f"hakube master: data dir {s.data_dir} was created for raft address "
                f"{m.raft}, not {s.raft_listen}; a member's raft address cannot "
                "change: remove it and add a new member instead"
            )
        if s.peers and s.peers != m.peers:
            log.warning(
                "ignoring --peers %s: this data dir's membership is %s (members.json)",
                s.peers,
                m.peers,
            )
        self.membership = m
        return dict(m.peers)

    def _prepare_pki(self, peers: dict[str, str]) -> TlsFiles:
        """This master's TLS material: the CA (made here only for a new cluster of one) and its
        own certificate, issued or re-issued when it does not cover the listen addresses."""
        s = self.settings
        pki = Pki(s.pki_dir or os.path.join(s.data_dir, "pki"))
        try:
            if not pki.has_ca():
                if peers:
                    raise StartupError(
                        f"hakube master: no cluster CA in {pki.root}: copy ca.crt and ca.key "
                        "from the first master there, or run `hakube certs init`"
                    )
                pki.init_ca()
                log.info("created a new cluster CA in %s", pki.root)
            hosts = listen_hosts(s.api_listen, s.raft_listen, self.api_advertise) + list(
                s.cert_sans
            )
            pki.ensure_master(s.name, hosts)
            files = pki.master_tls(s.name)
            files.check()
        except (PkiError, pki_certs.CertError, OSError) as exc:
            raise StartupError(f"hakube master: {exc}") from exc
        self.pki = pki
        return files

    def _sync_membership(self) -> None:
        """Keep members.json and the address->name map equal to the Raft configuration."""
        raft, m = self.raft, self.membership
        assert raft is not None and m is not None
        with self.fsm.lock:
            registry = dict(self.fsm.members)
            cluster_id = self.fsm.cluster_id
        names = {addr: name for name, addr in m.peers.items()}
        names.update({addr: name for name, (addr, _) in registry.items()})
        names[m.raft] = m.name
        raft.addr_to_name = names
        peers = {names.get(a, a): a for a in raft.raft_peers()}
        cluster_id = cluster_id or m.cluster_id
        if peers != m.peers or cluster_id != m.cluster_id:
            log.info("membership of %s is now %s", m.name, peers)
            self.membership = datadir.Membership(
                name=m.name, raft=m.raft, peers=peers, cluster_id=cluster_id
            )
            datadir.write_members(self.settings.data_dir, self.membership)

    async def _membership_loop(self, api: ObjectAPI) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(0.3)
            try:
                self._sync_membership()
            except (OSError, RuntimeError) as exc:  # e.g. a full disk: retried next round
                log.warning("could not record the membership: %s", exc)
                continue
            if s.name in self.fsm.removed:
                self.exit_reason = (
                    f"hakube master: {s.name} was removed from the cluster; its "
                    f"data dir {s.data_dir} is stale. Wipe it and join as a new "
                    "member under a new name"
                )
                log.error("%s", self.exit_reason)
                self.stop()
                return
            if not self.quorum_ok:
                continue
            try:
                if self.fsm.members.get(s.name) != (s.raft_listen, self.api_advertise):
                    await api.propose(("ms", s.name, s.raft_listen, self.api_advertise))
                if not self.fsm.cluster_id:
                    assert self.membership is not None
                    await api.propose(("mc", self.membership.cluster_id or uuid.uuid4().hex[:16]))
            except ApiError as exc:
                log.info("member registration deferred: %s", exc)

    async def _snapshot_loop(self, ops: OpsServicer) -> None:
        """Scheduled snapshots: every master keeps its own, so a backup survives the loss of
        any one host. A failure (e.g. no quorum for the read barrier) is logged and retried at
        the next interval; it never affects serving."""
        s = self.settings
        while True:
            await asyncio.sleep(s.snapshot_interval)
            try:
                data = await ops.snapshot_bytes()
                rev = read_meta(data)[0]["revision"]
                # The revision zero-padded: names sort in the order taken, also within a second
                # (retention deletes the first ones in that order).
                path = os.path.join(
                    s.snapshot_dir,
                    time.strftime(
                        f"hakube-{s.name}-%Y%m%dT%H%M%SZ-r{rev:012d}.snap", time.gmtime()
                    ),
                )
                await asyncio.to_thread(write_snapshot, path, data)
                kept = sorted(
                    f
                    for f in os.listdir(s.snapshot_dir)
                    if f.startswith(f"hakube-{s.name}-") and f.endswith(".snap")
                )
                for old in kept[: -s.snapshot_retain]:
                    os.unlink(os.path.join(s.snapshot_dir, old))
                log.info("scheduled snapshot %s (%d bytes)", path, len(data))
            except (ApiError, OSError, SnapshotError) as exc:
                log.warning("scheduled snapshot failed: %s", exc)

    def _start_http(self) -> None:
        common: dict[str, Any] = {
            "ready": self._serving_ready,
            "not_ready": b"not ready: no quorum with a leader\n",
        }
        if self.settings.metrics_listen:
            self._http = serve_http(
                self.settings.metrics_listen,
                self.metrics.registry,
                "hakube master",
                remote_ok=self.settings.metrics_remote_ok,
                **common,
            )
            self.metrics_port = self._http.server_address[1]
        if self.settings.metrics_tls_listen:
            assert self._tls is not None
            self._https = serve_http(
                self.settings.metrics_tls_listen,
                self.metrics.registry,
                "hakube master",
                tls=server_context(self._tls),
                authorize=scrape_refusal,
                **common,
            )
            self.metrics_tls_port = self._https.server_address[1]

    def _serving_ready(self) -> bool:
        stalled = self.heartbeats.stalled()
        if stalled:
            log.warning(
                "master %s: %s silent for %s; /readyz reports not ready",
                self.settings.name,
                " and ".join(stalled),
                " and ".join(f"{v:.1f} s" for v in stalled.values()),
            )
        return self.ready and not stalled

    async def _heartbeat_loop(self) -> None:
        while True:
            self.heartbeats.beat("event loop")
            await asyncio.sleep(self.settings.stall_after / 8)

    def _state(self) -> dict[str, Any]:
        raft = self.raft
        st = raft.status() if raft else {}
        return {
            "term": st.get("raft_term", 0),
            "leader": 1 if raft and raft.is_leader() else 0,
            "commit_index": st.get("commit_idx", 0),
            "applied_index": st.get("last_applied", 0),
            "log_entries": st.get("log_len", 0),
            "leader_changes": raft.leader_changes if raft else 0,
            "journal_syncs": raft.durable.syncs if raft and raft.durable else 0,
            "ready": 1 if self.ready else 0,
            "revision": self.fsm.revision,
            "size_bytes": self.fsm.size_bytes,
            "quota_bytes": self.settings.quota_bytes,
            "quota_alarm": self.objects is not None and self.objects.quota_alarm,
            "objects": {k: self.fsm.count(k) for k in self.fsm.kinds()},
            "has_leader": 1 if raft and raft.leader_name() else 0,
            "leaders_seen": raft.leaders_seen if raft else 0,
            "proposals_pending": raft.proposer.pending() if raft else 0,
            "proposals_failed": dict(raft.proposer.failed) if raft else {},
            "follower_lag": self._follower_lag(),
            "cert_expiry": self._cert_expiry.seconds_left(self._cert_files()),
            "nodes": self._nodes.counts(),
        }

    def _stored_nodes(self) -> dict[Any, Any]:
        with self.fsm.lock:
            return dict(self.fsm.objects.get("Node", {}))

    def _follower_lag(self) -> dict[str, int]:
        """On the leader: entries each follower is behind (by member name; empty elsewhere)."""
        raft = self.raft
        if raft is None:
            return {}
        last = raft.last_log_index()
        return {
            raft.addr_to_name.get(addr, "unknown"): max(0, last - match)
            for addr, (match, _) in raft.progress().items()
        }

    def _cert_files(self) -> dict[str, str]:
        if self._tls is None:
            return {}
        return {"ca": self._tls.ca, "master": self._tls.cert}

    def cluster_status(self) -> api_pb2.ClusterStatusResponse:
        raft = self.raft
        assert raft is not None
        st = raft.status()
        leader = raft.leader_name()
        resp = api_pb2.ClusterStatusResponse(
            name=self.settings.name,
            leader=leader,
            term=st.get("raft_term", 0),
            commit_index=st.get("commit_idx", 0),
            applied_index=st.get("last_applied", 0),
            revision=self.fsm.revision,
            ready=self.ready,
            raft_state={0: "follower", 1: "candidate", 2: "leader"}.get(
                st.get("state", 0), "unknown"
            ),
            log_entries=st.get("log_len", 0),
            store_bytes=self.fsm.size_bytes,
            objects=sum(self.fsm.count(k) for k in self.fsm.kinds()),
        )
        resp.members.add(
            name=self.settings.name,
            raft_address=self.settings.raft_listen,
            api_address=self.settings.api_listen,
            leader=leader == self.settings.name,
            connected=True,
            voter=True,
            match_index=st.get("last_applied", 0),
        )
        peers = {raft.addr_to_name.get(a, a): a for a in raft.raft_peers()}
        for name, addr in sorted(peers.items()):
            resp.members.add(
                name=name,
                raft_address=addr,
                leader=leader == name,
                voter=True,
                api_address=self.fsm.members.get(name, ("", ""))[1],
                connected=st.get(f"partner_node_status_server_{addr}", 0) == 2,
                match_index=st.get(f"match_idx_server_{addr}", 0),
            )
        return resp

    # -- loops --------------------------------------------------------------------------------

    async def _readiness_loop(self, api: ObjectAPI, server: ApiServer, hub: WatchHub) -> None:
        s = self.settings
        lost_since: float | None = None
        while True:
            try:
                await asyncio.wait_for(api.barrier(), timeout=s.ready_timeout)
                ready = True
            except (ApiError, TimeoutError):
                ready = False
            self.quorum_ok = ready
            now = time.monotonic()
            if ready:
                if lost_since is not None and hub.refusing is not None:
                    log.info("master %s: quorum regained; serving watches again", s.name)
                lost_since = None
                hub.refuse(None)
            else:
                lost_since = now if lost_since is None else lost_since
                if now - lost_since >= s.watch_quorum_grace and hub.refusing is None:
                    log.warning(
                        "master %s: no quorum for %.1f s; ending watch streams",
                        s.name,
                        now - lost_since,
                    )
                    hub.refuse(
                        f"master {s.name} is cut off from the majority; watch another master"
                    )
            ready = ready and self.bootstrapped
            if ready != self.ready:
                log.info("master %s is %s", s.name, "ready" if ready else "NOT ready")
                self.ready = ready
                await server.set_serving(ready)
            await asyncio.sleep(s.ready_interval)

    async def _lease_loop(self, api: ObjectAPI) -> None:
        while True:
            await asyncio.sleep(0.5)
            expired = self.leases.expired()
            if expired:
                try:
                    await api.propose(("lx", expired))
                except ApiError:
                    pass

    def _load_encryption(self) -> Transformer:
        path = self.settings.encryption_provider_config
        if not path:
            return Transformer()
        try:
            return encryption.load_config(path)
        except encryption.EncryptionConfigError as exc:
            raise StartupError(f"hakube master: {exc}") from exc

    def reload_encryption(self) -> None:
        """SIGHUP: re-read --encryption-provider-config. A file that is unusable, or whose keys
        cannot open the Secrets this replica holds, is refused with one logged line and the
        old keys stay in use."""
        path = self.settings.encryption_provider_config
        if not path:
            log.warning("SIGHUP: no --encryption-provider-config to reload")
            return
        try:
            new = encryption.load_config(path)
        except encryption.EncryptionConfigError as exc:
            log.error("encryption config not reloaded, the old keys stay in use: %s", exc)
            return
        problem = encryption.check_stored(self.fsm, new)
        if problem is not None:
            log.error("encryption config not reloaded, the old keys stay in use: %s", problem)
            return
        self.transformer.replace(new)
        log.info("reloaded encryption config %s: writes use %s", path, new.describe())

    def _open_audit(self) -> AuditLog | None:
        if not self.settings.audit.path:
            return None
        try:
            return AuditLog(self.settings.audit)
        except AuditError as exc:
            raise StartupError(f"hakube master: {exc}") from exc

    def _check_keys(self, transformer: Transformer) -> bool:
        """The start-up key check (after a barrier, so this replica holds every committed
        Secret): a master whose keys cannot open what is stored stops with one line rather
        than serve errors for every Secret read."""
        problem = encryption.check_stored(self.fsm, transformer)
        if problem is None:
            return True
        self.exit_reason = f"hakube master: cannot decrypt stored data: {problem}"
        log.error("%s", self.exit_reason)
        self.stop()
        return False

    async def _bootstrap(self, api: ObjectAPI) -> None:
        """Create the standard namespaces once; fixed request ids make every master's attempt
        the same write, deduplicated by the store. Then check the encryption keys against the
        stored Secrets; the master reports ready only after both."""
        while True:
            while not self.quorum_ok:
                await asyncio.sleep(0.05)
            try:
                for ns in BOOTSTRAP_NAMESPACES:
                    if self.fsm.get("Namespace", "", ns) is not None:
                        continue
                    obj = kinds.wrap(core_pb2.Namespace(metadata={"name": ns}))
                    try:
                        await api.create(
                            api_pb2.CreateRequest(
                                object=obj, request_id=f"bootstrap/namespace/{ns}"
                            )
                        )
                    except AlreadyExists:
                        pass
                # The default roles before readiness, so components never meet an empty RBAC.
                await api.barrier()
                await rbac_defaults.reconcile(api)
            except ApiError as exc:
                log.info("bootstrap of namespaces and default roles deferred: %s", exc)
                await asyncio.sleep(0.2)
                continue
            if self._check_keys(api.transformer):
                self.bootstrapped = True
            return

    async def _rbac_defaults_loop(self, api: ObjectAPI) -> None:
        """Recreate deleted default roles and restore edited ones (on the leader only, so the
        masters do not race each other)."""
        while True:
            await asyncio.sleep(self.settings.rbac_reconcile_interval)
            if not (self.bootstrapped and self.raft is not None and self.raft.is_leader()):
                continue
            try:
                await rbac_defaults.reconcile(api)
            except ApiError as exc:
                log.info("reconciling the default roles deferred: %s", exc)

    # -- run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        self._lock_data_dir()
        transformer = self.transformer
        transformer.replace(self._load_encryption())
        audit_log = self._open_audit()
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        hub = WatchHub(self.fsm, self.metrics, transformer=transformer)
        hub.attach(loop)
        peers = self._prepare_membership()
        tls = self._prepare_pki(peers)
        self._tls = tls
        ca_name = pki_certs.identity_of(tls.load_ca_cert()).user
        raft_settings = RaftSettings(
            name=s.name,
            raft_address=s.raft_listen,
            peers=peers,
            data_dir=s.data_dir,
            tls=tls,
            **s.raft,
        )
        for reason in REFUSAL_REASONS:
            self.metrics.raft_refused.labels(reason)
        self.raft = RaftNode(
            raft_settings,
            self.fsm,
            on_latency=self.metrics.observe_batch,
            on_refused=self.metrics.raft_refused_connection,
        )
        self.raft.on_leadership(self.leases.on_leadership)
        if self.raft.durable is not None:
            self.raft.durable.on_sync = self.metrics.journal_fsync.observe
        self.heartbeats.beat("raft thread")
        self.raft.syncobj.addOnTickCallback(lambda: self.heartbeats.beat("raft thread"))
        self.metrics.add_state_collector(self._state)
        api = ObjectAPI(
            self.fsm,
            self.raft.proposer,
            clock=time.time,
            quota_bytes=s.quota_bytes,
            pod_security=PodSecurity(self.fsm, s.pod_security_default),
            transformer=transformer,
        )
        self.objects = api
        tokens = BootstrapTokens(self.fsm, transformer=transformer)
        authorizer = Authorizer(self.fsm, s.authorization_mode)
        if s.authorization_mode == "AlwaysAllow":
            log.warning(
                "master %s: AUTHORIZATION IS OFF (--authorization-mode=AlwaysAllow): "
                "every authenticated caller may do anything, read every Secret, take "
                "snapshots and remove masters. Use only to measure; never in a real "
                "cluster.",
                s.name,
            )
        server = ApiServer(
            api,
            hub,
            self.metrics,
            self.cluster_status,
            authenticator=Authenticator(ca_name, bootstrap=tokens.identity),
            authorizer=authorizer,
            audit=audit_log,
            flow=FlowControl(s.flow, self.metrics.registry),
        )
        review = ReviewServicer(authorizer)
        server.extra_services[AUTHORIZATION_SERVICE] = review.handlers(server.unary)
        ops = OpsServicer(
            name=s.name,
            raft_address=s.raft_listen,
            api_address=self.api_advertise,
            fsm=self.fsm,
            raft=self.raft,
            api=api,
        )
        server.extra_services[OPS_SERVICE] = ops.handlers(server.unary, server.authenticate)
        assert self.pki is not None
        server.extra_services[JOIN_SERVICE] = JoinServicer(self.pki).handlers(server.unary)
        server.bootstrap_methods.update(BOOTSTRAP_METHODS)
        proxy = NodeProxyServicer(self.fsm, tls)
        server.extra_services[NODE_PROXY_SERVICE] = proxy.handlers(
            server.unary, server.authenticate
        )
        try:
            self.api_port = await server.start(s.api_listen, tls, extra_roots=tokens.roots)
        except (OSError, RuntimeError) as exc:
            self.raft.stop()
            raise StartupError(
                f"hakube master: cannot listen on {s.api_listen} for the API: {exc}"
            ) from exc
        await server.set_serving(False)
        rest: RestServer | None = None
        if s.k8s_api_listen != "off":
            rest = RestServer(
                server,
                server.authenticator,
                tls,
                review=review.access_review,
                logs=proxy.log_stream,
                exec_=proxy.exec_as_caller,
            )
            listen = s.k8s_api_listen or default_listen(s.api_listen)
            try:
                self.k8s_api_port = await rest.start(listen)
            except OSError as exc:
                if not s.k8s_api_listen:
                    # Only the derived default is taken: the master serves on without it.
                    log.warning(
                        "master %s: the Kubernetes API is off: cannot listen on %s (%s); "
                        "choose an address with --k8s-api-listen",
                        s.name,
                        listen,
                        exc,
                    )
                    rest = None
                else:
                    await server.stop(0)
                    self.raft.stop()
                    raise StartupError(
                        f"hakube master: cannot listen on {listen} for the Kubernetes API: {exc}"
                    ) from exc
        self._start_http()
        if self.on_serving is not None:
            assert self.pki is not None
            self.on_serving(self.pki, self.metrics.registry)
        log.info(
            "master %s: api %s, kubernetes api %s, raft %s, metrics %s, peers %s",
            s.name,
            s.api_listen,
            s.k8s_api_listen or default_listen(s.api_listen),
            s.raft_listen,
            s.metrics_listen or "off",
            peers,
        )
        tasks = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._readiness_loop(api, server, hub)),
            asyncio.create_task(self._lease_loop(api)),
            asyncio.create_task(self._bootstrap(api)),
            asyncio.create_task(self._membership_loop(api)),
            asyncio.create_task(self._rbac_defaults_loop(api)),
        ]
        if s.snapshot_dir:
            os.makedirs(s.snapshot_dir, mode=0o700, exist_ok=True)
            tasks.append(asyncio.create_task(self._snapshot_loop(ops)))
        try:
            await self._stopping.wait()
        finally:
            for t in tasks:
                t.cancel()
            if rest is not None:
                await rest.stop()
            await server.stop(0.5)
            self.raft.stop()
            for http in (self._http, self._https):
                if http is not None:
                    http.shutdown()
            if audit_log is not None:
                audit_log.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def stop(self) -> None:
        """Ask ``run()`` to return (idempotent; call on the loop thread)."""
        if self._stopping is not None:
            self._stopping.set()


class CertExpiry:
    """Seconds until each certificate file expires, re-read only when the file changes (a
    renewal replaces it), so a scrape costs a stat per certificate."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, float]] = {}

    def seconds_left(self, paths: dict[str, str]) -> dict[str, float]:
        out = {}
        for name, path in paths.items():
            try:
                mtime = os.stat(path).st_mtime_ns
                seen = self._seen.get(path)
                if seen is None or seen[0] != mtime:
                    with open(path, "rb") as f:
                        cert = pki_certs.load_cert(f.read())
                    seen = self._seen[path] = (mtime, pki_certs.not_after(cert).timestamp())
            except (OSError, ValueError, pki_certs.CertError):
                continue
            out[name] = seen[1] - time.time()
        return out


def serve(
    settings: MasterSettings, on_serving: Callable[[Pki, CollectorRegistry], None] | None = None
) -> None:
    """Run a master until SIGTERM or SIGINT."""
    # The Raft thread and the API's event loop share the GIL. With the default 5 ms switch
    # interval, a Raft message that arrives while the loop is busy waits up to 5 ms before it is
    # even read, which stretches every commit round trip under load (and so the latency of every
    # write). Switching more often costs little next to that.
    sys.setswitchinterval(float(os.environ.get("HAKUBE_SWITCH_INTERVAL", "0.0005")))
    # Everything a master writes (journal, dumps, members.json, snapshots, audit log) holds
    # cluster state or secrets: owner-only, including the files pysyncobj creates itself.
    os.umask(0o077)
    master = Master(settings, on_serving)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, master.stop)
        loop.add_signal_handler(signal.SIGHUP, master.reload_encryption)
        await master.run()

    asyncio.run(main())
    if master.exit_reason:
        raise StartupError(master.exit_reason)
