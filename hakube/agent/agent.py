"""The node agent: composition root and threads.

``Agent(settings).run()`` blocks until ``stop()`` (idempotent, any thread). Threads it owns:

* ``informer-pods``: list+watch of the pods with ``spec.nodeName=<node>``; handlers only put
  pod uids on the work queue.
* ``pod-worker-N`` (``settings.workers``): take a uid, ``PodSyncer.sync`` it, requeue it when it
  asks (back-off expiry) or failed (the API or the runtime away: retried with back-off).
* ``relist``: every ``relist_interval`` lists the runtime's containers and sandboxes (the
  kubelet's PLEG) and queues pods whose containers changed state, plus orphans; every
  ``resync_interval`` queues every pod.
* ``heartbeat``: renews the node Lease, refreshes node conditions.
* ``probes`` (+ a small pool), ``events-hakube-agent``, and the agent API server's pool.

Pods keep running when the masters are unreachable: nothing here stops a container because the
API is away; status writes fail and are retried until the masters answer again.
"""

from __future__ import annotations

import datetime
import fnmatch
import logging
import os
import threading
import time
from typing import Any, TypeVar

from hakube.agent import cgroupdriver, join, network, volumes, vxlan
from hakube.agent import node as nodemod
from hakube.agent.config import AgentSettings
from hakube.agent.metrics import AgentMetrics
from hakube.agent.podcgroup import PodCgroups
from hakube.agent.probes import ProbeManager
from hakube.agent.queue import WorkQueue
from hakube.agent.routes import PodRoutes
from hakube.agent.runtime import RuntimeView
from hakube.agent.server import AgentServer
from hakube.agent.stats import USAGE_ANNOTATION, usage_to_publish
from hakube.agent.worker import PodSyncer
from hakube.api.v1 import pod_pb2
from hakube.client import Client, HakubeError
from hakube.client.events import EventRecorder
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError
from hakube.cri.simulated import SimulatedCri, SimulatedRuntime
from hakube.cri.v1 import api_pb2 as cri_pb
from hakube.httpendpoint import new_registry, serve_http
from hakube.lifecycle import Running, Service, StartupError, stop_all
from hakube.pki.layout import NodePki
from hakube.pki.tls import scrape_refusal, server_context

log = logging.getLogger("hakube.agent")
P = TypeVar("P", bound=Service)

RUNNING = cri_pb.CONTAINER_RUNNING
SANDBOX_READY = cri_pb.SANDBOX_READY
SLOW_SYNC = 2.0
"""A reconcile slower than this (seconds) is logged: the runtime or the API is struggling."""
SIM_UNPULLABLE = ("*missing*", "*nonexistent*", "*does-not-exist*")
"""Image names the simulated runtime's registry does not have (to exercise ErrImagePull)."""


