"""``hakube master``: one member of the control plane.

It wires the pieces together: the Raft member with its store, the gRPC API, the metrics/health
HTTP endpoint, a readiness probe that proves quorum by committing a barrier through the log (so a
master cut off from the majority reports not-ready even if its TCP connections linger), the
leader's lease-expiry loop, and the bootstrap of the default namespaces.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hakube.api import kinds
from hakube.api.v1 import api_pb2, core_pb2
from hakube.apiserver.errors import AlreadyExists, ApiError
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.server import ApiServer
from hakube.apiserver.watch import WatchHub
from hakube.store.fsm import StoreFSM
from hakube.store.leases import LeaseKeeper
from hakube.store.raft import RaftNode, RaftSettings

log = logging.getLogger("hakube.master")
BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


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
    history_size: int = 20000
    """Watch history kept, in events; older resourceVersions get OUT_OF_RANGE."""
    ready_interval: float = 0.5
    """Seconds between readiness barriers."""
    ready_timeout: float = 1.5
    """A barrier slower than this marks the master not ready."""
    raft: dict[str, Any] = field(default_factory=dict)
    """Extra RaftSettings fields (election timeouts, sync_journal, ...)."""


class Master:
    """A running master; ``run()`` blocks until ``stop()``."""

    def __init__(self, settings: MasterSettings) -> None:
        self.settings = settings
        self.metrics = MasterMetrics()
        self.fsm = StoreFSM(history_size=settings.history_size)
        self.leases = LeaseKeeper(self.fsm)
        self.quorum_ok = False
        """A barrier committed recently: in a quorum with a leader."""
        self.bootstrapped = False
        self.ready = False
        """What /readyz and gRPC health report: quorum_ok and the default namespaces exist."""
        self._stopping: asyncio.Event | None = None
        self._lock_fd: int | None = None
        self.raft: RaftNode | None = None
        self.api_port = 0
        self.metrics_port = 0
        self._http: ThreadingHTTPServer | None = None

    # -- setup --------------------------------------------------------------------------------

    def _lock_data_dir(self) -> None:
        d = self.settings.data_dir
        try:
            os.makedirs(d, exist_ok=True)
            fd = os.open(os.path.join(d, "LOCK"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SystemExit(f"hakube master: data dir {d}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SystemExit(f"hakube master: data dir {d} is in use by another master") \
                from exc
        self._lock_fd = fd

    def _start_http(self) -> None:
        if not self.settings.metrics_listen:
            return
        master = self
        registry = self.metrics.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/metrics":
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path == "/healthz":
                    body, ctype, code = b"ok\n", "text/plain", 200
                elif self.path == "/readyz":
                    ok = master.ready
                    body = b"ok\n" if ok else b"not ready: no quorum with a leader\n"
                    ctype, code = "text/plain", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        host, _, port = self.settings.metrics_listen.rpartition(":")
        try:
            self._http = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise SystemExit(f"hakube master: cannot listen on {self.settings.metrics_listen} "
                             f"for metrics: {exc.strerror}") from exc
        self._http.daemon_threads = True
        self.metrics_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, name="metrics-http",
                         daemon=True).start()

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
            "objects": {k: self.fsm.count(k) for k in self.fsm.kinds()},
        }

    def cluster_status(self) -> api_pb2.ClusterStatusResponse:
        raft = self.raft
        assert raft is not None
        st = raft.status()
        leader = raft.leader_name()
        resp = api_pb2.ClusterStatusResponse(
            name=self.settings.name, leader=leader, term=st.get("raft_term", 0),
            commit_index=st.get("commit_idx", 0), applied_index=st.get("last_applied", 0),
            revision=self.fsm.revision, ready=self.ready,
            raft_state={0: "follower", 1: "candidate", 2: "leader"}.get(st.get("state", 0),
                                                                        "unknown"),
            log_entries=st.get("log_len", 0), store_bytes=self.fsm.size_bytes,
            objects=sum(self.fsm.count(k) for k in self.fsm.kinds()))
        resp.members.add(name=self.settings.name, raft_address=self.settings.raft_listen,
                         api_address=self.settings.api_listen, leader=leader ==
                         self.settings.name, connected=True, voter=True,
                         match_index=st.get("last_applied", 0))
        for name, addr in sorted(self.settings.peers.items()):
            resp.members.add(name=name, raft_address=addr, leader=leader == name, voter=True,
                             connected=st.get(f"partner_node_status_server_{addr}", 0) == 2,
                             match_index=st.get(f"match_idx_server_{addr}", 0))
        return resp

    # -- loops --------------------------------------------------------------------------------

    async def _readiness_loop(self, api: ObjectAPI, server: ApiServer) -> None:
        s = self.settings
        while True:
            try:
                await asyncio.wait_for(api.barrier(), timeout=s.ready_timeout)
                ready = True
            except (ApiError, TimeoutError):
                ready = False
            self.quorum_ok = ready
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

    async def _bootstrap(self, api: ObjectAPI) -> None:
        """Create the standard namespaces once; fixed request ids make every master's attempt
        the same write, deduplicated by the store."""
        while True:
            while not self.quorum_ok:
                await asyncio.sleep(0.05)
            try:
                for ns in BOOTSTRAP_NAMESPACES:
                    if self.fsm.get("Namespace", "", ns) is not None:
                        continue
                    obj = kinds.wrap(core_pb2.Namespace(metadata={"name": ns}))
                    try:
                        await api.create(api_pb2.CreateRequest(
                            object=obj, request_id=f"bootstrap/namespace/{ns}"))
                    except AlreadyExists:
                        pass
            except ApiError as exc:
                log.info("bootstrap of namespaces deferred: %s", exc)
                await asyncio.sleep(0.2)
                continue
            self.bootstrapped = True
            return

    # -- run ----------------------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        self._lock_data_dir()
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        hub = WatchHub(self.fsm, self.metrics)
        hub.attach(loop)
        raft_settings = RaftSettings(name=s.name, raft_address=s.raft_listen, peers=s.peers,
                                     data_dir=s.data_dir, **s.raft)
        self.raft = RaftNode(raft_settings, self.fsm, on_latency=self.metrics.observe_batch)
        self.raft.on_leadership(self.leases.on_leadership)
        self.metrics.add_state_collector(self._state)
        api = ObjectAPI(self.fsm, self.raft.proposer, clock=time.time)
        server = ApiServer(api, hub, self.metrics, self.cluster_status)
        try:
            self.api_port = await server.start(s.api_listen)
        except (OSError, RuntimeError) as exc:
            self.raft.stop()
            raise SystemExit(f"hakube master: cannot listen on {s.api_listen} for the API: "
                             f"{exc}") from exc
        await server.set_serving(False)
        self._start_http()
        log.info("master %s: api %s, raft %s, metrics %s, peers %s", s.name, s.api_listen,
                 s.raft_listen, s.metrics_listen or "off", s.peers)
        tasks = [asyncio.create_task(self._readiness_loop(api, server)),
                 asyncio.create_task(self._lease_loop(api)),
                 asyncio.create_task(self._bootstrap(api))]
        try:
            await self._stopping.wait()
        finally:
            for t in tasks:
                t.cancel()
            await server.stop(0.5)
            self.raft.stop()
            if self._http is not None:
                self._http.shutdown()
            if self._lock_fd is not None:
                os.close(self._lock_fd)

    def stop(self) -> None:
        """Ask ``run()`` to return (idempotent; call on the loop thread)."""
        if self._stopping is not None:
            self._stopping.set()


def serve(settings: MasterSettings) -> None:
    """Run a master until SIGTERM or SIGINT."""
    # The Raft thread and the API's event loop share the GIL. With the default 5 ms switch
    # interval, a Raft message that arrives while the loop is busy waits up to 5 ms before it is
    # even read, which stretches every commit round trip under load (and so the latency of every
    # write). Switching more often costs little next to that.
    sys.setswitchinterval(float(os.environ.get("HAKUBE_SWITCH_INTERVAL", "0.0005")))
    master = Master(settings)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, master.stop)
        await master.run()

    asyncio.run(main())
