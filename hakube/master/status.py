"""What a master reports about itself: the state its /metrics collector reads, and the answer
to ClusterStatus (``hakubectl cluster status``, the console)."""

from __future__ import annotations

import os
import time
from typing import Any

from hakube.api.v1 import api_pb2
from hakube.apiserver.metrics import NodeReadiness
from hakube.apiserver.objects import ObjectAPI
from hakube.master.readiness import Readiness
from hakube.master.settings import MasterSettings
from hakube.pki import certs as pki_certs
from hakube.pki.tls import TlsFiles
from hakube.store.fsm import StoreFSM
from hakube.store.raft import RaftNode


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


class Status:
    """Reads (never changes) the running master's parts; called from the HTTP and API
    threads."""

    def __init__(
        self,
        settings: MasterSettings,
        fsm: StoreFSM,
        raft: RaftNode,
        readiness: Readiness,
        objects: ObjectAPI,
        tls: TlsFiles,
    ) -> None:
        self.s = settings
        self.fsm = fsm
        self.raft = raft
        self.readiness = readiness
        self.objects = objects
        self.tls = tls
        self._cert_expiry = CertExpiry()
        self._nodes = NodeReadiness(self._stored_nodes)

    def state(self) -> dict[str, Any]:
        """For hakube.apiserver.metrics.MasterMetrics' collector."""
        raft = self.raft
        st = raft.status()
        return {
            "term": st.get("raft_term", 0),
            "leader": 1 if raft.is_leader() else 0,
            "commit_index": st.get("commit_idx", 0),
            "applied_index": st.get("last_applied", 0),
            "log_entries": st.get("log_len", 0),
            "leader_changes": raft.leader_changes,
            "journal_syncs": raft.durable.syncs if raft.durable else 0,
            "ready": 1 if self.readiness.readyz else 0,
            "revision": self.fsm.revision,
            "size_bytes": self.fsm.size_bytes,
            "quota_bytes": self.s.quota_bytes,
            "quota_alarm": self.objects.quota_alarm,
            "objects": {k: self.fsm.count(k) for k in self.fsm.kinds()},
            "has_leader": 1 if raft.leader_name() else 0,
            "leaders_seen": raft.leaders_seen,
            "proposals_pending": raft.proposer.pending(),
            "proposals_failed": dict(raft.proposer.failed),
            "follower_lag": self.follower_lag(),
            "cert_expiry": self._cert_expiry.seconds_left(
                {"ca": self.tls.ca, "master": self.tls.cert}
            ),
            "nodes": self._nodes.counts(),
        }

    def _stored_nodes(self) -> dict[Any, Any]:
        with self.fsm.lock:
            return dict(self.fsm.objects.get("Node", {}))

    def follower_lag(self) -> dict[str, int]:
        """On the leader: entries each follower is behind (by member name; empty elsewhere)."""
        raft = self.raft
        last = raft.last_log_index()
        return {
            raft.addr_to_name.get(addr, "unknown"): max(0, last - match)
            for addr, (match, _) in raft.progress().items()
        }

    def cluster_status(self) -> api_pb2.ClusterStatusResponse:
        raft, s = self.raft, self.s
        st = raft.status()
        leader = raft.leader_name()
        resp = api_pb2.ClusterStatusResponse(
            name=s.name,
            leader=leader,
            term=st.get("raft_term", 0),
            commit_index=st.get("commit_idx", 0),
            applied_index=st.get("last_applied", 0),
            revision=self.fsm.revision,
            ready=self.readiness.readyz,
            raft_state={0: "follower", 1: "candidate", 2: "leader"}.get(
                st.get("state", 0), "unknown"
            ),
            log_entries=st.get("log_len", 0),
            store_bytes=self.fsm.size_bytes,
            objects=sum(self.fsm.count(k) for k in self.fsm.kinds()),
        )
        resp.members.add(
            name=s.name,
            raft_address=s.raft_listen,
            api_address=s.api_listen,
            leader=leader == s.name,
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
