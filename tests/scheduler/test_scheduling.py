"""The scheduler as a process against three real masters, with simulated nodes."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from hakube.api.convert import from_dict
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(150)

ZONE = "topology.kubernetes.io/zone"


def make_pod(
    name: str, cpu: str = "100m", *, labels: dict[str, str] | None = None, **spec: object
) -> pod_pb2.Pod:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1", "resources": {"requests": {"cpu": cpu}}}
            ],
            **spec,
        },
    }
    return from_dict(doc)  # type: ignore[return-value]


def bound(client: Client, names: list[str]) -> dict[str, str]:
    """Pod name -> node for the given pods, once every one of them is bound; else {}."""
    pods = {p.metadata.name: p.spec.node_name for p in client.pods.list().items}
    return pods if all(pods.get(n) for n in names) else {}


def holder(client: Client) -> str:
    try:
        return client.leases.get("hakube-scheduler", namespace="kube-system").spec.holder_identity
    except errors.NotFound:
        return ""


def test_pods_spread_fit_and_avoid_a_tainted_node(
    client: Client, nodes: FakeKubelet, schedulers: ComponentProcs
) -> None:
    for i, zone in enumerate(("z1", "z1", "z2")):
        nodes.add_node(f"n{i}", cpu="2", labels={ZONE: zone})
    nodes.add_node(
        "tainted", cpu="8", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    )
    schedulers.start("s1")
    names = [f"web-{i}" for i in range(6)]
    for n in names:
        client.pods.create(
            make_pod(
                n,
                "500m",
                labels={"app": "web"},
                topologySpreadConstraints=[
                    {
                        "maxSkew": 1,
                        "topologyKey": ZONE,
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app": "web"}},
                    }
                ],
            )
        )
    placed: dict[str, str] = {}

    def all_bound() -> bool:
        placed.update(bound(client, names))
        return bool(placed)

    wait_for(all_bound, 30, "six web pods to be bound")
    per_node = Counter(placed[n] for n in names)
    assert "tainted" not in per_node
    zones = Counter("z2" if placed[n] == "n2" else "z1" for n in names)
    assert zones == {"z1": 3, "z2": 3}  # maxSkew 1 across two zones
    assert per_node["n2"] == 3 and max(per_node.values()) <= 4  # 2 CPUs, 500m each
    # A pod that tolerates the taint may go there; the GPU-sized one has to.
    client.pods.create(
        make_pod(
            "gpu",
            "4",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
            ],
        )
    )
    wait_for(lambda: bound(client, ["gpu"]), 20, "the tolerating pod to be bound")
    assert client.pods.get("gpu").spec.node_name == "tainted"


def test_an_unschedulable_pod_is_explained_and_retried_when_a_node_joins(
    client: Client, nodes: FakeKubelet, schedulers: ComponentProcs
) -> None:
    nodes.add_node("small-0", cpu="1")
    nodes.add_node("small-1", cpu="1")
    nodes.add_node("tainted", cpu="8", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])
    schedulers.start("s1")
    client.pods.create(make_pod("big", "2"))
    want = "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {k: v}."

    def condition() -> object:
        for c in client.pods.get("big").status.conditions:
            if c.type == "PodScheduled" and c.status == "False":
                return c
        return None

    wait_for(condition, 20, "PodScheduled=False on the pod")
    c = condition()
    assert (c.reason, c.message) == ("Unschedulable", want)  # type: ignore[attr-defined]
    wait_for(
        lambda: any(
            e.reason == "FailedScheduling" and e.involved_object.name == "big"
            for e in client.events.list().items
        ),
        20,
        "a FailedScheduling event",
    )
    event = next(e for e in client.events.list().items if e.reason == "FailedScheduling")
    assert event.type == "Warning" and event.message == want
    nodes.add_node("big-node", cpu="4")
    wait_for(lambda: bound(client, ["big"]), 20, "the pod to be bound once a node fits it")
    assert client.pods.get("big").spec.node_name == "big-node"


def test_a_high_priority_pod_preempts_the_fewest_low_priority_pods(
    client: Client, nodes: FakeKubelet, schedulers: ComponentProcs
) -> None:
    client.priorityclasses.create(core_pb2.PriorityClass(metadata={"name": "high"}, value=1000))
    try:
        nodes.add_node("full", cpu="2")
        schedulers.start("s1")
        low = [f"low-{i}" for i in range(4)]
        for n in low:
            client.pods.create(make_pod(n, "500m", terminationGracePeriodSeconds=1))
        wait_for(lambda: bound(client, low), 20, "the low-priority pods to be bound")
        client.pods.create(make_pod("vip", "1", priorityClassName="high"))
        wait_for(
            lambda: client.pods.get("vip").status.nominated_node_name == "full",
            20,
            "the preemptor to nominate the node",
        )
        wait_for(lambda: bound(client, ["vip"]), 30, "the preemptor to be bound")
        left = [
            p.metadata.name for p in client.pods.list().items if p.metadata.name.startswith("low-")
        ]
        assert len(left) == 2  # exactly the two needed went
        assert any(e.reason == "Preempted" for e in client.events.list().items)
    finally:
        client.delete(core_pb2.PriorityClass, "high")


def test_the_standby_takes_over_and_no_pod_is_bound_twice(
    client: Client, nodes: FakeKubelet, schedulers: ComponentProcs
) -> None:
    for i in range(3):
        nodes.add_node(f"n{i}", cpu="64", pods=500)
    schedulers.start("s1")
    wait_for(lambda: holder(client) == "s1", 20, "s1 to lead")
    schedulers.start("s2")
    bindings: dict[str, list[str]] = {}
    w = client.pods.watch()

    def record() -> None:
        for ev in w:
            p = ev.object
            if p is not None and p.spec.node_name:
                seen = bindings.setdefault(p.metadata.name, [])
                if not seen or seen[-1] != p.spec.node_name:
                    seen.append(p.spec.node_name)

    t = threading.Thread(target=record, daemon=True)
    t.start()
    created: list[str] = []
    for i in range(40):
        created.append(f"a-{i}")
        client.pods.create(make_pod(created[-1], "10m"))
    wait_for(lambda: bound(client, created), 30, "the first batch to be bound")
    wait_for(lambda: "campaigning" in schedulers.log("s2"), 30, "the standby to be up")
    schedulers.kill("s1")
    killed = time.monotonic()
    first = f"b-{0}"
    client.pods.create(make_pod(first, "10m"))
    created.append(first)
    wait_for(lambda: bound(client, [first]), 15, "a pod created after the kill to be bound")
    takeover = time.monotonic() - killed
    for i in range(1, 40):
        created.append(f"b-{i}")
        client.pods.create(make_pod(created[-1], "10m"))
    wait_for(lambda: bound(client, created), 30, "the second batch to be bound")
    assert holder(client) == "s2"
    print(f"standby bound a new pod {takeover:.2f} s after the leader was killed")
    assert takeover <= 5.0, f"standby took {takeover:.1f} s"
    wait_for(lambda: len(bindings) >= len(created), 10, "the watch to see every binding")
    w.stop()
    assert all(len(v) == 1 for v in bindings.values()), {
        k: v for k, v in bindings.items() if len(v) != 1
    }
