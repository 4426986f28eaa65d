"""The fake kubelet does what its docstring says, against a real (one-master) cluster: pods
bound to its live nodes run and become Ready after ``ready_delay``, ``never_ready`` pods run but
stay unready, it never binds, and pods being deleted are removed when their "containers" stop:
after ``stop_delay`` or at the end of their grace period, whichever is first."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest

from hakube.api.v1 import pod_pb2
from hakube.client import Client, errors
from hakube.testing.cluster import LocalCluster
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with (
        LocalCluster(str(tmp_path_factory.mktemp("m")), 1) as cluster,
        cluster.client(timeout=20) as c,
    ):
        yield c


def pod(client: Client, name: str, node: str = "", image: str = "app:1") -> pod_pb2.Pod:
    p = client.pods.create(
        pod_pb2.Pod(
            metadata={"name": name, "namespace": "default"},
            spec={"containers": [{"name": "c", "image": image}]},
        )
    )
    if node:
        client.bind(name, node, namespace="default", uid=p.metadata.uid)
    return p


def phase_ready(client: Client, name: str) -> tuple[str, str]:
    p = client.pods.get(name, namespace="default")
    ready = [c.status for c in p.status.conditions if c.type == "Ready"]
    return p.status.phase, (ready[0] if ready else "")


def gone(client: Client, name: str) -> bool:
    try:
        client.pods.get(name, namespace="default")
    except errors.NotFound:
        return True
    return False


def test_bound_pods_run_after_the_ready_delay_and_nothing_else_is_touched(client: Client) -> None:
    with FakeKubelet(
        client, ready_delay=1.0, never_ready=lambda p: "broken" in p.spec.containers[0].image
    ) as k:
        k.add_node("fk-1")
        assert client.nodes.get("fk-1").status.allocatable["cpu"] == "4"
        assert client.leases.get("fk-1", namespace="kube-node-lease").spec.holder_identity
        # What is not its to touch comes first: by the time the pods after it have run (the
        # informer delivers in revision order), a wrong move would have been made.
        pod(client, "unbound")
        pod(client, "elsewhere", "not-ours")
        bound = time.monotonic()
        pod(client, "ok", "fk-1")
        pod(client, "broken", "fk-1", image="app:broken")
        wait_for(lambda: phase_ready(client, "ok") == ("Running", "True"), 20, "ok Ready")
        assert time.monotonic() - bound >= 1.0
        wait_for(lambda: phase_ready(client, "broken")[0] == "Running", 20, "broken Running")
        assert phase_ready(client, "broken") == ("Running", "False")
        assert client.pods.get("ok", namespace="default").status.pod_ip
        assert phase_ready(client, "unbound") == ("Pending", "")
        assert client.pods.get("unbound", namespace="default").spec.node_name == ""
        assert phase_ready(client, "elsewhere") == ("Pending", "")
        # A dead node's pods are left alone (while a live node's, created after, run).
        k.add_node("fk-1b")
        k.stop_node("fk-1")
        pod(client, "late", "fk-1")
        pod(client, "marker", "fk-1b")
        wait_for(lambda: phase_ready(client, "marker")[0] == "Running", 20, "marker Running")
        assert phase_ready(client, "late") == ("Pending", "")
        k.resume_node("fk-1")
        wait_for(lambda: phase_ready(client, "late")[0] == "Running", 20, "late Running")
    for name in ("ok", "broken", "unbound", "elsewhere", "late", "marker"):
        client.pods.delete(name, namespace="default", grace_period_seconds=0)


def test_a_deleted_pod_goes_when_its_containers_stop(client: Client) -> None:
    def run_then_delete(kubelet: FakeKubelet, name: str, grace: int) -> float:
        """Seconds from the delete until the pod is gone."""
        kubelet.add_node(f"{name}-node")
        pod(client, name, f"{name}-node")
        wait_for(lambda: phase_ready(client, name)[0] == "Running", 20, f"{name} Running")
        asked = time.monotonic()
        client.pods.delete(name, namespace="default", grace_period_seconds=grace)
        wait_for(lambda: gone(client, name), 15, f"{name} removed")
        return time.monotonic() - asked

    with FakeKubelet(client) as k:  # containers exit at once on SIGTERM
        assert run_then_delete(k, "quick", 30) < 10  # not the 30 s grace
    with FakeKubelet(client, stop_delay=math.inf) as k:  # containers stop only when killed
        assert run_then_delete(k, "slow", 2) >= 2.0  # at the end of its grace


def test_spread_heartbeats_renew_each_lease_and_post_each_status(client: Client) -> None:
    """Scale mode: each node's lease renewed once per interval from a pool, its status
    heartbeat posted every ``status_interval``, and a stopped node neither."""
    with FakeKubelet(
        client, spread=True, renew_interval=0.5, status_interval=0.5, run_pods=False
    ) as k:
        names = [f"spread-{i}" for i in range(3)]
        for n in names:
            k.add_node(n)
        k.stop_node(names[2])

        def heartbeats() -> dict[str, tuple[str, str]]:
            out = {}
            for n in names:
                renew = client.leases.get(n, namespace="kube-node-lease").spec.renew_time
                ready = [c for c in client.nodes.get(n).status.conditions if c.type == "Ready"]
                out[n] = (renew, ready[0].last_heartbeat_time)
            return out

        def moved_since(before: dict[str, tuple[str, str]]) -> bool:
            now = heartbeats()
            return all(now[n][0] != before[n][0] and now[n][1] != before[n][1] for n in names[:2])

        first = heartbeats()
        wait_for(lambda: moved_since(first), 20, "leases renewed and statuses posted")
        second = heartbeats()  # a beat of the stopped node in flight at stop_node has landed
        wait_for(lambda: moved_since(second), 20, "the live nodes beating again")
        assert heartbeats()[names[2]] == second[names[2]], "a stopped node kept beating"
        assert k.renew_errors == 0 and 0 < k.max_renew_gap < 20
