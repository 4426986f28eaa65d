"""Which nodes a daemon pod fits: nodeSelector, required node affinity, taints/tolerations."""

from __future__ import annotations

from typing import Any

from hakube.api.scheduling import fits_node as fits
from hakube.api.v1 import core_pb2, pod_pb2
from tests.controllers.batch.objs import manifest


def node(labels: dict[str, str], taints: Any = (), name: str = "n1") -> core_pb2.Node:
    n: core_pb2.Node = manifest("Node", name, {"taints": list(taints)}, labels=labels)
    return n


def spec(**fields: Any) -> pod_pb2.PodSpec:
    pod: pod_pb2.Pod = manifest("Pod", "p", {"containers": [{"name": "c", "image": "i"}], **fields})
    return pod.spec


def required(*exprs: dict[str, Any], fields: Any = ()) -> dict[str, Any]:
    term = {"matchExpressions": list(exprs), "matchFields": list(fields)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def test_node_selector_and_affinity_operators() -> None:
    n = node({"zone": "a", "gpus": "4"})
    assert fits(spec(nodeSelector={"zone": "a"}), n)
    assert not fits(spec(nodeSelector={"zone": "b"}), n)
    assert fits(spec(affinity=required({"key": "zone", "operator": "In", "values": ["a", "b"]})), n)
    assert not fits(
        spec(affinity=required({"key": "zone", "operator": "NotIn", "values": ["a"]})), n
    )
    assert fits(spec(affinity=required({"key": "gpus", "operator": "Gt", "values": ["2"]})), n)
    assert not fits(spec(affinity=required({"key": "gpus", "operator": "Lt", "values": ["2"]})), n)
    assert fits(spec(affinity=required({"key": "ssd", "operator": "DoesNotExist"})), n)
    assert not fits(spec(affinity=required({"key": "ssd", "operator": "Exists"})), n)
    by_name = {"key": "metadata.name", "operator": "In", "values": ["n1"]}
    assert fits(spec(affinity=required(fields=[by_name])), n)
    assert not fits(spec(affinity=required(fields=[by_name])), node({}, name="n2"))


def test_taints_need_tolerations() -> None:
    n = node({}, [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert not fits(spec(), n)
    assert fits(spec(tolerations=[{"key": "dedicated", "operator": "Exists"}]), n)
    assert fits(spec(tolerations=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]), n)
    assert not fits(spec(tolerations=[{"key": "dedicated", "value": "web"}]), n)
    assert not fits(
        spec(tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]), n
    )
    assert fits(spec(tolerations=[{"operator": "Exists"}]), n)  # tolerates everything
    soft = node({}, [{"key": "x", "effect": "PreferNoSchedule"}])
    assert fits(spec(), soft)
