"""DaemonSet: one pod on every eligible node.

A node is eligible when it is not being deleted and the pod template fits it (nodeSelector,
required node affinity, taints vs tolerations -- the scheduler's own predicates in
``hakube.api.scheduling``; daemon pods also tolerate the node-condition taints, as in
Kubernetes). The controller binds each pod to its node at creation (``spec.nodeName``, plus a
required node affinity on ``metadata.name`` saying so), so nodes that join get a pod at once
and no scheduler is involved. Pods on nodes that are no longer eligible are deleted
(immediately, with no grace, when the node is gone: no agent will ever finish them); failed
daemon pods are deleted so that a fresh one replaces them.

Rolling update: each pod carries the ``controller-revision-hash`` of the template it was made
from. With ``RollingUpdate``, old pods are deleted while the number of unavailable nodes (no
ready pod) stays within ``maxUnavailable`` (int or percent of the desired number, rounded up,
at least 1); not-ready old pods go first and cost nothing. A node whose old pod is gone gets a
new one on the next pass. ``OnDelete`` replaces only pods someone deleted.
"""

from __future__ import annotations

from typing import Any

from hakube.api.scheduling import fits_node
from hakube.api.v1 import core_pb2, pod_pb2, workloads_pb2
from hakube.controllers.base import Controller
from hakube.controllers.deployutil import REVISION_HASH_LABEL as HASH_LABEL
from hakube.controllers.deployutil import scaled, template_hash
from hakube.controllers.expectations import PodNameExpectations
from hakube.controllers.manager import register
from hakube.controllers.owned import (
    PodControl,
    on_any_change,
    owner_enqueuer,
    pod_from_template,
)
from hakube.controllers.podutil import pod_ready

DAEMON_TOLERATIONS = [
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
]


def daemon_pod_spec(ds: workloads_pb2.DaemonSet) -> pod_pb2.PodSpec:
    """The template's pod spec with the tolerations every daemon pod gets."""
    spec = pod_pb2.PodSpec()
    spec.CopyFrom(ds.spec.template.spec)
    have = {(t.key, t.effect) for t in spec.tolerations}
    for key, effect in DAEMON_TOLERATIONS:
        if (key, effect) not in have:
            spec.tolerations.add(key=key, operator="Exists", effect=effect)
    return spec


def pod_node(pod: pod_pb2.Pod) -> str:
    """The node a daemon pod is for: nodeName, or its metadata.name affinity."""
    if pod.spec.node_name:
        return pod.spec.node_name
    na = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    for term in na.node_selector_terms:
        for f in term.match_fields:
            if f.key == "metadata.name" and f.operator == "In" and f.values:
                return str(f.values[0])
    return ""


