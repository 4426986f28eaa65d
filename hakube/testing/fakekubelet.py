"""The one fake kubelet of the test harness: nodes and pod phases without containers.

Controller and scheduler tests need nodes that exist and stay alive, and pods that run, become
Ready, and go away when deleted -- in process, in milliseconds, with the timing under the
test's control. ``FakeKubelet`` plays the kubelet of any number of nodes, and does what a
kubelet does with what is bound to them, no more:

* **Nodes**: ``add_node`` registers a Node (Ready, with capacity, labels and taints) and its
  Lease in ``kube-node-lease``, renewed every ``renew_interval`` seconds. ``stop_node`` stops
  the renewals and the node's pods are left as they are (a dead node); ``resume_node`` brings it
  back. For scale runs, ``spread=True`` renews each node at its own moment of the interval (as
  independent agents do, instead of all at once) from ``workers`` threads, and
  ``status_interval`` posts each node's status (its Ready heartbeat) that often, as an agent
  does when nothing changed; ``renew_errors`` and ``max_renew_gap`` say how well renewals kept
  up.
* **Running**: a pod bound to one of its live nodes (``spec.nodeName``; binding is the
  scheduler's job: run a real ``hakube scheduler`` or bind explicitly) that is Pending is
  marked Running ``ready_delay`` seconds after the fake kubelet first saw it bound, with the
  status ``running`` builds: a pod IP, running container states and conditions
  ContainersReady/Ready True. A pod for which ``never_ready(pod)`` is true is marked Running
  with Ready False (its "containers" run but never pass a readiness check).
* **Grace-period finalisation**: a pod being deleted gracefully is removed (deleted with grace
  0, as a kubelet does once containers have stopped) when its "containers" have stopped:
  ``stop_delay`` seconds after the fake kubelet first saw the deletion, or at the end of the
  pod's grace period, whichever comes first. ``stop_delay=0`` (the default) is containers that
  exit at once on SIGTERM; ``math.inf`` is containers that stop only when killed at the end of
  the grace period (evictions, preemption and drains then take their full grace).

``namespaces`` limits the pods it acts on (default: all); ``run_pods=False`` keeps the nodes
alive and leaves pods alone. It is a controller on the controllers' own worker
(``hakube.controllers.base``): level-triggered, with retries and back-off on errors.

Nothing else: no containers, no probes, no volumes, no node status beyond the heartbeat. To test
the real path -- containers, probes, volumes, restarts, the agent's own API -- run ``hakube agent``
processes on the simulated CRI (``hakube.local.agents.LocalAgents``, as ``hakube up`` does),
or on containerd. Use the fake kubelet when a test is about a controller or the scheduler and
needs pod phases on cue; use real agents when the test is about what happens on a node.

The functions at the end move one pod by hand, writing the status a kubelet would write
(``set_running``, ``set_finished``, ``finish_terminating``), for tests that step through
phases themselves.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hakube.api.timestamps import micro_time, rfc3339
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.client.events import EventRecorder
from hakube.controllers.base import Context, Controller, SharedInformers, key_of

log = logging.getLogger("hakube.testing.fakekubelet")
LEASE_NS = "kube-node-lease"
MAX_GRACE = 30.0
"""Longest grace period honoured, so a test never waits minutes for a pod asked to."""


def node_object(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> core_pb2.Node:
    """A Ready node with ``cpu``/``memory``/``pods`` as capacity and allocatable."""
    node = core_pb2.Node(metadata={"name": name})
    node.metadata.labels.update({"kubernetes.io/hostname": name, **(labels or {})})
    for t in taints or []:
        node.spec.taints.add(**t)
    res = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    node.status.capacity.update(res)
    node.status.allocatable.update(res)
    now = rfc3339()
    node.status.conditions.add(
        type="Ready",
        status="True",
        reason="KubeletReady",
        last_heartbeat_time=now,
        last_transition_time=now,
    )
    return node


class FakeKubelet:
    """See the module docstring. Use as a context manager."""

    def __init__(
        self,
        client: Client,
        *,
        namespaces: set[str] | None = None,
        ready_delay: float = 0.0,
        never_ready: Callable[[pod_pb2.Pod], bool] = lambda pod: False,
        stop_delay: float = 0.0,
        renew_interval: float = 1.0,
        run_pods: bool = True,
        spread: bool = False,
        workers: int = 4,
        status_interval: float = 0.0,
        pod_workers: int = 3,
    ) -> None:
        self.client = client
        self.namespaces = namespaces
        self.ready_delay = ready_delay
        self.never_ready = never_ready
        self.stop_delay = stop_delay
        self.renew_interval = renew_interval
        self.run_pods = run_pods
        self.spread = spread
        self.workers = workers
        self.status_interval = status_interval
        self.renew_errors = 0
        """Renewals and status posts that failed."""
        self.max_renew_gap = 0.0
        """Longest time between two successful renewals of one node's lease, seconds."""
        self._leases: dict[str, core_pb2.Lease] = {}
        self._renewed: dict[str, float] = {}
        self._status_at: dict[str, float] = {}
        self._nodes: dict[str, core_pb2.Node] = {}
        self._beating: set[str] = set()
        self.alive: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_loop, name="fakekubelet-leases", daemon=True
        )
        self._ctx = Context(
            client=client,
            informers=SharedInformers(client),
            leading=threading.Event(),  # set on stop: the workers end
            events=EventRecorder(client, "fake-kubelet"),
        )
        self._pods = _PodWorker(self._ctx, self)
        self._pods.workers = pod_workers

    # -- nodes --------------------------------------------------------------------------------

    def add_node(self, name: str, **kw: Any) -> core_pb2.Node:
        """Register a node (``node_object(name, **kw)``, and its lease) and keep it alive."""
        node = self.client.nodes.create(node_object(name, **kw))
        self._nodes[name] = node
        self._renew(name)
        with self._lock:
            self.alive.add(name)
        self._pods.requeue_node(name)
        return node

    def stop_node(self, name: str) -> None:
        """The node dies: no more lease renewals, its pods are left as they are."""
        with self._lock:
            self.alive.discard(name)

    def resume_node(self, name: str) -> None:
        with self._lock:
            self._renewed.pop(name, None)  # the gap while it was dead is not a renewal's
        self._renew(name)
        with self._lock:
            self.alive.add(name)
        self._pods.requeue_node(name)

    def is_alive(self, name: str) -> bool:
        with self._lock:
            return name in self.alive

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeKubelet:
        self._renewer.start()
        if self.run_pods:
            self._pods.setup()
            self._ctx.informers.start()
            if not self._ctx.informers.wait_synced(30):
                raise TimeoutError("fake kubelet: the pod informer did not sync within 30s")
            self._pods.run()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._ctx.leading.set()
        self._pods.stop()
        self._ctx.informers.stop()
        self._ctx.events.close()
        if self._renewer.is_alive():
            self._renewer.join(10)

    def __enter__(self) -> FakeKubelet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- leases -------------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        if self.spread:
            self._spread_loop()
            return
        while not self._stop.wait(self.renew_interval):
            with self._lock:
                names = sorted(self.alive)
            for name in names:
                try:
                    self._renew(name)
                except errors.HakubeError as exc:
                    log.info("lease of %s: %s", name, exc)

    def _spread_loop(self) -> None:
        """Each live node's renewal at its own point of the interval, written by a pool."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="fakekubelet-beat") as pool:
            while not self._stop.is_set():
                with self._lock:
                    names = sorted(self.alive)
                if not names:
                    self._stop.wait(self.renew_interval)
                    continue
                step, t0 = self.renew_interval / len(names), time.monotonic()
                for i, name in enumerate(names):
                    if self._stop.wait(max(0.0, t0 + i * step - time.monotonic())):
                        return
                    with self._lock:
                        if name in self._beating:
                            continue  # its last beat is still queued: do not pile up
                        self._beating.add(name)
                    try:
                        pool.submit(self._beat, name)
                    except RuntimeError:  # the interpreter is exiting
                        return
                self._stop.wait(max(0.0, t0 + self.renew_interval - time.monotonic()))

    def _beat(self, name: str) -> None:
        """One node's heartbeat: its lease, and its status when that is due."""
        try:
            self._beat_once(name)
        finally:
            with self._lock:
                self._beating.discard(name)

    def _beat_once(self, name: str) -> None:
        if not self.is_alive(name):
            return
        try:
            self._renew(name)
            due = self._status_at.get(name, 0.0) + self.status_interval
            if self.status_interval > 0 and time.monotonic() >= due:
                self._post_status(name)
        except errors.HakubeError as exc:
            with self._lock:
                self.renew_errors += 1
            log.info("heartbeat of %s: %s", name, exc)

    def _post_status(self, name: str) -> None:
        """The Ready heartbeat, written from the node last written (read only on a conflict)."""
        node = self._nodes.get(name)
        for attempt in range(2):
            if node is None or attempt:
                node = self.client.nodes.get(name)
            now = rfc3339()
            for c in node.status.conditions:
                c.last_heartbeat_time = now
            try:
                self._nodes[name] = self.client.nodes.update_status(node)
                break
            except errors.Conflict:
                if attempt:
                    raise
        self._status_at[name] = time.monotonic()

    def _renew(self, name: str) -> None:
        """Renew from the lease last written (one write, as an agent does); read it back only
        when someone else changed it."""
        now = micro_time()
        lease = self._leases.get(name)
        if lease is not None:
            lease.spec.renew_time = now
            try:
                self._renewed_now(name, self.client.leases.update(lease))
                return
            except (errors.Conflict, errors.NotFound):
                pass
        try:
            lease = self.client.leases.get(name, namespace=LEASE_NS)
        except errors.NotFound:
            lease = core_pb2.Lease(metadata={"name": name, "namespace": LEASE_NS})
            lease.spec.holder_identity = name
            lease.spec.lease_duration_seconds = 40
            lease.spec.renew_time = now
            self._renewed_now(name, self.client.leases.create(lease))
            return
        lease.spec.renew_time = now
        self._renewed_now(name, self.client.leases.update(lease))

    def _renewed_now(self, name: str, lease: core_pb2.Lease) -> None:
        at = time.monotonic()
        with self._lock:
            self._leases[name] = lease
            last = self._renewed.get(name)
            if last is not None and name in self.alive:
                self.max_renew_gap = max(self.max_renew_gap, at - last)
            self._renewed[name] = at


