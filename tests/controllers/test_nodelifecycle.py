"""Node lifecycle: a node whose lease stops is tainted and its pods evicted; it heals on return.

Short timings (grace 2 s, default toleration 2 s); nodes are simulated by the test, which
renews their leases (hakube.testing.fakekubelet) and stops renewing to "kill" a node.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hakube.api.convert import from_dict
from hakube.api.timestamps import micro_time
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, errors
from hakube.controllers.nodelifecycle import NOT_READY, UNREACHABLE, NodeLifecycleController
from hakube.controllers.settings import ControllerSettings
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.controllers.workloads import in_process

pytestmark = pytest.mark.timeout(120)

FAST = [
    "--controllers",
    "nodelifecycle",
    "--node-monitor-grace-period",
    "2",
    "--node-monitor-period",
    "0.2",
    "--default-unreachable-toleration-seconds",
    "2",
    "--default-not-ready-toleration-seconds",
    "2",
]


@pytest.fixture
def sim(client: Client) -> Iterator[FakeKubelet]:
    with FakeKubelet(client, renew_interval=0.5, run_pods=False) as s:
        yield s
    for n in client.nodes.list().items:
        client.delete(core_pb2.Node, n.metadata.name)
    for lease in client.leases.list(namespace="kube-node-lease").items:
        client.delete(core_pb2.Lease, lease.metadata.name, namespace="kube-node-lease")
    for p in client.pods.list(namespace="").items:
        client.delete(
            pod_pb2.Pod, p.metadata.name, namespace=p.metadata.namespace, grace_period_seconds=0
        )


def bound_pod(client: Client, name: str, node: str, tolerations: list[dict[str, object]]) -> None:
    client.pods.create(
        from_dict(
            {  # type: ignore[arg-type]
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "nodeName": node,
                    "tolerations": tolerations,
                    "containers": [{"name": "c", "image": "busybox:1"}],
                },
            }
        )
    )


def ready(client: Client, node: str) -> str:
    n = client.nodes.get(node)
    return next((c.status for c in n.status.conditions if c.type == "Ready"), "")


def taints(client: Client, node: str) -> set[str]:
    return {t.key for t in client.nodes.get(node).spec.taints if t.effect == "NoExecute"}


def evicted(client: Client, name: str) -> bool:
    try:
        return bool(client.pods.get(name).metadata.deletion_timestamp)
    except errors.NotFound:
        return True


def test_an_unreachable_node_is_tainted_its_pods_evicted_and_it_heals(
    client: Client, sim: FakeKubelet, managers: ComponentProcs
) -> None:
    sim.add_node("n1")
    sim.add_node("n2")
    bound_pod(client, "plain", "n1", [])
    bound_pod(
        client, "stays", "n1", [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]
    )
    bound_pod(
        client,
        "waits",
        "n1",
        [
            {
                "key": UNREACHABLE,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 600,
            }
        ],
    )
    bound_pod(client, "elsewhere", "n2", [])
    managers.start("cm-a", *FAST)
    wait_for(
        lambda: ready(client, "n1") == "True" and not taints(client, "n1"),
        10,
        "the controller to start (n1 healthy)",
    )
    sim.stop_node("n1")
    stopped = time.monotonic()
    wait_for(lambda: taints(client, "n1") == {UNREACHABLE}, 15, "n1 to get the unreachable taint")
    assert time.monotonic() - stopped >= 1.5  # not before the grace period
    assert ready(client, "n1") == "Unknown"
    wait_for(lambda: evicted(client, "plain"), 15, "the pod without toleration to be evicted")
    assert time.monotonic() - stopped >= 3.5  # grace + default toleration
    assert not evicted(client, "stays") and not evicted(client, "waits")
    assert not evicted(client, "elsewhere") and taints(client, "n2") == set()
    assert any(
        e.reason == "TaintManagerEviction" and e.involved_object.name == "plain"
        for e in client.events.list().items
    )
    sim.resume_node("n1")
    wait_for(
        lambda: not taints(client, "n1") and ready(client, "n1") == "True",
        10,
        "n1 to be untainted and Ready once its lease is renewed",
    )
    assert not evicted(client, "waits")


def test_a_not_ready_node_gets_the_not_ready_taint(
    client: Client, sim: FakeKubelet, managers: ComponentProcs
) -> None:
    sim.add_node("n3")
    managers.start("cm-a", *FAST)
    node = client.nodes.get("n3")
    for c in node.status.conditions:
        if c.type == "Ready":
            c.status, c.reason = "False", "KubeletNotReady"
    client.nodes.update_status(node)
    wait_for(lambda: taints(client, "n3") == {NOT_READY}, 10, "the not-ready taint")
    node = client.nodes.get("n3")
    for c in node.status.conditions:
        if c.type == "Ready":
            c.status, c.reason = "True", "KubeletReady"
    client.nodes.update_status(node)
    wait_for(lambda: taints(client, "n3") == set(), 10, "the taint to go once Ready")


def test_a_new_leader_gives_every_node_a_fresh_grace_period(
    client: Client, sim: FakeKubelet, managers: ComponentProcs
) -> None:
    sim.add_node("quiet")
    sim.stop_node("quiet")  # its lease is never renewed again...
    lease = client.leases.get("quiet", namespace="kube-node-lease")
    lease.spec.renew_time = micro_time(time.time() - 3600)  # ...and was last renewed long ago
    client.leases.update(lease)
    started = time.monotonic()
    managers.start("cm-a", *FAST)
    wait_for(lambda: taints(client, "quiet") == {UNREACHABLE}, 20, "the unreachable taint")
    # The lease was stale long before the term began, but a term judges only what it watched.
    assert time.monotonic() - started >= 2.0


def test_a_controller_whose_lease_informer_is_behind_marks_no_node(
    client: Client, sim: FakeKubelet
) -> None:
    """The lease informer stops delivering (as when a busy controller-manager falls behind);
    the node keeps renewing. Before marking it, the controller reads the Lease from the API,
    sees the renewal it missed, and leaves the node alone; once the node really stops, it is
    marked as usual."""
    sim.add_node("renewing")
    settings = ControllerSettings(
        node_monitor_grace_period=2.0,
        node_monitor_period=0.2,
        default_unreachable_toleration_seconds=2.0,
    )
    bound_pod(client, "on-renewing", "renewing", [])
    with in_process(client, NodeLifecycleController, settings) as ctrl:
        assert isinstance(ctrl, NodeLifecycleController)
        ctrl.run()
        wait_for(lambda: ready(client, "renewing") == "True", 10, "the node Ready")
        ctrl.ctx.informers.get(core_pb2.Lease).stop()  # from now on the controller is behind
        until = time.monotonic() + 4 * settings.node_monitor_grace_period
        while time.monotonic() < until:
            assert ready(client, "renewing") == "True", "a renewing node was marked"
            assert not taints(client, "renewing")
            time.sleep(0.2)
        assert ctrl.caught_up >= 1  # it did look stale to the cache, and was checked
        assert not evicted(client, "on-renewing")
        sim.stop_node("renewing")
        wait_for(lambda: taints(client, "renewing") == {UNREACHABLE}, 15, "the dead node's taint")
        assert ready(client, "renewing") == "Unknown"


def test_eviction_time_follows_tolerations() -> None:
    from hakube.api.timestamps import rfc3339
    from hakube.api.v1 import core_pb2 as c
    from hakube.controllers.nodelifecycle import eviction_time

    now = 1_000_000.0
    taint = c.Taint(key=UNREACHABLE, effect="NoExecute", time_added=rfc3339(now - 10))
    defaults = {UNREACHABLE: 300.0, NOT_READY: 300.0}

    def pod(tolerations: list[dict[str, object]]) -> pod_pb2.Pod:
        return from_dict(
            {  # type: ignore[return-value]
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"tolerations": tolerations, "containers": [{"name": "c", "image": "x"}]},
            }
        )

    assert eviction_time(pod([]), [taint], defaults, now) == now - 10 + 300
    forever = {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    assert eviction_time(pod([forever]), [taint], defaults, now) is None
    assert (
        eviction_time(pod([{**forever, "tolerationSeconds": 5}]), [taint], defaults, now)
        == now - 10 + 5
    )
    other = {"key": "other", "operator": "Exists", "effect": "NoExecute"}
    assert eviction_time(pod([other]), [taint], defaults, now) == now - 10 + 300
    assert eviction_time(pod([{"operator": "Exists"}]), [taint], defaults, now) is None
