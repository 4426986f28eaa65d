"""StatefulSets: ordered creation and removal, stable names and claims, partitioned updates."""

from __future__ import annotations

from typing import Any

import pytest

from hakube.api.v1 import workloads_pb2
from hakube.client import Client, errors
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import finish_terminating, set_running
from hakube.testing.wait import owned_pods, wait_for
from tests.controllers.batch.objs import manifest, template, update_spec

pytestmark = pytest.mark.timeout(150)


def make_set(client: Client, name: str, replicas: int, **spec: Any) -> workloads_pb2.StatefulSet:
    body = {
        "replicas": replicas,
        "serviceName": f"{name}-hl",
        "selector": {"matchLabels": {"sts": name}},
        "template": template({"sts": name}),
        "volumeClaimTemplates": [
            {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
        ],
        **spec,
    }
    sts: workloads_pb2.StatefulSet = manifest("StatefulSet", name, body)
    return client.statefulsets.create(sts)


def live(client: Client, sts: workloads_pb2.StatefulSet) -> dict[str, Any]:
    return {
        p.metadata.name: p
        for p in owned_pods(client, sts.metadata.uid)
        if not p.metadata.deletion_timestamp
    }


def terminating(client: Client, sts: workloads_pb2.StatefulSet) -> list[str]:
    return [
        p.metadata.name
        for p in owned_pods(client, sts.metadata.uid)
        if p.metadata.deletion_timestamp
    ]


def run_all(client: Client, sts: workloads_pb2.StatefulSet) -> None:
    for name, p in live(client, sts).items():
        if p.status.phase == "Pending":
            set_running(client, name)


def claim_uid(client: Client, name: str) -> str:
    try:
        return client.persistentvolumeclaims.get(name).metadata.uid
    except errors.NotFound:
        return ""


def test_ordered_ready_creates_and_removes_one_at_a_time(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "statefulset")
    sts = make_set(client, "db", 3, template=template({"sts": "db"}, nodeName="n1"))
    seen: list[list[str]] = []
    for i in range(3):
        wait_for(lambda i=i: f"db-{i}" in live(client, sts), 20, f"db-{i}")
        seen.append(sorted(live(client, sts)))
        set_running(client, f"db-{i}")
    assert seen == [["db-0"], ["db-0", "db-1"], ["db-0", "db-1", "db-2"]]
    pod = live(client, sts)["db-1"]
    assert (pod.spec.hostname, pod.spec.subdomain) == ("db-1", "db-hl")
    vol = next(v for v in pod.spec.volumes if v.name == "data")
    assert vol.persistent_volume_claim.claim_name == "data-db-1"
    wait_for(lambda: client.statefulsets.get("db").status.ready_replicas == 3, 20, "3 ready")

    sts = client.statefulsets.get("db")
    sts.spec.replicas = 1
    update_spec(client.statefulsets, sts)
    # pods are bound to a node, so they terminate gracefully until the test finishes them
    wait_for(lambda: terminating(client, sts) == ["db-2"], 20, "db-2 terminating first")
    assert sorted(live(client, sts)) == ["db-0", "db-1"]
    finish_terminating(client, owned_pods(client, sts.metadata.uid))
    wait_for(lambda: terminating(client, sts) == ["db-1"], 20, "then db-1")
    finish_terminating(client, owned_pods(client, sts.metadata.uid))
    wait_for(
        lambda: [p.metadata.name for p in owned_pods(client, sts.metadata.uid)] == ["db-0"],
        20,
        "only db-0 left",
    )
    assert all(claim_uid(client, f"data-db-{i}") for i in range(3))  # claims are kept


def test_parallel_creates_all_at_once(client: Client, managers: ComponentProcs) -> None:
    managers.start("cm-a", "--controllers", "statefulset")
    sts = make_set(client, "par", 3, podManagementPolicy="Parallel")
    wait_for(lambda: sorted(live(client, sts)) == ["par-0", "par-1", "par-2"], 20, "all three")


def test_rolling_update_goes_down_from_the_top_and_honours_the_partition(
    client: Client, managers: ComponentProcs
) -> None:
    managers.start("cm-a", "--controllers", "statefulset")
    sts = make_set(client, "web", 3)
    for i in range(3):
        wait_for(lambda i=i: f"web-{i}" in live(client, sts), 20, f"web-{i}")
        run_all(client, sts)
    wait_for(lambda: client.statefulsets.get("web").status.ready_replicas == 3, 20, "ready")
    old_rev = client.statefulsets.get("web").status.current_revision
    claim = claim_uid(client, "data-web-2")

    sts = client.statefulsets.get("web")
    sts.spec.template.spec.containers[0].image = "img:2"
    sts.spec.update_strategy.rolling_update.partition = 1
    update_spec(client.statefulsets, sts)
    order: list[str] = []

    def image(name: str) -> str:
        p = live(client, sts).get(name)
        return p.spec.containers[0].image if p else ""

    def step() -> bool:
        run_all(client, sts)
        for name in ("web-2", "web-1", "web-0"):
            if image(name) == "img:2" and name not in order:
                order.append(name)
        return "web-1" in order

    wait_for(step, 30, "web-2 and web-1 updated", interval=0.05)
    assert order == ["web-2", "web-1"]
    wait_for(lambda: client.statefulsets.get("web").status.updated_replicas == 2, 20, "status")
    st = client.statefulsets.get("web").status
    assert st.current_revision == old_rev != st.update_revision
    assert image("web-0") == "img:1"  # below the partition
    client.pods.delete("web-0")  # recreated at the current revision, not the update one
    wait_for(lambda: (run_all(client, sts), image("web-0"))[1] == "img:1", 20, "web-0 back")
    assert live(client, sts)["web-0"].metadata.labels["controller-revision-hash"] == old_rev
    assert claim_uid(client, "data-web-2") == claim  # the new web-2 has the old claim

    sts = client.statefulsets.get("web")
    sts.spec.update_strategy.rolling_update.partition = 0
    update_spec(client.statefulsets, sts)
    wait_for(lambda: step() and image("web-0") == "img:2", 30, "web-0 updated", interval=0.05)

    def finished() -> bool:
        run_all(client, sts)  # the new web-0 too
        return client.statefulsets.get("web").status.current_revision == st.update_revision

    wait_for(
        finished,
        20,
        "currentRevision to become the update revision",
    )

    def records() -> list[str]:
        sel = "statefulset.hakube.io/revision-of=web"
        return [c.metadata.name for c in client.configmaps.list(label_selector=sel).items]

    wait_for(lambda: records() == [st.update_revision], 20, "the old revision's record pruned")
