"""DaemonSets: a pod per eligible node as nodes come and go, and a bounded rolling update."""

from __future__ import annotations

from typing import Any

import pytest

from hakube.api.v1 import core_pb2, pod_pb2, workloads_pb2
from hakube.client import Client
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import finish_terminating, set_finished, set_running
from hakube.testing.wait import owned_pods, wait_for
from tests.controllers.batch.objs import manifest, template, update_spec

pytestmark = pytest.mark.timeout(150)


def node(client: Client, name: str, labels: dict[str, str], taints: Any = ()) -> None:
    n: core_pb2.Node = manifest("Node", name, {"taints": list(taints)}, labels=labels)
    client.nodes.create(n)


def placed(client: Client, ds: workloads_pb2.DaemonSet) -> dict[str, int]:
    """node -> number of live pods of ``ds`` bound there."""
    out: dict[str, int] = {}
    for p in owned_pods(client, ds.metadata.uid):
        if not p.metadata.deletion_timestamp:
            out[p.spec.node_name] = out.get(p.spec.node_name, 0) + 1
    return out


def test_one_pod_per_eligible_node_as_nodes_join_and_leave(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "daemonset")
    node(client, "w1", {"pool": "a"})
    node(client, "w2", {"pool": "a"})
    node(client, "other", {"pool": "b"})
    node(
        client,
        "tainted",
        {"pool": "a"},
        [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
    )
    ds: workloads_pb2.DaemonSet = manifest(
        "DaemonSet",
        "agent",
        {
            "selector": {"matchLabels": {"ds": "agent"}},
            "template": template({"ds": "agent"}, nodeSelector={"pool": "a"}),
        },
    )
    ds = client.daemonsets.create(ds)
    wait_for(lambda: placed(client, ds) == {"w1": 1, "w2": 1}, 20, "pods on w1 and w2")
    pod = owned_pods(client, ds.metadata.uid)[0]
    terms = pod.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert terms.node_selector_terms[0].match_fields[0].values == [pod.spec.node_name]

    node(client, "w3", {"pool": "a"})
    wait_for(lambda: placed(client, ds) == {"w1": 1, "w2": 1, "w3": 1}, 20, "a pod on the new w3")
    client.nodes.delete("w2")
    wait_for(lambda: placed(client, ds) == {"w1": 1, "w3": 1}, 20, "w2's pod removed")
    w3 = client.nodes.get("w3")
    w3.metadata.labels["pool"] = "c"  # no longer selected
    update_spec(client.nodes, w3)
    wait_for(lambda: placed(client, ds) == {"w1": 1}, 20, "w3's pod removed")
    finish_terminating(client, owned_pods(client, ds.metadata.uid))
    w3 = client.nodes.get("w3")
    w3.metadata.labels["pool"] = "a"
    update_spec(client.nodes, w3)
    wait_for(lambda: placed(client, ds) == {"w1": 1, "w3": 1}, 20, "a pod on w3 again")
    failed = next(p for p in owned_pods(client, ds.metadata.uid) if p.spec.node_name == "w1")
    set_finished(client, failed.metadata.name, exit_code=1)
    wait_for(
        lambda: (
            [
                p.metadata.uid
                for p in owned_pods(client, ds.metadata.uid)
                if p.spec.node_name == "w1"
            ]
            not in ([], [failed.metadata.uid])
        ),
        20,
        "the failed pod on w1 replaced",
    )

    for p in owned_pods(client, ds.metadata.uid):
        set_running(client, p.metadata.name)
    wait_for(lambda: client.daemonsets.get("agent").status.number_ready == 2, 20, "status")
    st = client.daemonsets.get("agent").status
    assert (st.desired_number_scheduled, st.current_number_scheduled) == (2, 2)
    assert (st.updated_number_scheduled, st.number_misscheduled) == (2, 0)

    tolerant: workloads_pb2.DaemonSet = manifest(
        "DaemonSet",
        "tolerant",
        {
            "selector": {"matchLabels": {"ds": "tolerant"}},
            "template": template(
                {"ds": "tolerant"},
                tolerations=[{"key": "dedicated", "operator": "Exists"}],
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "pool", "operator": "In", "values": ["a"]}
                                    ]
                                }
                            ]
                        }
                    }
                },
            ),
        },
    )
    tolerant = client.daemonsets.create(tolerant)
    want = {"w1": 1, "w3": 1, "tainted": 1}
    wait_for(lambda: placed(client, tolerant) == want, 20, "the tainted node tolerated")


def test_a_rolling_update_keeps_max_unavailable(client: Client, managers: ComponentProcs) -> None:
    managers.start("cm-a", "--controllers", "daemonset")
    for i in range(4):
        node(client, f"r{i}", {"pool": "roll"})
    ds: workloads_pb2.DaemonSet = manifest(
        "DaemonSet",
        "roller",
        {
            "selector": {"matchLabels": {"ds": "roller"}},
            "template": template({"ds": "roller"}, nodeSelector={"pool": "roll"}),
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        },
    )
    ds = client.daemonsets.create(ds)
    uid = ds.metadata.uid
    wait_for(lambda: len(placed(client, ds)) == 4, 20, "four pods")
    for p in owned_pods(client, uid):
        set_running(client, p.metadata.name)

    ds = client.daemonsets.get("roller")
    ds.spec.template.spec.containers[0].image = "img:2"
    update_spec(client.daemonsets, ds)
    worst = 0

    def step() -> bool:
        nonlocal worst
        pods = owned_pods(client, uid)
        ready = {p.spec.node_name for p in pods if _ready(p)}
        worst = max(worst, 4 - len(ready))
        finish_terminating(client, pods)
        for p in pods:
            if p.status.phase == "Pending" and not p.metadata.deletion_timestamp:
                set_running(client, p.metadata.name)
        live = [p for p in pods if not p.metadata.deletion_timestamp]
        return len(live) == 4 and all(
            c.image == "img:2" and _ready(p) for p in live for c in p.spec.containers
        )

    wait_for(step, 60, "the rolling update to finish", interval=0.05)
    assert worst <= 1  # never more than maxUnavailable nodes without a ready pod
    wait_for(
        lambda: client.daemonsets.get("roller").status.updated_number_scheduled == 4, 20, "status"
    )


def _ready(p: pod_pb2.Pod) -> bool:
    return (
        not p.metadata.deletion_timestamp
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        and p.status.phase == "Running"
    )
