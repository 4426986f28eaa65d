"""The scheduling loop and the binder, for one leadership term at a time.

``Scheduler`` is the ``work(client, leading)`` of a leader-elected Component. Every term starts
from scratch: fresh informers (pods, nodes, priority classes), a fresh cache and queue, so
whatever happened during a failover is seen. One thread decides (decisions must see each other:
each is assumed into the cache before the next). Binds and events leave through one
``BatchWriter`` (many binds per Batch call, each still its own Bind: authorized, admitted and
audited as the unary call), its future's callback finishing each pod, so a slow write never
stalls decisions; a small pool writes the rarer results (status, deletions for preemption). The
writer is fenced by the term: once leadership is lost, nothing queued is sent.

A pod is ours when it has no node, its schedulerName is ours, and it is neither terminating nor
finished. Bind is a compare-and-swap on the pod (uid precondition; the API refuses a pod that is
already on another node), so a pod is never bound twice, even by two schedulers that both think
they lead.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import errors
from hakube.client.batch import BatchWriter
from hakube.client.client import Client
from hakube.client.events import EventRecorder
from hakube.client.informer import Informer
from hakube.scheduler import preemption
from hakube.scheduler.algorithm import decide
from hakube.scheduler.cache import Cache, occupies_node
from hakube.scheduler.explain import fit_error
from hakube.scheduler.metrics import SchedulerMetrics
from hakube.scheduler.podinfo import PodKey, pod_info
from hakube.scheduler.queue import QueuedPod, SchedulingQueue
from hakube.scheduler.status import mark_unschedulable, set_nominated
from hakube.settings import setting

log = logging.getLogger("hakube.scheduler")

BIND_TIMEOUT = 10.0
"""Seconds a Bind (or the scheduler's event) may take, retries included."""


@dataclass
class SchedulerConfig:
    """Knobs of ``hakube scheduler`` (each a setting: flag, HAKUBE_* variable, config key)."""

    name: str = setting("default-scheduler", flag="scheduler-name")
    """Schedule the pods whose spec.schedulerName is this."""
    bind_workers: int = setting(16, minimum=1)
    """Concurrent status and eviction writes (binds and events are batched instead)."""
    initial_backoff: float = setting(1.0, flag="pod-initial-backoff")
    """Seconds before the first retry of a pod that did not fit; doubles per attempt."""
    max_backoff: float = setting(10.0, flag="pod-max-backoff")
    """Cap of the retry back-off, seconds."""
    max_unschedulable_wait: float = setting(30.0, minimum=0)
    """Seconds: an unschedulable pod is retried at least this often even if nothing changes."""
    sync_timeout: float = setting(60.0, minimum=0)
    """Seconds a new term waits for the informer caches."""
    events: bool = True
    """Record Scheduled/FailedScheduling/Preempted events (--no-events: do not)."""

    def validate(self) -> None:
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("--pod-initial-backoff must be > 0 and <= --pod-max-backoff")


def is_pending(pod: pod_pb2.Pod, scheduler_name: str) -> bool:
    return (
        not pod.spec.node_name
        and (pod.spec.scheduler_name or "default-scheduler") == scheduler_name
        and not pod.metadata.deletion_timestamp
        and pod.status.phase not in ("Succeeded", "Failed")
        and not pod.spec.scheduling_gates  # waits until every gate is removed
    )


def pod_key(pod: pod_pb2.Pod) -> PodKey:
    return (pod.metadata.namespace, pod.metadata.name)


class Term:
    """The scheduler's state for one leadership term."""

    def __init__(self, sched: Scheduler, client: Client, leading: threading.Event) -> None:
        self.s = sched
        self.cfg = sched.config
        # A client of its own: a burst of binds must not queue the elector's lease renewals
        # behind it on one channel (a renewal that waits too long is a lost leadership).
        self.client = Client(
            client.servers,
            credentials=client.transport.credentials,
            timeout=client.settings.policy.timeout,
        )
        self.leading = leading
        self.writer = BatchWriter(self.client.transport, timeout=BIND_TIMEOUT, fence=leading.is_set)
        self.classes: Informer[core_pb2.PriorityClass] = client.informer(core_pb2.PriorityClass)
        self.nodes: Informer[core_pb2.Node] = client.informer(core_pb2.Node)
        self.pods: Informer[pod_pb2.Pod] = client.informer(pod_pb2.Pod)
        self.cache = Cache(self.priority_of)
        self.queue = SchedulingQueue(
            self.priority_of,
            initial_backoff=self.cfg.initial_backoff,
            max_backoff=self.cfg.max_backoff,
            max_wait=self.cfg.max_unschedulable_wait,
        )
        self.events = (
            EventRecorder(client, self.cfg.name, host=socket.gethostname(), writer=self.writer)
            if self.cfg.events
            else None
        )
        self.pool = ThreadPoolExecutor(self.cfg.bind_workers, thread_name_prefix="bind")
        self._start = 0

    # -- priorities ---------------------------------------------------------------------------

    def _class(self, pod: pod_pb2.Pod) -> core_pb2.PriorityClass | None:
        name = pod.spec.priority_class_name
        if name:
            return self.classes.get(name)
        for pc in self.classes.list():
            if pc.global_default:
                return pc
        return None

    def priority_of(self, pod: pod_pb2.Pod) -> int:
        if pod.spec.HasField("priority"):
            return pod.spec.priority
        pc = self._class(pod)
        return pc.value if pc is not None else 0

    def preemption_policy(self, pod: pod_pb2.Pod) -> str:
        if pod.spec.preemption_policy:
            return pod.spec.preemption_policy
        pc = self._class(pod)
        return (
            pc.preemption_policy
            if pc is not None and pc.preemption_policy
            else "PreemptLowerPriority"
        )

    # -- informer handlers --------------------------------------------------------------------

    def _pod_seen(self, pod: pod_pb2.Pod) -> None:
        key = pod_key(pod)
        if is_pending(pod, self.cfg.name):
            if key not in self.cache.assumed:
                self.queue.add(pod)
            return
        self.queue.delete(key)
        was_placed = self.cache.node_of(key) is not None
        self.cache.set_pod(pod)
        if was_placed and not occupies_node(pod):
            self.queue.move_all()  # a pod finished: room freed
        elif pod.metadata.deletion_timestamp:
            self.queue.move_all()  # a victim (or any pod) is going

    def _pod_gone(self, pod: pod_pb2.Pod) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        if self.cache.node_of(key) is not None:
            self.cache.remove_pod(key)
            self.queue.move_all()

    def _node_changed(self, node: core_pb2.Node) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_gone(self, node: core_pb2.Node) -> None:
        self.cache.remove_node(node.metadata.name)

    def start_informers(self) -> bool:
        self.classes.start()
        if not self.classes.wait_for_sync(self.cfg.sync_timeout):
            return False
        self.nodes.add_handlers(
            on_add=self._node_changed,
            on_update=lambda old, new: self._node_changed(new),
            on_delete=self._node_gone,
        )
        self.pods.add_handlers(
            on_add=self._pod_seen,
            on_update=lambda old, new: self._pod_seen(new),
            on_delete=self._pod_gone,
        )
        self.nodes.start()
        self.pods.start()
        return self.nodes.wait_for_sync(self.cfg.sync_timeout) and self.pods.wait_for_sync(
            self.cfg.sync_timeout
        )

    def stop(self) -> None:
        self.queue.close()
        for inf in (self.pods, self.nodes, self.classes):
            inf.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.events is not None:
            self.events.close()
        self.writer.close()
        self.client.close()

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.s.metrics.track_depth(self.queue.depth)
        while not self.leading.is_set():
            qp = self.queue.pop(timeout=0.2)
            if qp is None or self.leading.is_set():
                continue
            try:
                self.schedule_one(qp)
            except Exception:  # noqa: BLE001 - one pod's trouble must not stop the loop
                log.exception("scheduling %s/%s failed", *qp.key)
                self.s.metrics.attempts.labels("error").inc()
                self.queue.requeue(qp, unschedulable=False)

    def schedule_one(self, qp: QueuedPod) -> None:
        pod = qp.pod
        if self.cache.node_of(qp.key) is not None:
            self.queue.done(qp.key)  # bound meanwhile (or assumed by an earlier attempt)
            return
        started = time.monotonic()
        pi = pod_info(pod, qp.priority)
        with self.cache.lock:
            d = decide(pi, self.cache, self._start)
            total = len(self.cache.nodes)
            if total:
                self._start = (self._start + d.evaluated) % total
            if d.node is not None:
                self.cache.assume(pi, d.node)
                plan = None
            else:
                plan = (
                    preemption.plan(pi, self.cache, d)
                    if preemption.eligible(pi, self.preemption_policy(pod), self.cache)
                    else None
                )
        self.s.metrics.algorithm.observe(time.monotonic() - started)
        if d.node is not None:
            self._bind(qp, d.node)
            return
        self.s.metrics.attempts.labels("unschedulable").inc()
        message = fit_error(total, {n: r for n, (_, r) in d.failures.items()})
        if plan is not None:
            self.s.metrics.preemption_attempts.inc()
            self.pool.submit(self._preempt, qp, plan)
        self.pool.submit(self._unschedulable, qp, message)
        self.queue.requeue(qp, unschedulable=True)

    # -- writes (binds through the batch writer, the rest on the pool) ------------------------

    def _bind(self, qp: QueuedPod, node: str) -> None:
        """Queue the Bind; ``_bound`` finishes the pod when its answer comes."""
        ns, name = qp.key
        if self.leading.is_set():
            self.cache.forget(qp.key)
            return
        try:
            f = self.writer.bind(name, node, namespace=ns, uid=qp.pod.metadata.uid)
        except errors.Unavailable:  # the writer closed: the term is ending
            self.cache.forget(qp.key)
            return
        f.add_done_callback(lambda f: self._answered(qp, node, f))

    def _answered(self, qp: QueuedPod, node: str, f: Future[pod_pb2.Pod]) -> None:
        """Runs on the writer's thread: anything that must read the API goes to the pool."""
        exc = f.exception()
        if isinstance(exc, errors.Conflict) and exc.retried:
            try:
                self.pool.submit(self._bound, qp, node, f)
                return
            except RuntimeError:  # the pool is shut down: the term is over
                pass
        self._bound(qp, node, f)

    def _bound(self, qp: QueuedPod, node: str, f: Future[pod_pb2.Pod]) -> None:
        """A Bind's answer, as the unary call's: NotFound drops the pod, a Conflict that our own
        earlier attempt explains is success, any other error requeues it."""
        ns, name = qp.key
        try:
            try:
                f.result()
            except errors.Conflict as exc:
                if not (exc.retried and self._bound_here(qp, node)):
                    raise
        except errors.NotFound:
            self.cache.forget(qp.key)
            self.queue.done(qp.key)
            return
        except errors.HakubeError as exc:
            log.info("bind %s/%s to %s failed: %s", ns, name, node, exc)
            self.cache.forget(qp.key)
            self.s.metrics.attempts.labels("error").inc()
            self.queue.requeue(qp, unschedulable=False)
            return
        self.queue.done(qp.key)
        self.s.metrics.attempts.labels("scheduled").inc()
        self.s.metrics.latency.observe(time.monotonic() - qp.queued_at)
        if self.events is not None:
            self.events.normal(qp.pod, "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    def _bound_here(self, qp: QueuedPod, node: str) -> bool:
        ns, name = qp.key
        try:
            pod = self.client.pods.get(name, namespace=ns, timeout=BIND_TIMEOUT)
        except errors.HakubeError:
            return False
        return pod.spec.node_name == node and pod.metadata.uid == qp.pod.metadata.uid

    def _unschedulable(self, qp: QueuedPod, message: str) -> None:
        if self.leading.is_set():
            return
        try:
            mark_unschedulable(self.client, qp.pod, message)
        except errors.HakubeError as exc:
            log.info("status of %s/%s: %s", *qp.key, exc)
        if self.events is not None:
            self.events.warning(qp.pod, "FailedScheduling", message)

    def _preempt(self, qp: QueuedPod, plan: preemption.Plan) -> None:
        if self.leading.is_set():
            return
        ns, name = qp.key
        log.info("preempting %d pod(s) on %s for %s/%s", len(plan.victims), plan.node, ns, name)
        try:
            set_nominated(self.client, qp.pod, plan.node)
        except errors.HakubeError as exc:
            log.info("nominate %s/%s: %s", ns, name, exc)
            return
        for v in plan.victims:
            vns, vname = v.key
            try:
                self.client.delete(pod_pb2.Pod, vname, namespace=vns, uid=v.pod.metadata.uid)
            except (errors.NotFound, errors.Conflict):
                continue
            except errors.HakubeError as exc:
                log.info("preempt %s/%s: %s", vns, vname, exc)
                continue
            self.s.metrics.preemption_victims.inc()
            if self.events is not None:
                self.events.normal(
                    v.pod, "Preempted", f"Preempted by {ns}/{name} on node {plan.node}"
                )


class Scheduler:
    """``work(client, leading)`` for hakube.leaderelection.Component."""

    def __init__(
        self, config: SchedulerConfig | None = None, *, registry: CollectorRegistry | None = None
    ) -> None:
        self.config = config or SchedulerConfig()
        self.metrics = SchedulerMetrics(registry)

    def __call__(self, client: Client, leading: threading.Event) -> None:
        term = Term(self, client, leading)
        try:
            if not term.start_informers():
                raise RuntimeError("scheduler informer caches did not sync")
            log.info(
                "scheduling as %s: %d nodes, %d pending pods",
                self.config.name,
                len(term.cache.nodes),
                len(term.queue),
            )
            term.run()
        finally:
            term.stop()

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Scheduler({self.config.name})"