class _PodWorker(Controller):
    """The pods of the fake kubelet's nodes, reconciled on the controllers' worker."""

    name = "fake-kubelet"
    workers = 3

    def __init__(self, ctx: Context, kubelet: FakeKubelet) -> None:
        super().__init__(ctx)
        self.kubelet = kubelet
        self.informer = ctx.informers.get(pod_pb2.Pod)
        self._seen_bound: dict[tuple[str, str], float] = {}
        self._seen_deleting: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def setup(self) -> None:
        self.informer.add_handlers(
            on_add=self.enqueue,
            on_update=lambda old, new: self.enqueue(new),
            on_delete=self._forget,
        )

    def requeue_node(self, node: str) -> None:
        """A node came (back) to life: look at its pods again."""
        for pod in self.informer.list() if self.informer.has_synced else []:
            if pod.spec.node_name == node:
                self.enqueue(pod)

    def _forget(self, pod: pod_pb2.Pod) -> None:
        key = key_of(pod)
        with self._lock:
            self._seen_bound.pop(key, None)
            self._seen_deleting.pop(key, None)

    def _first_seen(self, seen: dict[tuple[str, str], float], key: tuple[str, str]) -> float:
        with self._lock:
            return seen.setdefault(key, time.monotonic())

    def _after(self, key: tuple[str, str], since: float, delay: float) -> bool:
        """Whether ``delay`` seconds have passed since ``since``; if not, come back then."""
        left = since + delay - time.monotonic()
        if left <= 0:
            return True
        self.queue.add_after(key, left)
        return False

    def sync(self, key: tuple[str, str]) -> None:
        pod = self.informer.get(key[1], key[0])
        if pod is None:
            return
        k = self.kubelet
        if k.namespaces is not None and pod.metadata.namespace not in k.namespaces:
            return
        if not pod.spec.node_name or not k.is_alive(pod.spec.node_name):
            return
        meta = pod.metadata
        try:
            if meta.deletion_timestamp:
                if not meta.HasField("deletion_grace_period_seconds"):
                    return  # not a graceful deletion: nothing for a kubelet to stop
                grace = min(MAX_GRACE, max(0.0, float(meta.deletion_grace_period_seconds)))
                since = self._first_seen(self._seen_deleting, key)
                if self._after(key, since, min(grace, k.stop_delay)):
                    self.client.pods.delete(
                        meta.name, namespace=meta.namespace, grace_period_seconds=0, uid=meta.uid
                    )
            elif pod.status.phase in ("", "Pending"):
                since = self._first_seen(self._seen_bound, key)
                if self._after(key, since, k.ready_delay):
                    self.client.pods.update_status(running(pod, ready=not k.never_ready(pod)))
        except (errors.NotFound, errors.Conflict):
            pass  # gone or changed; a newer event brings it back


