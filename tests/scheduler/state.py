"""Cluster states for table-driven scheduler tests, written as Kubernetes-style dicts."""

from __future__ import annotations

from typing import Any

from hakube.api.convert import from_dict
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.scheduler.algorithm import Decision, decide
from hakube.scheduler.cache import Cache
from hakube.scheduler.explain import fit_error
from hakube.scheduler.podinfo import pod_info
from hakube.testing.fakekubelet import node_object


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    *,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
) -> core_pb2.Node:
    n = node_object(name, cpu=cpu, memory=memory, pods=pods, labels=labels, taints=taints)
    n.spec.unschedulable = unschedulable
    n.status.conditions[0].status = "True" if ready else "False"
    return n


def pod(
    name: str,
    cpu: str = "",
    memory: str = "",
    *,
    ns: str = "default",
    labels: dict[str, str] | None = None,
    node_name: str = "",
    priority: int | None = None,
    owner: str = "",
    **spec: Any,
) -> pod_pb2.Pod:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {
        "name": "c",
        "image": "busybox",
        "resources": {"requests": requests},
    }
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    meta: dict[str, Any] = {
        "name": name,
        "namespace": ns,
        "labels": labels or {},
        "uid": f"uid-{ns}-{name}",
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner,
                "uid": f"uid-{owner}",
                "controller": True,
            }
        ]
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [container], "nodeName": node_name, **spec},
    }
    if priority is not None:
        doc["spec"]["priority"] = priority
    return from_dict(doc)  # type: ignore[return-value]


def cluster(nodes: list[core_pb2.Node], pods: list[pod_pb2.Pod] = ()) -> Cache:  # type: ignore[assignment]
    c = Cache(lambda p: p.spec.priority)
    for n in nodes:
        c.set_node(n)
    for p in pods:
        c.set_pod(p)
    return c


def schedule(c: Cache, p: pod_pb2.Pod) -> tuple[str | None, str, Decision]:
    """(chosen node or None, the unschedulable message or "", the decision)."""
    with c.lock:
        d = decide(pod_info(p), c, exhaustive=True)
        msg = "" if d.node else fit_error(len(c.nodes), {n: r for n, (_, r) in d.failures.items()})
    return d.node, msg, d
