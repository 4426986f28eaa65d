"""The scheduler's view: nodes and the pods on them, including pods it has *assumed*.

When the scheduler picks a node it assumes the pod there at once, before the Bind call returns,
so the next decision already counts its requests; binding happens on other threads. A failed
bind forgets the assumption. When the informer later reports the pod bound, the assumed entry
is replaced by the real one (same key, so nothing is counted twice).

Everything is guarded by one lock, held by the scheduling thread for a whole decision; informer
handlers take it briefly to apply a change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from hakube.api import quantity
from hakube.api.scheduling import HARD_EFFECTS, Taint
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.scheduler.podinfo import PodInfo, PodKey, Resources, pod_info


def allocatable(node: core_pb2.Node) -> Resources:
    """Allocatable (or capacity when allocatable is absent); pods default to 110."""
    src = node.status.allocatable or node.status.capacity
    return Resources(
        quantity.milli(src["cpu"]) if "cpu" in src else 0,
        quantity.value(src["memory"]) if "memory" in src else 0,
        quantity.value(src["pods"]) if "pods" in src else 110,
    )


@dataclass
class NodeInfo:
    """One node and what is placed on it. What filters read on every decision is copied out
    of the protobuf once per node change (plain attributes are several times faster to read)."""

    node: core_pb2.Node
    allocatable: Resources
    pods: dict[PodKey, PodInfo] = field(default_factory=dict)
    requested: Resources = field(default_factory=Resources)
    score_requested: Resources = field(default_factory=Resources)
    ports: list[tuple[str, str, int]] = field(default_factory=list)
    name: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    unschedulable: bool = False
    hard_taints: tuple[Taint, ...] = ()
    """NoSchedule and NoExecute taints: the pod must tolerate them."""
    soft_taints: tuple[Taint, ...] = ()
    """PreferNoSchedule taints: scored against."""

    def __post_init__(self) -> None:
        self.refresh(self.node)

    def refresh(self, node: core_pb2.Node) -> None:
        self.node = node
        self.allocatable = allocatable(node)
        self.name = node.metadata.name
        self.labels = dict(node.metadata.labels)
        self.ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
        self.unschedulable = node.spec.unschedulable
        taints = [(t.key, t.value, t.effect) for t in node.spec.taints]
        self.hard_taints = tuple(t for t in taints if t[2] in HARD_EFFECTS)
        self.soft_taints = tuple(t for t in taints if t[2] == "PreferNoSchedule")

    def add(self, pi: PodInfo) -> None:
        self.pods[pi.key] = pi
        self.requested.add(pi.requests)
        self.score_requested.add(pi.score_requests)
        self.ports.extend(pi.host_ports)

    def remove(self, key: PodKey) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is not None:
            self.requested.add(pi.requests, -1)
            self.score_requested.add(pi.score_requests, -1)
            for p in pi.host_ports:
                self.ports.remove(p)
        return pi

    def clone(self) -> NodeInfo:
        """A copy whose pod set can be changed (preemption's what-if)."""
        c = NodeInfo(self.node, self.allocatable)
        for pi in self.pods.values():
            c.add(pi)
        return c


def owner_uid(pod: pod_pb2.Pod) -> str:
    """The uid of the pod's controlling owner ("" if none): SelectorSpread groups by it."""
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.uid
    return ""


def occupies_node(pod: pod_pb2.Pod) -> bool:
    """A bound pod that has not finished holds its node's resources (a terminating one too,
    until it is gone)."""
    return bool(pod.spec.node_name) and pod.status.phase not in ("Succeeded", "Failed")


class Cache:
    """Nodes by name; bound and assumed pods by key."""

    def __init__(self, priority_of: Callable[[pod_pb2.Pod], int] | None = None) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[PodKey, str] = {}
        self._orphans: dict[str, dict[PodKey, PodInfo]] = {}
        """Pods bound to nodes the cache does not know (yet)."""
        self.assumed: set[PodKey] = set()
        self.priority_of = priority_of or (lambda p: 0)
        self.owners: dict[str, dict[str, int]] = {}
        """Controlling owner uid -> node -> pods of that owner placed there."""
        self._anti: dict[PodKey, str] = {}
        """Placed pods with required pod anti-affinity (every decision must respect them)."""
        self.generation = 0
        """Bumped by every change; lets callers notice that the view moved."""

    # -- nodes --------------------------------------------------------------------------------

    def set_node(self, node: core_pb2.Node) -> None:
        with self.lock:
            name = node.metadata.name
            ni = self.nodes.get(name)
            if ni is None:
                ni = NodeInfo(node, allocatable(node))
                for pi in self._orphans.pop(name, {}).values():
                    ni.add(pi)
                self.nodes[name] = ni
            else:
                ni.refresh(node)
            self.generation += 1

    def remove_node(self, name: str) -> None:
        with self.lock:
            ni = self.nodes.pop(name, None)
            if ni is not None and ni.pods:
                self._orphans[name] = dict(ni.pods)
            self.generation += 1

    # -- pods ---------------------------------------------------------------------------------

    def set_pod(self, pod: pod_pb2.Pod) -> None:
        """A pod as the informer reports it: bound pods are placed, others dropped."""
        key = (pod.metadata.namespace, pod.metadata.name)
        with self.lock:
            self._drop(key)
            self.assumed.discard(key)
            if occupies_node(pod):
                self._place(pod_info(pod, self.priority_of(pod)), pod.spec.node_name)
            self.generation += 1

    def remove_pod(self, key: PodKey) -> None:
        with self.lock:
            self._drop(key)
            self.assumed.discard(key)
            self.generation += 1

    def assume(self, pi: PodInfo, node: str) -> None:
        with self.lock:
            self._drop(pi.key)
            self._place(pi, node)
            self.assumed.add(pi.key)
            self.generation += 1

    def forget(self, key: PodKey) -> None:
        """Undo ``assume`` (the bind failed); a real binding seen meanwhile stays."""
        with self.lock:
            if key in self.assumed:
                self.assumed.discard(key)
                self._drop(key)
                self.generation += 1

    def node_of(self, key: PodKey) -> str | None:
        with self.lock:
            return self._pod_node.get(key)

    def _place(self, pi: PodInfo, node: str) -> None:
        self._pod_node[pi.key] = node
        anti = pi.pod.spec.affinity.pod_anti_affinity
        if anti.required_during_scheduling_ignored_during_execution:
            self._anti[pi.key] = node
        owner = owner_uid(pi.pod)
        if owner:
            counts = self.owners.setdefault(owner, {})
            counts[node] = counts.get(node, 0) + 1
        ni = self.nodes.get(node)
        if ni is not None:
            ni.add(pi)
        else:
            self._orphans.setdefault(node, {})[pi.key] = pi

    def _drop(self, key: PodKey) -> None:
        node = self._pod_node.pop(key, None)
        if node is None:
            return
        self._anti.pop(key, None)
        ni = self.nodes.get(node)
        pi = ni.remove(key) if ni is not None else self._orphans.get(node, {}).pop(key, None)
        owner = owner_uid(pi.pod) if pi is not None else ""
        if owner:
            counts = self.owners[owner]
            counts[node] -= 1
            if counts[node] <= 0:
                del counts[node]
            if not counts:
                del self.owners[owner]

    def has_anti_affinity(self) -> bool:
        return bool(self._anti)

    def anti_affinity_pods(self) -> list[tuple[PodInfo, NodeInfo]]:
        """Placed pods with required anti-affinity, with their nodes (caller holds the lock)."""
        out = []
        for key, node in self._anti.items():
            ni = self.nodes.get(node)
            if ni is not None and key in ni.pods:
                out.append((ni.pods[key], ni))
        return out

    def all_pods(self) -> list[tuple[PodInfo, NodeInfo]]:
        """Every placed pod with its node (caller holds the lock)."""
        return [(pi, ni) for ni in self.nodes.values() for pi in ni.pods.values()]
