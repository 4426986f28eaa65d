"""Scheduler decisions as a table: cluster state + pod -> chosen node or the exact explanation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hakube.scheduler.cache import Cache
from tests.scheduler.state import cluster, node, pod, schedule

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


@dataclass
class Case:
    name: str
    state: Callable[[], Cache]
    pod: Callable[[], object]
    node: str | None = None
    message: str = ""


def sel(**labels: str) -> dict[str, object]:
    return {"matchLabels": labels}


def node_affinity(*exprs: dict[str, object]) -> dict[str, object]:
    """Required node affinity: one node selector term holding ``exprs``."""
    term = {"matchExpressions": list(exprs)}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [term]}}}  # fmt: skip


def pod_affinity(
    kind: str, app: str, topology: str = HOST, *, preferred: bool = False
) -> dict[str, object]:
    """``kind`` (podAffinity or podAntiAffinity) towards pods labelled app=``app``."""
    term = {"labelSelector": sel(app=app), "topologyKey": topology}
    if preferred:
        return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}  # fmt: skip
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


CASES = [
    Case(
        "the only node with room wins",
        lambda: cluster([node("a", cpu="1"), node("b", cpu="4")]),
        lambda: pod("p", cpu="2"),
        node="b",
    ),
    Case(
        "least allocated node wins",
        lambda: cluster([node("a"), node("b")], [pod("x", cpu="3", memory="6Gi", node_name="a")]),
        lambda: pod("p", cpu="1"),
        node="b",
    ),
    Case(
        "insufficient cpu and memory are both counted",
        lambda: cluster([node("a", cpu="1", memory="1Gi"), node("b", cpu="1", memory="8Gi")]),
        lambda: pod("p", cpu="2", memory="2Gi"),
        message="0/2 nodes are available: 2 Insufficient cpu, 1 Insufficient memory.",
    ),
    Case(
        "requests count against allocatable minus bound pods",
        lambda: cluster([node("a", cpu="2")], [pod("x", cpu="1500m", node_name="a")]),
        lambda: pod("p", cpu="600m"),
        message="0/1 nodes are available: 1 Insufficient cpu.",
    ),
    Case(
        "pod count limit",
        lambda: cluster([node("a", pods=1)], [pod("x", node_name="a")]),
        lambda: pod("p"),
        message="0/1 nodes are available: 1 Too many pods.",
    ),
    Case(
        "the issue's example message",
        lambda: cluster(
            [node(f"n{i}", cpu="1") for i in range(3)]
            + [
                node(f"t{i}", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
                for i in range(2)
            ]
        ),
        lambda: pod("p", cpu="2"),
        message="0/5 nodes are available: 3 Insufficient cpu, "
        "2 node(s) had untolerated taint {k: v}.",
    ),
    Case(
        "a cordoned node is skipped",
        lambda: cluster([node("a", unschedulable=True), node("b", cpu="1")]),
        lambda: pod("p"),
        node="b",
    ),
    Case(
        "cordoned and not-ready nodes are explained",
        lambda: cluster([node("a", unschedulable=True), node("b", ready=False)]),
        lambda: pod("p"),
        message="0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable.",
    ),
    Case(
        "nodeSelector",
        lambda: cluster([node("a"), node("b", labels={"disk": "ssd"})]),
        lambda: pod("p", nodeSelector={"disk": "ssd"}),
        node="b",
    ),
    Case(
        "nodeSelector matching nothing",
        lambda: cluster([node("a"), node("b")]),
        lambda: pod("p", nodeSelector={"disk": "ssd"}),
        message="0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
    ),
    Case(
        "required node affinity In",
        lambda: cluster([node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"})]),
        lambda: pod(
            "p",
            affinity=node_affinity({"key": ZONE, "operator": "In", "values": ["z2"]}),
        ),
        node="b",
    ),
    Case(
        "required node affinity NotIn and DoesNotExist",
        lambda: cluster(
            [
                node("a", labels={ZONE: "z1"}),
                node("b", labels={ZONE: "z2"}),
                node("c", labels={ZONE: "z3", "gpu": "1"}),
            ]
        ),
        lambda: pod(
            "p",
            affinity=node_affinity(
                {"key": ZONE, "operator": "NotIn", "values": ["z1"]},
                {"key": "gpu", "operator": "DoesNotExist"},
            ),
        ),
        node="b",
    ),
    Case(
        "required node affinity Gt / Exists",
        lambda: cluster([node("a", labels={"cores": "4"}), node("b", labels={"cores": "64"})]),
        lambda: pod(
            "p",
            affinity=node_affinity(
                {"key": "cores", "operator": "Gt", "values": ["8"]},
                {"key": "cores", "operator": "Exists"},
            ),
        ),
        node="b",
    ),
    Case(
        "required node affinity Lt",
        lambda: cluster([node("a", labels={"cores": "4"}), node("b", labels={"cores": "64"})]),
        lambda: pod(
            "p",
            affinity=node_affinity({"key": "cores", "operator": "Lt", "values": ["8"]}),
        ),
        node="a",
    ),
    Case(
        "preferred node affinity outweighs a little free capacity",
        lambda: cluster(
            [node("a", labels={"disk": "ssd"}), node("b")], [pod("x", cpu="500m", node_name="a")]
        ),
        lambda: pod(
            "p",
            affinity={
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "preference": {
                                "matchExpressions": [
                                    {"key": "disk", "operator": "In", "values": ["ssd"]}
                                ]
                            },
                        }
                    ]
                }
            },
        ),
        node="a",
    ),
    Case(
        "NoSchedule taint tolerated",
        lambda: cluster([node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])]),
        lambda: pod(
            "p",
            tolerations=[{"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"}],
        ),
        node="a",
    ),
    Case(
        "NoExecute taint not tolerated",
        lambda: cluster(
            [node("a", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])]
        ),
        lambda: pod("p", tolerations=[{"key": "k", "operator": "Exists"}]),
        message="0/1 nodes are available: 1 node(s) had untolerated taint "
        "{node.kubernetes.io/unreachable: }.",
    ),
    Case(
        "Exists without key tolerates everything",
        lambda: cluster([node("a", taints=[{"key": "k", "value": "v", "effect": "NoExecute"}])]),
        lambda: pod("p", tolerations=[{"operator": "Exists"}]),
        node="a",
    ),
    Case(
        "PreferNoSchedule is avoided but not forbidden",
        lambda: cluster(
            [node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), node("b")],
            [pod("x", cpu="1", node_name="b")],
        ),
        lambda: pod("p"),
        node="b",
    ),
    Case(
        "PreferNoSchedule alone still schedules",
        lambda: cluster([node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}])]),
        lambda: pod("p"),
        node="a",
    ),
    Case(
        "host port in use",
        lambda: cluster(
            [node("a"), node("b", cpu="1")],
            [pod("x", node_name="a", ports=[{"containerPort": 80, "hostPort": 8080}])],
        ),
        lambda: pod("p", ports=[{"containerPort": 80, "hostPort": 8080}]),
        node="b",
    ),
    Case(
        "host port conflicts explained",
        lambda: cluster(
            [node("a")], [pod("x", node_name="a", ports=[{"containerPort": 80, "hostPort": 8080}])]
        ),
        lambda: pod("p", ports=[{"containerPort": 80, "hostPort": 8080}]),
        message="0/1 nodes are available: 1 node(s) didn't have free ports for the "
        "requested pod ports.",
    ),
    Case(
        "same host port on another protocol is free",
        lambda: cluster(
            [node("a")],
            [
                pod(
                    "x",
                    node_name="a",
                    ports=[{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}],
                )
            ],
        ),
        lambda: pod("p", ports=[{"containerPort": 53, "hostPort": 53}]),
        node="a",
    ),
    Case(
        "required pod affinity follows the matching pod's zone",
        lambda: cluster(
            [
                node("a", labels={ZONE: "z1"}),
                node("b", labels={ZONE: "z2"}),
                node("c", labels={ZONE: "z2"}),
            ],
            [pod("db", labels={"app": "db"}, node_name="b")],
        ),
        lambda: pod(
            "p",
            affinity=pod_affinity("podAffinity", "db", ZONE),
        ),
        node="c",
    ),
    Case(
        "required pod affinity with no match anywhere",
        lambda: cluster([node("a", labels={ZONE: "z1"})]),
        lambda: pod(
            "p",
            affinity=pod_affinity("podAffinity", "db", ZONE),
        ),
        message="0/1 nodes are available: 1 node(s) didn't match pod affinity rules.",
    ),
    Case(
        "the first pod of a self-affine group may go anywhere",
        lambda: cluster([node("a", labels={ZONE: "z1"})]),
        lambda: pod(
            "p",
            labels={"app": "web"},
            affinity=pod_affinity("podAffinity", "web", ZONE),
        ),
        node="a",
    ),
    Case(
        "required anti-affinity per host",
        lambda: cluster(
            [node("a"), node("b", cpu="1")], [pod("w1", labels={"app": "web"}, node_name="a")]
        ),
        lambda: pod(
            "p",
            labels={"app": "web"},
            affinity=pod_affinity("podAntiAffinity", "web"),
        ),
        node="b",
    ),
    Case(
        "required anti-affinity everywhere",
        lambda: cluster([node("a")], [pod("w1", labels={"app": "web"}, node_name="a")]),
        lambda: pod(
            "p",
            labels={"app": "web"},
            affinity=pod_affinity("podAntiAffinity", "web"),
        ),
        message="0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.",
    ),
    Case(
        "an existing pod's anti-affinity keeps others away",
        lambda: cluster(
            [node("a"), node("b", cpu="1")],
            [
                pod(
                    "loner",
                    node_name="a",
                    affinity=pod_affinity("podAntiAffinity", "web"),
                )
            ],
        ),
        lambda: pod("p", labels={"app": "web"}),
        node="b",
    ),
    Case(
        "anti-affinity in another namespace does not apply",
        lambda: cluster(
            [node("a"), node("b", cpu="1")],
            [pod("w1", ns="other", labels={"app": "web"}, node_name="a")],
        ),
        lambda: pod(
            "p",
            affinity=pod_affinity("podAntiAffinity", "web"),
        ),
        node="a",
    ),
    Case(
        "preferred pod affinity pulls towards the matching pod",
        lambda: cluster(
            [node("a"), node("b")],
            [pod("cache", labels={"app": "cache"}, cpu="500m", node_name="b")],
        ),
        lambda: pod(
            "p",
            affinity=pod_affinity("podAffinity", "cache", preferred=True),
        ),
        node="b",
    ),
    Case(
        "preferred anti-affinity pushes away",
        lambda: cluster(
            [node("a"), node("b", cpu="2")], [pod("w1", labels={"app": "web"}, node_name="a")]
        ),
        lambda: pod(
            "p",
            affinity=pod_affinity("podAntiAffinity", "web", preferred=True),
        ),
        node="b",
    ),
    Case(
        "topology spread DoNotSchedule picks the emptier zone",
        lambda: cluster(
            [node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"})],
            [pod("w1", labels={"app": "web"}, node_name="a")],
        ),
        lambda: pod(
            "p",
            labels={"app": "web"},
            topologySpreadConstraints=[
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE,
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": sel(app="web"),
                }
            ],
        ),
        node="b",
    ),
    Case(
        "topology spread DoNotSchedule refuses to skew",
        lambda: cluster(
            [node("a", labels={ZONE: "z1"}), node("b", cpu="100m", labels={ZONE: "z2"})],
            [pod("w1", labels={"app": "web"}, node_name="a")],
        ),
        lambda: pod(
            "p",
            cpu="500m",
            labels={"app": "web"},
            topologySpreadConstraints=[
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE,
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": sel(app="web"),
                }
            ],
        ),
        message="0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match pod topology spread constraints.",
    ),
    Case(
        "topology spread needs the label",
        lambda: cluster([node("a")]),
        lambda: pod(
            "p",
            topologySpreadConstraints=[
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE,
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": sel(app="web"),
                }
            ],
        ),
        message="0/1 nodes are available: 1 node(s) didn't match pod topology spread "
        "constraints (missing required label).",
    ),
    Case(
        "topology spread ScheduleAnyway prefers the emptier zone",
        lambda: cluster(
            [node("a", labels={ZONE: "z1"}), node("b", cpu="3", labels={ZONE: "z2"})],
            [pod("w1", labels={"app": "web"}, node_name="a")],
        ),
        lambda: pod(
            "p",
            labels={"app": "web"},
            topologySpreadConstraints=[
                {
                    "maxSkew": 1,
                    "topologyKey": ZONE,
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": sel(app="web"),
                }
            ],
        ),
        node="b",
    ),
    Case(
        "pods of one owner spread across nodes",
        lambda: cluster(
            [node("a"), node("b")],
            [pod("r1", owner="rs", node_name="a"), pod("x", cpu="100m", node_name="b")],
        ),
        lambda: pod("p", owner="rs"),
        node="b",
    ),
    Case(
        "a pod-level request is what the pod reserves, not its containers' sum",
        lambda: cluster([node("a", cpu="1")]),
        lambda: pod("p", cpu="100m", resources={"requests": {"cpu": "2"}}),
        message="0/1 nodes are available: 1 Insufficient cpu.",
    ),
    Case(
        "a pod-level request counts for the pods already bound too",
        lambda: cluster(
            [node("a", cpu="2")],
            [pod("x", node_name="a", resources={"requests": {"cpu": "1500m"}})],
        ),
        lambda: pod("p", cpu="600m"),
        message="0/1 nodes are available: 1 Insufficient cpu.",
    ),
    Case(
        "no nodes at all",
        lambda: cluster([]),
        lambda: pod("p"),
        message="0/0 nodes are available: no nodes registered.",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision(case: Case) -> None:
    chosen, message, _ = schedule(case.state(), case.pod())  # type: ignore[arg-type]
    assert (chosen, message) == (case.node, case.message)
