"""Simulated nodes for tests and benchmarks, until (and besides) real node agents.

A ``SimNodes`` registers Node objects (Ready, with allocatable and labels), renews their
kube-node-lease Leases from one thread, and, when asked to ``run_pods``, plays the kubelet for
them: bound pods are marked Running and pods being deleted gracefully are finalised (deleted
with grace 0) once their grace period has passed, so evictions, preemption and drains complete
the way they would with a kubelet whose containers stop only when killed. ``stop_node`` stops
one node's lease renewals (a dead node); ``resume_node`` starts them again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hakube.api.timestamps import micro_time, rfc3339
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import errors
from hakube.client.client import Client
from hakube.client.informer import Informer

log = logging.getLogger("hakube.testing.simnodes")
LEASE_NS = "kube-node-lease"


def node_object(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> core_pb2.Node:
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


class SimNodes:
    def __init__(
        self, client: Client, *, renew_interval: float = 1.0, run_pods: bool = False
    ) -> None:
        self.client = client
        self.renew_interval = renew_interval
        self.run_pods = run_pods
        self.alive: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="simnodes", daemon=True)
        self._pods: Informer[pod_pb2.Pod] | None = None
        self._finalizing: dict[tuple[str, str], threading.Timer] = {}

    def add(self, name: str, **kw: Any) -> core_pb2.Node:
        """Register a node (create it, with its lease) and keep it alive."""
        node = self.client.nodes.create(node_object(name, **kw))
        self._renew(name)
        with self._lock:
            self.alive.add(name)
        return node

    def stop_node(self, name: str) -> None:
        with self._lock:
            self.alive.discard(name)

    def resume_node(self, name: str) -> None:
        self._renew(name)
        with self._lock:
            self.alive.add(name)

    def start(self) -> SimNodes:
        self._thread.start()
        if self.run_pods:
            self._pods = self.client.informer(pod_pb2.Pod)
            self._pods.add_handlers(on_add=self._pod, on_update=lambda o, n: self._pod(n))
            self._pods.start()
            self._pods.wait_for_sync(30)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._pods is not None:
            self._pods.stop()
        with self._lock:
            timers = list(self._finalizing.values())
        for t in timers:
            t.cancel()
        if self._thread.is_alive():
            self._thread.join(10)

    def __enter__(self) -> SimNodes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_interval):
            with self._lock:
                names = sorted(self.alive)
            for name in names:
                try:
                    self._renew(name)
                except errors.HakubeError as exc:
                    log.info("lease of %s: %s", name, exc)

    def _renew(self, name: str) -> None:
        now = micro_time()
        try:
            lease = self.client.leases.get(name, namespace=LEASE_NS)
        except errors.NotFound:
            lease = core_pb2.Lease(metadata={"name": name, "namespace": LEASE_NS})
            lease.spec.holder_identity = name
            lease.spec.lease_duration_seconds = 40
            lease.spec.renew_time = now
            self.client.leases.create(lease)
            return
        lease.spec.renew_time = now
        self.client.leases.update(lease)

    def _pod(self, pod: pod_pb2.Pod) -> None:
        node = pod.spec.node_name
        with self._lock:
            ours = node in self.alive
        if not ours:
            return
        ns, name = pod.metadata.namespace, pod.metadata.name
        if pod.metadata.deletion_timestamp:
            with self._lock:
                if (ns, name) not in self._finalizing:
                    grace = min(30, max(0, pod.metadata.deletion_grace_period_seconds))
                    t = threading.Timer(grace, self._finalize, (ns, name, pod.metadata.uid))
                    t.daemon = True
                    self._finalizing[(ns, name)] = t
                    t.start()
            return
        try:
            if pod.status.phase in ("", "Pending"):
                fresh = pod_pb2.Pod()
                fresh.CopyFrom(pod)
                fresh.status.phase = "Running"
                fresh.status.host_ip = "127.0.0.1"
                fresh.status.start_time = rfc3339()
                self.client.pods.update_status(fresh)
        except (errors.NotFound, errors.Conflict):
            pass
        except errors.HakubeError as exc:
            log.info("pod %s/%s on %s: %s", ns, name, node, exc)

    def _finalize(self, ns: str, name: str, uid: str) -> None:
        """The grace period is over: the "containers" are gone, so is the pod."""
        try:
            self.client.delete(pod_pb2.Pod, name, namespace=ns, grace_period_seconds=0, uid=uid)
        except errors.HakubeError as exc:
            log.info("finalise %s/%s: %s", ns, name, exc)
        finally:
            with self._lock:
                self._finalizing.pop((ns, name), None)
