"""spec.schedulingGates: a gated pod is not scheduled and says why; gates can only be removed;
once the last is gone the scheduler places the pod."""

from __future__ import annotations

import pytest

from hakube.api.convert import from_dict
from hakube.api.v1 import pod_pb2
from hakube.client import Client, errors
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def gated(name: str, *gates: str) -> pod_pb2.Pod:
    pod = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "schedulingGates": [{"name": g} for g in gates],
                "containers": [{"name": "c", "image": "busybox"}],
            },
        }
    )
    assert isinstance(pod, pod_pb2.Pod)
    return pod


def test_a_gated_pod_waits_until_its_last_gate_is_removed(
    client: Client, nodes: FakeKubelet, schedulers: ComponentProcs
) -> None:
    nodes.add_node("n1", cpu="2")
    schedulers.start("s1")
    client.pods.create(gated("plain"))
    client.pods.create(gated("held", "example.com/quota", "example.com/review"))
    wait_for(
        lambda: client.pods.get("plain", namespace="default").spec.node_name == "n1",
        30,
        "the ungated pod to be bound",
    )
    held = client.pods.get("held", namespace="default")
    assert not held.spec.node_name
    [cond] = [c for c in held.status.conditions if c.type == "PodScheduled"]
    assert (cond.status, cond.reason) == ("False", "SchedulingGated")

    held.spec.scheduling_gates.add(name="example.com/late")
    with pytest.raises(errors.Invalid, match='only deletion is allowed.*"example.com/late"'):
        client.update(held)
    held = client.pods.get("held", namespace="default")
    del held.spec.scheduling_gates[0]
    held = client.update(held)
    assert not client.pods.get("held", namespace="default").spec.node_name
    del held.spec.scheduling_gates[:]
    client.update(held)
    wait_for(
        lambda: client.pods.get("held", namespace="default").spec.node_name == "n1",
        30,
        "the pod to be bound once its gates are gone",
    )


def test_gates_and_a_node_name_do_not_go_together(client: Client) -> None:
    pod = gated("both", "example.com/g")
    pod.spec.node_name = "n1"
    with pytest.raises(
        errors.Invalid,
        match="spec.nodeName: cannot be set until all schedulingGates have been removed",
    ):
        client.pods.create(pod)
    with pytest.raises(errors.Invalid, match=r"spec.schedulingGates\[1\].name: duplicate gate"):
        client.pods.create(gated("twice", "a", "a"))