# -- by hand -----------------------------------------------------------------------------------

_ips = itertools.count(2)


def next_ip() -> str:
    """A fresh pod IP in 10.244.0.0/16 (unique within this test process)."""
    n = next(_ips)
    return f"10.244.{n // 250}.{n % 250 + 1}"


def _write(client: Client, pod: pod_pb2.Pod) -> pod_pb2.Pod:
    """Write a status without a resourceVersion: the API server merges it into the current
    object."""
    pod.metadata.resource_version = ""
    return client.pods.update_status(pod)


def running(pod: pod_pb2.Pod, *, ip: str = "", ready: bool = True) -> pod_pb2.Pod:
    """A copy of ``pod`` with the status a kubelet reports once its containers run: phase
    Running, a pod IP (``ip``, the pod's own, or a fresh one), running container states, and
    conditions ContainersReady and Ready set to ``ready``."""
    out = pod_pb2.Pod()
    out.CopyFrom(pod)
    pod = out
    now = rfc3339()
    pod.status.phase = "Running"
    pod.status.pod_ip = ip or pod.status.pod_ip or next_ip()
    del pod.status.pod_ips[:]
    pod.status.pod_ips.add(ip=pod.status.pod_ip)
    pod.status.start_time = pod.status.start_time or now
    kept = [c for c in pod.status.conditions if c.type not in ("Ready", "ContainersReady")]
    del pod.status.conditions[:]
    pod.status.conditions.extend(kept)
    for type_ in ("ContainersReady", "Ready"):
        status = "True" if ready else "False"
        pod.status.conditions.add(type=type_, status=status, last_transition_time=now)
    del pod.status.container_statuses[:]
    for spec in pod.spec.containers:
        st = pod.status.container_statuses.add(name=spec.name, image=spec.image, ready=ready)
        st.state.running.started_at = now
    return pod


