"""``Master``: one member of the control plane, a ``hakube.lifecycle.Service``.

It composes the parts of this package, each doing one job: ``startup`` (data-dir lock, peers,
TLS material, keys, audit log: everything that can refuse to start), the Raft member with its
store (``hakube.store``), ``doors`` (the gRPC API and the Kubernetes REST door), ``endpoints``
(/metrics, /healthz, /readyz), ``readiness`` (quorum proven through the log, stalled threads),
``membership`` (members.json and the member registry), ``upkeep`` (bootstrap, leader-only
reconciles, lease expiry, scheduled snapshots), ``keys`` (the encryption-key check and reload)
and ``status`` (metrics state, ClusterStatus).

Threads: ``run()`` runs the API's asyncio event loop on the calling thread; pysyncobj runs the
Raft thread; the HTTP endpoints have threads of their own. ``stop()`` may come from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from prometheus_client import CollectorRegistry

from hakube.apiserver.admission import PodSecurity
from hakube.apiserver.encryption import Transformer
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.rest.server import default_listen
from hakube.apiserver.watch import WatchHub
from hakube.lifecycle import StartupError
from hakube.master import keys, startup, upkeep
from hakube.master.doors import Doors
from hakube.master.endpoints import HealthEndpoints
from hakube.master.membership import MembershipKeeper
from hakube.master.readiness import Readiness
from hakube.master.settings import MasterSettings
from hakube.master.status import Status
from hakube.pki.layout import Pki
from hakube.pki.tls import TlsFiles
from hakube.store.fsm import StoreFSM
from hakube.store.leases import LeaseKeeper
from hakube.store.raft import RaftNode, RaftSettings
from hakube.store.transport import REFUSAL_REASONS

log = logging.getLogger("hakube.master")


def tune_process() -> None:
    """What a master process sets before it starts (``hakube master``; not for tests that run
    a master in their own process)."""
    # The Raft thread and the API's event loop share the GIL. With the default 5 ms switch
    # interval, a Raft message that arrives while the loop is busy waits up to 5 ms before it is
    # even read, which stretches every commit round trip under load (and so the latency of every
    # write). Switching more often costs little next to that.
    sys.setswitchinterval(float(os.environ.get("HAKUBE_SWITCH_INTERVAL", "0.0005")))
    # Everything a master writes (journal, dumps, members.json, snapshots, audit log) holds
    # cluster state or secrets: owner-only, including the files pysyncobj creates itself.
    os.umask(0o077)


class Master:
    """A running master: ``run()`` blocks until ``stop()`` (or until the master stops itself:
    removed from the cluster, keys that cannot open the stored Secrets -- then ``run()``
    raises ``StartupError`` with the reason)."""

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
        self.readiness = Readiness(settings)
        self.ready = self.readiness.first_ready
        """Set once the master first reports ready (quorum, bootstrap done)."""
        self.transformer = Transformer()
        """Seals and opens Secrets; shared by the API, the watch hub and the token reader, and
        replaced in place by ``reload_encryption`` (SIGHUP)."""
        self.endpoints = HealthEndpoints()
        self.raft: RaftNode | None = None
        self.doors: Doors | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        """The API's event loop while ``run()`` runs."""
        self.exit_reason = ""
        """Set when the master stops itself (e.g. it was removed from the cluster)."""
        self._stop_requested = threading.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def api_port(self) -> int:
        return self.doors.api_port if self.doors else 0

    @property
    def k8s_api_port(self) -> int:
        return self.doors.k8s_api_port if self.doors else 0

    def run(self) -> None:
        """Serve until ``stop()``; ``StartupError`` if the master cannot start or stopped
        itself."""
        if self._stop_requested.is_set():
            return
        asyncio.run(self._main())
        if self.exit_reason:
            raise StartupError(self.exit_reason)

    def stop(self) -> None:
        """Ask ``run()`` to return (idempotent, from any thread, also before ``run()``)."""
        self._stop_requested.set()
        loop, ev = self.loop, self._stopping
        if loop is not None and ev is not None:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass  # the loop has finished already

    def _stop_itself(self, reason: str) -> None:
        self.exit_reason = reason
        log.error("%s", reason)
        self.stop()

    def reload_encryption(self) -> None:
        """SIGHUP: re-read --encryption-provider-config (see hakube.master.keys.reload)."""
        keys.reload(self.settings.encryption_provider_config, self.fsm, self.transformer)

    def _start_raft(self, peers: dict[str, str], tls: TlsFiles) -> RaftNode:
        s = self.settings
        for reason in REFUSAL_REASONS:
            self.metrics.raft_refused.labels(reason)
        raft = RaftNode(
            RaftSettings(
                name=s.name,
                raft_address=s.raft_listen,
                peers=peers,
                data_dir=s.data_dir,
                tls=tls,
                **s.raft,
            ),
            self.fsm,
            on_latency=self.metrics.observe_batch,
            on_refused=self.metrics.raft_refused_connection,
        )
        raft.on_leadership(self.leases.on_leadership)
        if raft.durable is not None:
            raft.durable.on_sync = self.metrics.journal_fsync.observe
        beats = self.readiness.heartbeats
        beats.beat("raft thread")
        raft.syncobj.addOnTickCallback(lambda: beats.beat("raft thread"))
        return raft

    async def _main(self) -> None:
        s = self.settings
        self._stopping = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        if self._stop_requested.is_set():
            return
        async with AsyncExitStack() as cleanup:
            lock_fd = startup.lock_data_dir(s.data_dir)
            cleanup.callback(os.close, lock_fd)
            self.transformer.replace(startup.encryption_keys(s.encryption_provider_config))
            audit = startup.audit_log(s)
            if audit is not None:
                cleanup.callback(audit.close)
            hub = WatchHub(self.fsm, self.metrics, transformer=self.transformer)
            hub.attach(self.loop)
            membership = startup.membership(s)
            peers = dict(membership.peers)
            pki, tls = startup.pki(s, peers)
            raft = self.raft = self._start_raft(peers, tls)
            cleanup.callback(raft.stop)
            api = ObjectAPI(
                self.fsm,
                raft.proposer,
                clock=time.time,
                quota_bytes=s.quota_bytes,
                pod_security=PodSecurity(self.fsm, s.pod_security_default),
                transformer=self.transformer,
            )
            status = Status(s, self.fsm, raft, self.readiness, api, tls)
            self.metrics.add_state_collector(status.state)
            doors = self.doors = Doors(
                s,
                fsm=self.fsm,
                raft=raft,
                api=api,
                hub=hub,
                metrics=self.metrics,
                pki=pki,
                tls=tls,
                audit=audit,
                cluster_status=status.cluster_status,
            )
            await doors.start()
            cleanup.push_async_callback(doors.stop)
            self.endpoints.start(s, self.metrics.registry, tls, self.readiness.serving_ready)
            cleanup.callback(self.endpoints.close)
            if self.on_serving is not None:
                self.on_serving(pki, self.metrics.registry)
            log.info(
                "master %s: api %s, kubernetes api %s, raft %s, metrics %s, peers %s",
                s.name,
                s.api_listen,
                s.k8s_api_listen or default_listen(s.api_listen),
                s.raft_listen,
                s.metrics_listen or "off",
                peers,
            )
            members = MembershipKeeper(
                s, self.fsm, raft, membership, self.readiness, self._stop_itself
            )
            loops = [
                self.readiness.heartbeat_loop(),
                self.readiness.barrier_loop(api, doors.server, hub),
                upkeep.lease_loop(self.leases, api),
                upkeep.bootstrap(api, self.fsm, self.readiness, self._stop_itself),
                members.loop(api),
                upkeep.rbac_defaults_loop(
                    api, s.rbac_reconcile_interval, self.readiness, raft.is_leader
                ),
            ]
            if s.snapshot_dir:
                os.makedirs(s.snapshot_dir, mode=0o700, exist_ok=True)
                loops.append(upkeep.snapshot_loop(s, doors.ops))
            tasks = [asyncio.create_task(c) for c in loops]
            try:
                await self._stopping.wait()
            finally:
                for t in tasks:
                    t.cancel()