class Agent:
    """See the module docstring. ``cri``: a runtime client to use instead of the one the
    settings describe -- e.g. ``SimulatedFleet.client(node)``, so that hundreds of simulated
    agents in one process share one CRI server."""

    def __init__(
        self,
        settings: AgentSettings,
        *,
        capacity_cpu: str = "",
        capacity_memory: str = "",
        cri: CriClient | None = None,
    ) -> None:
        settings.validate()
        self.s = settings
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._parts: list[Running[Any]] = []
        """The agent's own services (API server, probes, pod routes), stopped together."""
        self._sim: SimulatedCri | None = None
        self.host_ip = nodemod.node_ip(settings.node_ip)
        # The node's certificate first (joining with the token if it has none): a failed join
        # must leave nothing started.
        node_pki = NodePki(settings.node_pki_dir())
        credentials = join.node_credentials(
            list(settings.servers),
            node_pki,
            settings.node_name,
            [self.host_ip],
            token=settings.token,
            ca_hash=settings.ca_cert_hash,
        )
        if cri is not None:
            self.cri = cri
        elif settings.runtime == "simulated":
            rt = SimulatedRuntime(
                node_name=settings.node_name,
                pullable=sim_pullable,
                pod_cidr=settings.pod_cidr or "10.244.0.0/24",
            )
            self._sim = SimulatedCri(rt).start()
            self.cri = CriClient(self._sim.endpoint)
        else:
            self.cri = CriClient(settings.cri_endpoint)
        self.cgroups: PodCgroups | None = None
        if settings.pod_cgroup_parent and self._sim is None and settings.runtime != "simulated":
            try:
                self.cgroups = PodCgroups(settings.pod_cgroup_parent, settings.node_name)
            except ValueError as e:
                raise StartupError(f"--pod-cgroup-parent: {e}") from e
        self.client = Client(list(settings.servers), credentials=credentials)
        self.renewer = join.CertRenewer(
            node_pki,
            settings.node_name,
            [self.host_ip],
            join.renew_through(self.client, settings.node_name),
            self.client.transport.set_credentials,
            renew_before=datetime.timedelta(seconds=settings.cert_renew_before),
        )
        self.metrics = AgentMetrics(new_registry())
        self.cri.on_call = self.metrics.observe_cri
        self._node_pki = node_pki
        self._http: list[Any] = []
        self.view = RuntimeView(self.cri, settings.node_name)
        self.capacity = nodemod.capacity(settings, capacity_cpu, capacity_memory)
        self.queue = WorkQueue()
        self.events = EventRecorder(self.client, "hakube-agent", host=settings.node_name)
        self.probes = ProbeManager(self.cri, self._probe_changed)
        self.probes.on_result = self.metrics.observe_probe
        self.server = AgentServer(
            self.view,
            settings.listen_address(self.host_ip),
            pki=node_pki,
            address=self.host_ip,
            simulated=settings.runtime == "simulated",
        )
        self.pods: Any = self.client.pods.informer(
            field_selector=f"spec.nodeName={settings.node_name}"
        )
        self._uids: dict[str, tuple[str, str]] = {}
        self._uids_lock = threading.Lock()
        self._network_ready = False
        self._network_cidr = ""
        self.routes: PodRoutes | None = None
        self.runtime_name = "containerd"
        self.syncer: PodSyncer | None = None
        self.reporter: nodemod.NodeReporter | None = None
        self.ready = threading.Event()
        """Set once the node is registered and the pod cache synced."""

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self._stop.is_set():
                return  # stopped before it ran: only release what __init__ made
            self._start()
            self._stop.wait()
        finally:
            self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    def _start_metrics(self) -> None:
        """The metrics endpoints (StartupError naming the address if one cannot be used)."""
        what = f"hakube agent {self.s.node_name}"
        if self.s.metrics_listen:
            self._http.append(serve_http(self.s.metrics_listen, self.metrics.registry, what))
        if self.s.metrics_tls_listen:
            self._http.append(
                serve_http(
                    self.s.metrics_tls_listen,
                    self.metrics.registry,
                    what,
                    tls=server_context(self._node_pki.tls_files()),
                    authorize=scrape_refusal,
                )
            )

    @property
    def metrics_ports(self) -> list[int]:
        return [int(h.server_address[1]) for h in self._http]

    def _start(self) -> None:
        self._start_metrics()
        version = self._wait_runtime()
        self.runtime_name = version.runtime_name
        if self.cgroups is not None:
            self._check_cgroup_driver()
        port = self._start_part(self.server, "agent-api").port
        self.reporter = nodemod.NodeReporter(
            self.client,
            self.s,
            self.cri,
            host_ip=self.host_ip,
            agent_port=port,
            cap=self.capacity,
            runtime_version=f"{version.runtime_name}://{version.runtime_version}",
            simulated=self._sim is not None or self.s.runtime == "simulated",
        )
        while not self._stop.is_set():
            try:
                node = self.reporter.register()
                self.reporter.renew_lease()
                self._setup_network(node.spec.pod_cidr)
                break
            except HakubeError as e:
                log.warning("cannot register node %s yet: %s", self.s.node_name, e)
                self._stop.wait(2)
        self._wait_pod_cidr()
        if self._routes_wanted():
            self.routes = PodRoutes(
                self.client,
                self.s.node_name,
                self.host_ip,
                on_own_cidr=self._setup_network,
                mode=self.s.pod_routes,
            )
            self._parts.append(Running.start(self.routes, name="pod-routes"))
        self.syncer = PodSyncer(
            settings=self.s,
            client=self.client,
            view=self.view,
            recorder=self.events,
            probes=self.probes,
            host_ip=self.host_ip,
            runtime_name=self.runtime_name,
            pod_network=lambda: self._network_ready,
            pod_lookup=self._pod,
            node_capacity=(self.capacity.cpu_millis, self.capacity.memory_bytes),
            on_started=self.metrics.pod_start.observe,
            cgroups=self.cgroups,
        )
        self.metrics.waiting_source = self.syncer.waiting_reasons
        self._start_part(self.probes, "probes")
        self.pods.add_handlers(
            on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod
        )
        self.pods.start()
        while not self._stop.is_set() and not self.pods.wait_for_sync(1):
            pass
        if self.pods.wait_for_sync(0):  # a complete list: what is not in it is gone
            live = {p.metadata.uid for p in self.pods.list()}
            gone = volumes.sweep(self.s.root_dir, live)
            if gone:
                log.info(
                    "removed the volumes of %d pods deleted while the agent was away", len(gone)
                )
            if self.cgroups is not None and (gone := self.cgroups.sweep(live)):
                log.info("removed the cgroups of %d pods deleted while away", len(gone))
        for i in range(self.s.workers):
            self._spawn(self._work, f"pod-worker-{i}")
        self._spawn(self._relist, "relist")
        self._spawn(self._heartbeat, "heartbeat")
        self._spawn(
            lambda: self.renewer.run(self._stop, self.s.cert_check_interval), "cert-renewal"
        )
        if self.s.usage_interval > 0:
            self._spawn(self._publish_usage, "usage")
        self.ready.set()
        log.info(
            "agent for node %s running (runtime %s, API port %d)",
            self.s.node_name,
            self.runtime_name,
            port,
        )

    def _wait_pod_cidr(self) -> None:
        """Without a podCIDR yet, give the controller-manager ``pod_cidr_wait`` seconds to
        allocate one before any pod runs (they would start on the host network otherwise)."""
        if self._network_cidr or not self._routes_wanted() or self.s.pod_cidr_wait <= 0:
            return
        deadline = time.monotonic() + self.s.pod_cidr_wait
        while time.monotonic() < deadline:
            try:
                cidr = self.client.nodes.get(self.s.node_name).spec.pod_cidr
            except HakubeError as e:
                log.debug("waiting for the podCIDR: %s", e)
                cidr = ""
            if cidr:
                self._setup_network(cidr)
                return
            if self._stop.wait(0.2):
                return
        log.warning(
            "node %s has no podCIDR after %.0fs (is the controller-manager running with "
            "--allocate-node-cidrs?); pods use the host network until it gets one",
            self.s.node_name,
            self.s.pod_cidr_wait,
        )

    def _routes_wanted(self) -> bool:
        """Whether this agent keeps routes to other nodes' pods: only with a real runtime
        whose pods get their own network (never for simulated nodes, which share the host)."""
        return (
            self.s.pod_routes != "off"
            and self.s.runtime != "simulated"
            and self.s.pod_network == "auto"
        )

    def _setup_network(self, node_cidr: str) -> None:
        """With a pod CIDR, give the runtime a CNI config and wait (up to 10 s) for it
        to report NetworkReady; pods that start before it use the host network. Called at
        registration and again when the Node gets its podCIDR later (from the controller-
        manager, seen by the route keeper); once per CIDR."""
        cidr = self.s.pod_cidr or node_cidr
        if not cidr or self.s.runtime == "simulated" or self.s.pod_network != "auto":
            return
        if cidr == self._network_cidr:
            return
        self._network_cidr = cidr
        path = network.write_config(
            self.s.cni_conf_dir,
            cidr,
            self.s.cni_bridge,
            os.path.join(self.s.root_dir, "cni-ipam"),
            mtu=vxlan.MTU if self.s.pod_routes == "vxlan" else 0,
            mode=self.s.cni_mode,
        )
        where = "routed veths" if self.s.cni_mode == "routed" else f"bridge {self.s.cni_bridge}"
        log.info("pod network %s on %s (CNI config %s)", cidr, where, path)
        deadline = time.monotonic() + 10
        while not self._check_network() and time.monotonic() < deadline:
            if self._stop.wait(0.2):
                return
        if not self._network_ready:
            log.warning(
                "the runtime does not report NetworkReady after the CNI config was "
                "written; pods use the host network until it does"
            )

    def _check_network(self) -> bool:
        """Whether pods get their own network (re-read from the runtime)."""
        try:
            ready = self.cri.conditions(timeout=5).get("NetworkReady", False)
        except CriError:
            return self._network_ready
        self._network_ready = self.s.pod_network == "auto" and ready
        return self._network_ready

    def _check_cgroup_driver(self) -> None:
        """Pod cgroups are cgroupfs paths: refuse to start on a runtime with the systemd
        driver (its containers would fail one by one instead)."""
        try:
            info = self.cri.info(timeout=5)
        except CriError as e:
            log.warning("cgroup driver of %s unknown: %s", self.cri.endpoint, e)
            return
        why = cgroupdriver.refusal(info, self.cri.endpoint)
        if why:
            raise StartupError(why)

    def _wait_runtime(self) -> Any:
        while True:
            try:
                version = self.cri.version(timeout=5)
                self._check_network()
                return version
            except CriError as e:
                log.warning("container runtime at %s not answering: %s", self.cri.endpoint, e)
                if self._stop.wait(2):
                    raise StartupError("stopped while waiting for the runtime") from e

    def _start_part(self, part: P, name: str) -> P:
        """Run one of the agent's own services on a thread; returns it once it serves (what
        it raised if it could not start)."""
        running = Running.start(part, name=name)
        self._parts.append(running)
        if not running.wait_ready(30):
            raise running.error or StartupError(f"hakube agent: {name} did not start in 30 s")
        return part

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _shutdown(self) -> None:
        """Stop our threads; containers keep running (a restarted agent adopts them)."""
        self._stop.set()
        if self.syncer is not None:  # first: no tmpfs mounted from now on (hakube.agent.gate)
            self.syncer.volume_gate.close(5)
        self.queue.close()
        self.pods.stop()
        for t in self._threads:
            t.join(5)
        stop_all(self._parts, 5)  # the probes, the agent API, the pod routes
        self.events.close()
        for http in self._http:
            http.shutdown()
        if self.syncer is not None:
            self.syncer.close()
        self.client.close()
        self.cri.close()
        if self._sim is not None:
            self._sim.stop()

    # -- pods -----------------------------------------------------------------------------------

    def _pod(self, uid: str) -> pod_pb2.Pod | None:
        with self._uids_lock:
            key = self._uids.get(uid)
        if key is None:
            return None
        pod = self.pods.get(key[1], key[0])
        return pod if pod is not None and pod.metadata.uid == uid else None

    def _on_pod(self, pod: pod_pb2.Pod) -> None:
        with self._uids_lock:
            self._uids[pod.metadata.uid] = (pod.metadata.namespace, pod.metadata.name)
        self.queue.add(pod.metadata.uid)

    def _on_pod_update(self, old: pod_pb2.Pod, new: pod_pb2.Pod) -> None:
        # Status-only changes are our own writes coming back; they need no reconcile.
        if old is not new and old.spec == new.spec and _meta(old) == _meta(new):
            return
        self._on_pod(new)

    def _probe_changed(self, uid: str, cid: str, kind: str, message: str) -> None:
        pod = self._pod(uid)
        if pod is not None and message:
            self.events.emit(
                pod, "Unhealthy", f"{kind.capitalize()} probe failed: {message}", warning=True
            )
        self.queue.add(uid)

    def _work(self) -> None:
        failures: dict[str, int] = {}
        while True:
            uid = self.queue.get()
            if uid is None:
                return
            assert self.syncer is not None
            t0 = time.monotonic()
            failed = True
            try:
                again = self.syncer.sync(uid)
                if time.monotonic() - t0 > SLOW_SYNC:
                    log.info("pod %s: reconcile took %.1fs", self._name(uid), time.monotonic() - t0)
                failures.pop(uid, None)
                failed = False
                if again is not None:
                    self.queue.add_after(uid, again)
            except (HakubeError, CriError) as e:
                n = failures[uid] = failures.get(uid, 0) + 1
                delay = min(10.0, 0.5 * 2 ** min(n, 5))
                log.warning("pod %s: %s; retrying in %.1fs", self._name(uid), e, delay)
                self.queue.add_after(uid, delay)
            except Exception:
                log.exception("pod %s: reconcile failed; retrying in 5s", self._name(uid))
                self.queue.add_after(uid, 5.0)
            finally:
                self.queue.done(uid)
                self.metrics.sync.observe(time.monotonic() - t0)
                if failed:
                    self.metrics.sync_errors.inc()

    def _name(self, uid: str) -> str:
        with self._uids_lock:
            key = self._uids.get(uid)
        return f"{key[0]}/{key[1]}" if key else uid

    def _relist(self) -> None:
        last: dict[str, tuple[str, int]] = {}
        next_resync = time.monotonic() + self.s.resync_interval
        while not self._stop.wait(self.s.relist_interval):
            t0 = time.monotonic()
            try:
                now = self.view.states()
            except CriError as e:
                log.warning("relist: %s", e)
                continue
            self.metrics.relist.observe(time.monotonic() - t0)
            self._count_running(now)
            changed = {uid for key, (uid, state) in now.items() if last.get(key) != (uid, state)}
            changed |= {uid for key, (uid, _) in last.items() if key not in now}
            last = now
            with self._uids_lock:
                known = set(self._uids)
            live = {p.metadata.uid for p in self.pods.list()}
            orphans = {uid for uid, _ in now.values() if uid and uid not in live}
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + self.s.resync_interval
                changed |= live
                with self._uids_lock:  # forget uids of pods that are gone and cleaned up
                    for uid in known - live - orphans:
                        self._uids.pop(uid, None)
            for uid in (changed | orphans) - {""}:
                self.queue.add(uid)

    def _count_running(self, states: dict[str, tuple[str, int]]) -> None:
        """Running containers and pods with a ready sandbox, from one relist."""
        containers = sum(
            1 for k, (_, st) in states.items() if not k.startswith("sandbox/") and st == RUNNING
        )
        pods = sum(
            1 for k, (_, st) in states.items() if k.startswith("sandbox/") and st == SANDBOX_READY
        )
        self.metrics.running_containers.set(containers)
        self.metrics.running_pods.set(pods)

    def _publish_usage(self) -> None:
        """Every ``usage_interval``: write each running pod's CPU usage into its
        ``metrics.hakube.io/cpu-usage`` annotation (for the autoscaler)."""
        while not self._stop.wait(self.s.usage_interval):
            try:
                stats = self.server.usage.collect()
            except CriError as e:
                log.warning("usage: %s", e)
                continue
            for u in stats.pods:
                pod = self.pods.get(u.name, u.namespace)
                value = None if pod is None else usage_to_publish(pod, u.cpu_nano_cores)
                if pod is None or value is None:
                    continue
                out = pod_pb2.Pod()
                out.CopyFrom(pod)
                out.metadata.annotations[USAGE_ANNOTATION] = value
                try:
                    self.client.pods.update(out)
                except HakubeError as e:  # changed meanwhile, gone, or masters away
                    log.debug("usage of %s/%s not written: %s", u.namespace, u.name, e)

    def _heartbeat(self) -> None:
        assert self.reporter is not None
        next_status = time.monotonic() + self.s.status_interval
        while not self._stop.wait(
            self.s.lease_interval
            if self.s.lease_interval < self.s.status_interval
            else self.s.status_interval
        ):
            try:
                self.reporter.renew_lease()
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.s.status_interval
                    self.reporter.update_status()
                    self._check_network()
            except HakubeError as e:
                log.warning("node heartbeat: %s", e)


def _meta(pod: pod_pb2.Pod) -> tuple[object, ...]:
    """What of a pod's metadata a reconcile depends on."""
    m = pod.metadata
    return (
        m.uid,
        m.deletion_timestamp,
        m.deletion_grace_period_seconds,
        sorted(m.labels.items()),
        sorted((k, v) for k, v in m.annotations.items() if k != USAGE_ANNOTATION),
    )


def sim_pullable(name: str) -> bool:
    """The simulated registry has every image but those matching ``SIM_UNPULLABLE``."""
    return not any(fnmatch.fnmatch(name, p) for p in SIM_UNPULLABLE)