def set_running(
    client: Client, name: str, namespace: str = "default", *, ip: str = "", ready: bool = True
) -> pod_pb2.Pod:
    """By hand: phase Running with ``ip`` (a fresh one by default) and condition Ready=ready."""
    return _write(client, running(client.pods.get(name, namespace=namespace), ip=ip, ready=ready))


def set_finished(
    client: Client, name: str, namespace: str = "default", *, exit_code: int = 0
) -> pod_pb2.Pod:
    """By hand: phase Succeeded (exit code 0) or Failed, with terminated container states."""
    pod = client.pods.get(name, namespace=namespace)
    pod.status.phase = "Succeeded" if exit_code == 0 else "Failed"
    for c in pod.status.conditions:
        if c.type == "Ready":
            c.status = "False"
    del pod.status.container_statuses[:]
    for spec in pod.spec.containers:
        st = pod.status.container_statuses.add(name=spec.name, image=spec.image)
        st.state.terminated.exit_code = exit_code
        st.state.terminated.reason = "Completed" if exit_code == 0 else "Error"
        st.state.terminated.finished_at = micro_time()  # fractions: back-off is measured
    return _write(client, pod)


def finish_terminating(client: Client, pods: list[pod_pb2.Pod]) -> int:
    """By hand: remove the pods that are terminating, at once, whatever their grace period (as
    a kubelet does once their containers stopped); how many."""
    n = 0
    for p in pods:
        if p.metadata.deletion_timestamp:
            try:
                client.pods.delete(
                    p.metadata.name, namespace=p.metadata.namespace, grace_period_seconds=0
                )
                n += 1
            except errors.NotFound:
                pass
    return n