@register
class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def setup(self) -> None:
        self.expectations = PodNameExpectations()
        self.control = PodControl(self.writes, self.events, self.expectations)
        self.daemonsets = self.ctx.informers.get(workloads_pb2.DaemonSet)
        self.pods = self.ctx.informers.get(pod_pb2.Pod)
        self.owned_pods = self.ctx.informers.by_owner(pod_pb2.Pod)
        self.nodes = self.ctx.informers.get(core_pb2.Node)
        self.daemonsets.add_handlers(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        on_any_change(self.pods, owner_enqueuer(self.queue, "DaemonSet"))
        on_any_change(self.nodes, self._node_changed)

    def _node_changed(self, node: core_pb2.Node) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    # -- the reconcile ------------------------------------------------------------------------

    def sync(self, key: Any) -> None:
        ds = self.daemonsets.get(key[1], key[0])
        if ds is None or ds.metadata.deletion_timestamp:
            return
        pods = self.owned_pods.owned(ds)
        if not self.expectations.met(key, pods):
            self.queue.add_after(key, 0.2)
            return
        spec = daemon_pod_spec(ds)
        nodes = {n.metadata.name: n for n in self.nodes.list()}
        eligible = {
            name
            for name, n in nodes.items()
            if not n.metadata.deletion_timestamp and fits_node(spec, n)
        }
        by_node: dict[str, list[pod_pb2.Pod]] = {}
        for p in pods:
            by_node.setdefault(pod_node(p), []).append(p)
        revision = template_hash(ds.spec.template)

        create: list[str] = []
        delete: list[pod_pb2.Pod] = []
        for node in sorted(eligible):
            live = [p for p in by_node.get(node, []) if not p.metadata.deletion_timestamp]
            failed = [p for p in live if p.status.phase == "Failed"]
            delete += failed
            live = [p for p in live if p not in failed]
            if not live and not by_node.get(node):
                create.append(node)
            delete += sorted(live, key=lambda p: p.metadata.creation_timestamp)[1:]
        for node, ps in by_node.items():
            if node not in eligible:
                delete += [p for p in ps if not p.metadata.deletion_timestamp]
        if not delete and ds.spec.update_strategy.type != "OnDelete":
            delete = self._rolling_update(ds, eligible, by_node, revision)
        for p in delete:
            self.control.delete(ds, p, force=pod_node(p) not in nodes)
        for node in create:
            self._create(ds, key, node, spec, revision)
        self._update_status(ds, eligible, by_node, revision)

    def _rolling_update(
        self,
        ds: workloads_pb2.DaemonSet,
        eligible: set[str],
        by_node: dict[str, list[pod_pb2.Pod]],
        revision: str,
    ) -> list[pod_pb2.Pod]:
        """Old pods to delete now without exceeding maxUnavailable."""
        desired = len(eligible)
        budget = max(
            1,
            scaled(ds.spec.update_strategy.rolling_update.max_unavailable, desired, round_up=True),
        )
        unavailable = 0
        old_ready: list[pod_pb2.Pod] = []
        old_unready: list[pod_pb2.Pod] = []
        for node in sorted(eligible):
            ps = [p for p in by_node.get(node, []) if not p.metadata.deletion_timestamp]
            if not ps or not any(pod_ready(p) for p in ps) or len(ps) < len(by_node[node]):
                unavailable += 1
            for p in ps:
                if p.metadata.labels.get(HASH_LABEL) != revision:
                    (old_ready if pod_ready(p) else old_unready).append(p)
        room = max(0, budget - unavailable)
        return old_unready + old_ready[:room]

    def _create(
        self, ds: workloads_pb2.DaemonSet, key: Any, node: str, spec: pod_pb2.PodSpec, revision: str
    ) -> None:
        pod = pod_from_template(ds.spec.template, ds)
        pod.spec.CopyFrom(spec)
        pod.spec.node_name = node
        na = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        del na.node_selector_terms[:]
        na.node_selector_terms.add().match_fields.add(
            key="metadata.name", operator="In", values=[node]
        )
        pod.metadata.labels[HASH_LABEL] = revision
        self.control.create(ds, pod)

    def _update_status(
        self,
        ds: workloads_pb2.DaemonSet,
        eligible: set[str],
        by_node: dict[str, list[pod_pb2.Pod]],
        revision: str,
    ) -> None:
        live = {
            n: [p for p in ps if not p.metadata.deletion_timestamp] for n, ps in by_node.items()
        }
        st = workloads_pb2.DaemonSetStatus()
        st.CopyFrom(ds.status)
        st.desired_number_scheduled = len(eligible)
        st.current_number_scheduled = sum(1 for n in eligible if live.get(n))
        st.number_misscheduled = sum(1 for n, ps in live.items() if ps and n not in eligible)
        st.number_ready = sum(1 for n in eligible if any(pod_ready(p) for p in live.get(n, [])))
        st.updated_number_scheduled = sum(
            1
            for n in eligible
            if any(p.metadata.labels.get(HASH_LABEL) == revision for p in live.get(n, []))
        )
        st.number_available = st.number_ready
        st.number_unavailable = st.desired_number_scheduled - st.number_available
        st.observed_generation = ds.metadata.generation
        if st == ds.status:
            return
        fresh = workloads_pb2.DaemonSet()
        fresh.CopyFrom(ds)
        fresh.status.CopyFrom(st)
        self.client.daemonsets.update_status(fresh)
