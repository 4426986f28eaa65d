"""The node authorizer and node restriction: what a node's identity may touch.

A node agent holds ``system:node:NAME`` in ``system:nodes``. As Kubernetes' Node authorizer, it
may, beyond what RBAC gives the ``system:nodes`` group (events; renewing its certificate):

* get, create, update (and update the status of) its own Node, and nothing else of Nodes;
* get, create, update, delete its own Lease in ``kube-node-lease``;
* list and watch pods only with a field selector ``spec.nodeName=NAME``; get, update, update
  the status of and delete only pods bound to it (a pod that does not exist may be asked for:
  the answer is NOT_FOUND either way);
* get only the Secrets, ConfigMaps and PersistentVolumeClaims that a pod bound to it references
  (volumes, projected volumes, env and envFrom, imagePullSecrets), and get, or create a token
  (``serviceaccounts/token``) of, only the ServiceAccounts its pods run as (the token service
  then insists on a token bound to such a pod).

What it does not allow here falls through to RBAC (which gives nodes nothing more by default
than reading every Node, as Kubernetes' system:node role does: each node routes the others'
podCIDRs).

Node restriction (as Kubernetes' NodeRestriction admission, which RBAC cannot override): a node
writing its own Node may not add, change or remove labels under ``node-role.kubernetes.io/``
or ``node-restriction.kubernetes.io/`` (nor set them when it registers), may not remove a taint
the Node carries, and may not clear ``spec.unschedulable``: each of those would widen what lands
on it, and only an administrator decides that.

Who references what comes from ``PodGraph``, an index from node to the objects its pods
reference, kept current from the store's event history (no scan per request).
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from typing import Any

from hakube.api.labels import SelectorError, parse_fields
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.apiserver.authz.attributes import Attributes
from hakube.store.fsm import OutOfRange, Record, StoreFSM

LEASE_NAMESPACE = "kube-node-lease"
PROTECTED_LABEL_PREFIXES = ("node-role.kubernetes.io/",)
PROTECTED_LABEL_DOMAIN = "node-restriction.kubernetes.io"

Ref = tuple[str, str, str]
"""(resource, namespace, name) of an object a pod references."""


class Decision(enum.Enum):
    ALLOW = "allow"
    NO_OPINION = "no opinion"


class Refused(Exception):
    """Node restriction: the write is refused whatever RBAC says (message: one line)."""


def pod_refs(pod: pod_pb2.Pod) -> frozenset[Ref]:
    """The Secrets, ConfigMaps and PVCs a pod references."""
    ns = pod.metadata.namespace
    out: set[Ref] = set()
    spec = pod.spec
    for v in spec.volumes:
        if v.secret.secret_name:
            out.add(("secrets", ns, v.secret.secret_name))
        if v.config_map.name:
            out.add(("configmaps", ns, v.config_map.name))
        if v.persistent_volume_claim.claim_name:
            out.add(("persistentvolumeclaims", ns, v.persistent_volume_claim.claim_name))
        for src in v.projected.sources:
            if src.secret.name:
                out.add(("secrets", ns, src.secret.name))
            if src.config_map.name:
                out.add(("configmaps", ns, src.config_map.name))
    for c in (*spec.init_containers, *spec.containers):
        for e in c.env:
            if e.value_from.secret_key_ref.name:
                out.add(("secrets", ns, e.value_from.secret_key_ref.name))
            if e.value_from.config_map_key_ref.name:
                out.add(("configmaps", ns, e.value_from.config_map_key_ref.name))
        for ef in c.env_from:
            if ef.secret_ref.name:
                out.add(("secrets", ns, ef.secret_ref.name))
            if ef.config_map_ref.name:
                out.add(("configmaps", ns, ef.config_map_ref.name))
    for s in spec.image_pull_secrets:
        if s.name:
            out.add(("secrets", ns, s.name))
    if spec.service_account_name:
        out.add(("serviceaccounts", ns, spec.service_account_name))
    return frozenset(out)


class PodGraph:
    """Node -> objects referenced by the pods bound to it, for one store replica (any thread).
    Brought up to date lazily, from the events since the revision it last saw."""

    def __init__(self, fsm: StoreFSM) -> None:
        self.fsm = fsm
        self._lock = threading.Lock()
        self._rev = -1
        self._pods: dict[tuple[str, str], tuple[str, frozenset[Ref]]] = {}
        self._by_node: dict[str, Counter[Ref]] = {}

    def _set(self, key: tuple[str, str], rec: Record | None) -> None:
        old = self._pods.pop(key, None)
        if old is not None:
            counts = self._by_node[old[0]]
            counts.subtract(old[1])
            for ref in old[1]:
                if counts[ref] <= 0:
                    del counts[ref]
        node = rec.fields.get("spec.nodeName", "") if rec is not None else ""
        if rec is None or not node:
            return
        refs = pod_refs(pod_pb2.Pod.FromString(rec.value))
        self._pods[key] = (node, refs)
        self._by_node.setdefault(node, Counter()).update(refs)

    def _refresh(self) -> None:
        rev = self.fsm.revision
        if rev == self._rev:
            return
        with self._lock:
            if rev == self._rev:
                return
            fsm = self.fsm
            with fsm.lock:
                rev = fsm.revision
                try:
                    if self._rev < 0 or rev < self._rev:
                        raise OutOfRange(self._rev, rev)
                    changes = [
                        ((ev.namespace, ev.name), ev.new)
                        for ev in fsm.events_since(self._rev, ("Pod",))
                    ]
                    rebuild = False
                except OutOfRange:
                    rebuild = True
            if rebuild:
                self._pods, self._by_node = {}, {}
                _, items = fsm.snapshot("Pod", None, rev)
                changes = [(key, rec) for key, rec in items]
            for key, rec in changes:
                self._set(key, rec)
            self._rev = rev

    def references(self, node: str, ref: Ref) -> bool:
        """Whether a pod bound to ``node`` references the object."""
        self._refresh()
        counts = self._by_node.get(node)
        return counts is not None and counts.get(ref, 0) > 0


def _selects_node(selector: str, node: str) -> bool:
    try:
        reqs = parse_fields(selector)
    except SelectorError:
        return False
    return any(r.key == "spec.nodeName" and r.op == "=" and r.values == (node,) for r in reqs)


def _protected(key: str) -> bool:
    if key.startswith(PROTECTED_LABEL_PREFIXES):
        return True
    prefix = key.partition("/")[0] if "/" in key else ""
    return prefix == PROTECTED_LABEL_DOMAIN or prefix.endswith("." + PROTECTED_LABEL_DOMAIN)


class NodeAuthorizer:
    """Decisions for node identities over one store replica."""

    def __init__(self, fsm: StoreFSM) -> None:
        self.fsm = fsm
        self.graph = PodGraph(fsm)

    def decide(self, node: str, a: Attributes) -> Decision:
        """ALLOW or NO_OPINION for ``system:node:<node>``; Refused for a forbidden Node write."""
        res, verb = a.resource, a.verb
        if a.group == "" and res == "nodes":
            return self._node(node, a)
        if a.group == "" and res == "pods" and a.subresource in ("", "status"):
            return self._pod(node, a)
        if a.group == "" and (
            (
                res in ("secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts")
                and verb == "get"
                and not a.subresource
            )
            or (res == "serviceaccounts" and a.subresource == "token" and verb == "create")
        ):
            if self.graph.references(node, (res, a.namespace, a.name)):
                return Decision.ALLOW
            return Decision.NO_OPINION
        if (
            a.group == "coordination.k8s.io"
            and res == "leases"
            and a.namespace == LEASE_NAMESPACE
            and a.name == node
            and verb in ("get", "create", "update", "delete")
        ):
            return Decision.ALLOW
        return Decision.NO_OPINION

    def _node(self, node: str, a: Attributes) -> Decision:
        if (
            a.name != node
            or a.subresource not in ("", "status")
            or a.verb not in ("get", "create", "update")
        ):
            return Decision.NO_OPINION
        if a.verb == "create" and a.obj is not None:
            self._check_labels(node, {}, dict(a.obj.metadata.labels))
        if a.verb == "update" and not a.subresource and a.obj is not None:
            rec = self.fsm.get("Node", "", node)
            if rec is not None:
                self._check_node_update(node, core_pb2.Node.FromString(rec.value), a.obj)
        return Decision.ALLOW

    @staticmethod
    def _check_labels(node: str, old: dict[str, str], new: dict[str, str]) -> None:
        for key in sorted(set(old) | set(new)):
            if _protected(key) and old.get(key) != new.get(key):
                raise Refused(
                    f'node "{node}" may not set, change or remove its label "{key}" '
                    "(only an administrator may)"
                )

    def _check_node_update(self, node: str, old: core_pb2.Node, new: Any) -> None:
        self._check_labels(node, dict(old.metadata.labels), dict(new.metadata.labels))
        kept = {(t.key, t.value, t.effect) for t in new.spec.taints}
        for t in old.spec.taints:
            if (t.key, t.value, t.effect) not in kept:
                raise Refused(
                    f'node "{node}" may not remove its taint "{t.key}:{t.effect}" '
                    "(only an administrator may)"
                )
        if old.spec.unschedulable and not new.spec.unschedulable:
            raise Refused(
                f'node "{node}" may not clear its own spec.unschedulable (only an '
                "administrator may uncordon it)"
            )

    def _pod(self, node: str, a: Attributes) -> Decision:
        verb = a.verb
        if verb in ("list", "watch"):
            ok = not a.subresource and _selects_node(a.field_selector, node)
            return Decision.ALLOW if ok else Decision.NO_OPINION
        if verb not in ("get", "update", "delete") or (a.subresource and verb != "update"):
            return Decision.NO_OPINION
        rec = self.fsm.get("Pod", a.namespace, a.name)
        bound = "" if rec is None else rec.fields.get("spec.nodeName", "")
        if rec is not None and bound != node:
            return Decision.NO_OPINION
        if a.obj is not None and a.obj.spec.node_name and a.obj.spec.node_name != node:
            return Decision.NO_OPINION
        return Decision.ALLOW
