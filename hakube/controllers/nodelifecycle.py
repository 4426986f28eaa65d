"""Node lifecycle: notice dead nodes, taint them, evict their pods; heal nodes that return.

A node agent proves it is alive by renewing its Lease in ``kube-node-lease`` (named after the
node), or by posting a new Ready heartbeat in its status. This controller notes, on its own
monotonic clock, when it last saw either change; a node with neither for
``--node-monitor-grace-period`` seconds is unreachable:
its Ready condition becomes Unknown and it gets the ``node.kubernetes.io/unreachable:NoExecute``
taint. A node that reports Ready=False itself gets ``node.kubernetes.io/not-ready:NoExecute``.
When the lease is renewed again (or Ready turns True), the taints go and Ready is restored.

NoExecute taints evict the node's pods (graceful deletion), each after its toleration allows:
a pod with a matching toleration without ``tolerationSeconds`` stays; with it, it goes that many
seconds after the taint was added; a pod with no matching toleration gets the defaults
(``--default-unreachable-toleration-seconds`` / ``--default-not-ready-toleration-seconds``,
300 s, as Kubernetes' DefaultTolerationSeconds admission gives every pod). Evictions across the
cluster are rate-limited (``--node-eviction-rate`` pods per second) so that a partition that
makes many nodes look dead at once does not empty the cluster in one go.

A node that looks stale is checked against the API before it is marked: when its Lease (or
Ready heartbeat) there is newer than what the informers delivered, this controller is behind,
not the node, and the renewal counts as seen now. A controller that is behind never evicts.

Observation times are per term and start at the term's beginning: after a control-plane
failover, the new leader gives every node a fresh grace period instead of judging leases it
never watched being renewed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from hakube.api.conditions import set_condition
from hakube.api.scheduling import find_toleration
from hakube.api.timestamps import parse_time, rfc3339
from hakube.api.v1 import core_pb2, meta_pb2, pod_pb2
from hakube.client import errors
from hakube.controllers.base import Controller, key_of
from hakube.controllers.manager import register

LEASE_NS = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNKNOWN_REASON = "NodeStatusUnknown"
POD_NODE_INDEX = "spec.nodeName"


def _pod_node(pod: pod_pb2.Pod) -> str:
    return pod.spec.node_name


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; thread-safe."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, max(1.0, burst)
        self._tokens, self._at = self.burst, time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


def eviction_time(
    pod: pod_pb2.Pod, taints: list[core_pb2.Taint], defaults: dict[str, float], now: float
) -> float | None:
    """Wall-clock time at which NoExecute ``taints`` evict ``pod``; None: it may stay."""
    due: float | None = None
    for t in taints:
        added = parse_time(t.time_added) or now
        tol = find_toleration(pod.spec.tolerations, t.key, t.value, t.effect)
        if tol is None:
            seconds = defaults.get(t.key, 0.0)
        elif tol.HasField("toleration_seconds"):
            seconds = max(0.0, float(tol.toleration_seconds))
        else:
            continue
        at = added + seconds
        due = at if due is None else min(due, at)
    return due


def _heartbeat(node: core_pb2.Node) -> str:
    return next((c.last_heartbeat_time for c in node.status.conditions if c.type == "Ready"), "")


@register
class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    workers = 2

    def setup(self) -> None:
        self.grace = self.ctx.settings.node_monitor_grace_period
        self.period = self.ctx.settings.node_monitor_period
        self.defaults = {
            UNREACHABLE: self.ctx.settings.default_unreachable_toleration_seconds,
            NOT_READY: self.ctx.settings.default_not_ready_toleration_seconds,
        }
        rate = self.ctx.settings.node_eviction_rate
        self.bucket = TokenBucket(rate, rate)
        self._seen: dict[str, tuple[str, float]] = {}
        """Node -> (lease renewTime last seen, monotonic time we saw it change)."""
        self._seen_lock = threading.Lock()
        self.caught_up = 0
        """Nodes found renewed by an API read after the informers made them look stale."""
        self.nodes = self.ctx.informers.get(core_pb2.Node)
        self.leases = self.ctx.informers.get(core_pb2.Lease)
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        # A tainted node's pods are looked up on every check of it: by index, not by a scan of
        # every pod (179 tainted nodes x 30,000 pods kept a core busy at rest in the scale run).
        self.pods.add_index(POD_NODE_INDEX, _pod_node)
        self.nodes.add_handlers(on_add=self.enqueue, on_update=self._node_updated)
        self.leases.add_handlers(on_add=self._lease, on_update=lambda o, n: self._lease(n))

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        """A new Ready heartbeat in the node's status counts as a renewal too (as in
        Kubernetes, which accepts either)."""
        if _heartbeat(new) and _heartbeat(new) != _heartbeat(old):
            name = new.metadata.name
            with self._seen_lock:
                renewed = self._seen.get(name, ("", 0.0))[0]
                self._seen[name] = (renewed, time.monotonic())
        self.enqueue(new)

    def _lease(self, lease: core_pb2.Lease) -> None:
        if lease.metadata.namespace != LEASE_NS:
            return
        name, renewed = lease.metadata.name, lease.spec.renew_time
        with self._seen_lock:
            last = self._seen.get(name)
            changed = last is None or last[0] != renewed
            if changed:
                self._seen[name] = (renewed, time.monotonic())
        if changed and last is not None:
            node = self.nodes.get(name)
            if node is not None and self._needs_check(node):
                self.queue.add(("", name))  # a marked node renewed: heal it now

    def run(self) -> list[threading.Thread]:
        threads = super().run()
        monitor = threading.Thread(target=self._monitor, name=f"{self.name}-monitor", daemon=True)
        monitor.start()
        return [*threads, monitor]

    def _monitor(self) -> None:
        """Every period, queue the nodes a sync could change (leases that stop changing raise
        no event). Healthy nodes are judged here, from the cache, and not queued: queueing all
        1,000 nodes every second kept the controller-manager busy at rest in the scale run."""
        while not self.ctx.leading.wait(self.period):
            for node in self.nodes.list():
                if self._needs_check(node):
                    self.queue.add(key_of(node))

    def _needs_check(self, node: core_pb2.Node) -> bool:
        """Whether a sync of ``node`` may have something to do: it carries our NoExecute taints
        (pods to evict, or taints to lift), its Ready condition is not True (to taint, or to
        restore), or its lease is stale (to mark)."""
        if any(
            t.effect == "NoExecute" and t.key in (UNREACHABLE, NOT_READY) for t in node.spec.taints
        ):
            return True
        ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
        if ready is not None and ready.status != "True":
            return True
        return not self._lease_fresh(node.metadata.name)

    # -- reconcile ----------------------------------------------------------------------------

    def _lease_fresh(self, name: str) -> bool:
        now = time.monotonic()
        with self._seen_lock:
            seen = self._seen.setdefault(name, ("", now))  # fresh grace for a node new to us
        return now - seen[1] <= self.grace

    def _renewed_unseen(self, node: core_pb2.Node) -> bool:
        """Before a node is judged unreachable: has it renewed behind our informers' back?

        The informers can fall behind (a watch resuming, a busy process delivering pod events);
        a controller that is behind must not declare nodes dead and evict their pods. So the
        Lease and the Node are read from the API, and a renewTime or Ready heartbeat newer than
        what the informers delivered counts as a renewal seen now. An API failure raises: the
        key is retried and nothing is marked meanwhile."""
        name = node.metadata.name
        with self._seen_lock:
            seen_renew = self._seen.get(name, ("", 0.0))[0]
        try:
            renew = self.client.leases.get(name, namespace=LEASE_NS).spec.renew_time
        except errors.NotFound:
            renew = seen_renew  # no lease: only the status heartbeat can speak for the node
        live = self.client.nodes.get(name)
        if renew == seen_renew and _heartbeat(live) == _heartbeat(node):
            return False
        with self._seen_lock:
            self._seen[name] = (renew, time.monotonic())
        self.caught_up += 1
        return True

    def sync(self, key: Any) -> None:
        node = self.nodes.get(key[1])
        if node is None:
            return
        name = node.metadata.name
        ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
        fresh = self._lease_fresh(name)
        if not fresh and not (ready is not None and ready.reason == UNKNOWN_REASON):
            fresh = self._renewed_unseen(node)
        if not fresh:
            want = UNREACHABLE
        elif ready is not None and ready.status == "False":
            want = NOT_READY
        else:
            want = ""
        node = self._set_status(node, fresh, ready)
        node = self._set_taints(node, want)
        taints = [
            t
            for t in node.spec.taints
            if t.effect == "NoExecute" and t.key in (UNREACHABLE, NOT_READY)
        ]
        if taints:
            self._evict(node, taints)

    def _set_status(
        self, node: core_pb2.Node, fresh: bool, ready: meta_pb2.Condition | None
    ) -> core_pb2.Node:
        now = rfc3339(time.time())
        if not fresh and (ready is None or ready.status != "Unknown"):
            status, reason, message = (
                "Unknown",
                UNKNOWN_REASON,
                "Kubelet stopped posting node status (no lease renewal within the grace period).",
            )
        elif (
            fresh
            and ready is not None
            and ready.status == "Unknown"
            and ready.reason == UNKNOWN_REASON
        ):
            status, reason, message = "True", "KubeletReady", "node lease renewed"
        else:
            return node
        fresh_node = self.client.nodes.get(node.metadata.name)
        set_condition(fresh_node.status.conditions, "Ready", status, reason, message, now=now)
        out = self.client.nodes.update_status(fresh_node)
        if status == "Unknown":
            self.events.warning(
                out, "NodeNotReady", f"Node {node.metadata.name} status is now: NodeStatusUnknown"
            )
        else:
            self.events.normal(
                out, "NodeReady", f"Node {node.metadata.name} status is now: NodeReady"
            )
        return out

    def _set_taints(self, node: core_pb2.Node, want: str) -> core_pb2.Node:
        have = {t.key for t in node.spec.taints if t.effect == "NoExecute"} & {
            UNREACHABLE,
            NOT_READY,
        }
        if have == ({want} if want else set()):
            return node
        fresh = self.client.nodes.get(node.metadata.name)
        kept = [
            t
            for t in fresh.spec.taints
            if not (t.effect == "NoExecute" and t.key in (UNREACHABLE, NOT_READY))
        ]
        del fresh.spec.taints[:]
        fresh.spec.taints.extend(kept)
        if want:
            fresh.spec.taints.add(key=want, effect="NoExecute", time_added=rfc3339(time.time()))
        return self.client.nodes.update(fresh)

    def _evict(self, node: core_pb2.Node, taints: list[core_pb2.Taint]) -> None:
        now = time.time()
        confirmed = not any(t.key == UNREACHABLE for t in taints)
        for pod in self.pods.by_index(POD_NODE_INDEX, node.metadata.name):
            if pod.metadata.deletion_timestamp:
                continue
            if pod.status.phase in ("Succeeded", "Failed"):
                continue
            due = eviction_time(pod, taints, self.defaults, now)
            if due is None or due > now:
                continue
            if not confirmed:
                if self._renewed_unseen(node):
                    return  # we were behind, not the node: the next sync heals it
                confirmed = True
            if not self.bucket.take():
                return  # rate limit: the next check continues
            ns, name = pod.metadata.namespace, pod.metadata.name
            try:
                self.client.delete(pod_pb2.Pod, name, namespace=ns, uid=pod.metadata.uid)
            except (errors.NotFound, errors.Conflict):
                continue
            self.events.normal(pod, "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
