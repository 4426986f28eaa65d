"""Deployments: rolling updates within their bounds, rollback, Recreate, progress deadline,
pause/resume, scaling and history -- through the API and hakubectl."""

from __future__ import annotations

import io

import pytest

from hakube.api import rollout
from hakube.api.owners import controller_ref
from hakube.cli import ctl
from hakube.client import Client
from hakube.controllers import deployutil as du
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.controllers.workloads import (
    PodBounds,
    cm,  # noqa: F401 - fixture
    deployment,
    fake_kubelet,
    images,
    set_image,
    wait_rolled_out,
)

pytestmark = pytest.mark.timeout(150)
NS = "deploy-test"

kubelet = fake_kubelet(
    NS, ready_delay=0.2, never_ready=lambda pod: "broken" in pod.spec.containers[0].image
)


def hakubectl(client: Client, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(["-s", ",".join(client.servers), "-n", NS, *argv], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def replicasets(client: Client, name: str) -> dict[int, object]:
    d = client.deployments.get(name, namespace=NS)
    out = {}
    for rs in client.replicasets.list(namespace=NS).items:
        ref = controller_ref(rs.metadata)
        if ref is not None and ref.uid == d.metadata.uid:
            out[rollout.revision(rs)] = rs
    return out


def test_a_rolling_update_stays_within_max_surge_and_max_unavailable(
    client: Client, kubelet: FakeKubelet
) -> None:
    strategy = {
        "type": "RollingUpdate",
        "rolling_update": {
            "max_surge": {"number_value": 1},
            "max_unavailable": {"number_value": 1},
        },
    }
    client.deployments.create(deployment("web", NS, 4, {"app": "web"}, "app:1", strategy=strategy))
    wait_rolled_out(client, NS, "web")
    with PodBounds(client, NS, "web", max_pods=5, min_available=3) as bounds:
        set_image(client, NS, "web", "app:2")
        wait_rolled_out(client, NS, "web")
    assert bounds.violations == []
    assert bounds.events > 8 and bounds.most == 5, "the surge was used"
    assert images(client, NS, "web") == ["app:2"] * 4
    rss = replicasets(client, "web")
    assert sorted(rss) == [1, 2]
    assert rss[1].spec.replicas == 0 and rss[2].spec.replicas == 4
    h = rss[2].metadata.labels[rollout.HASH_LABEL]
    assert rss[2].metadata.name == f"web-{h}"
    assert rss[2].spec.selector.match_labels[rollout.HASH_LABEL] == h
    d = client.deployments.get("web", namespace=NS)
    assert d.metadata.annotations[rollout.REVISION] == "2"
    assert {c.type: c.status for c in d.status.conditions} == {
        "Available": "True",
        "Progressing": "True",
    }
    events = [
        e
        for e in client.events.list(namespace=NS).items
        if e.involved_object.name == "web" and e.reason == "ScalingReplicaSet"
    ]
    assert events


def test_undo_rolls_back_to_the_previous_and_to_a_chosen_revision(
    client: Client, kubelet: FakeKubelet
) -> None:
    client.deployments.create(deployment("back", NS, 2, {"app": "back"}, "app:1"))
    wait_rolled_out(client, NS, "back")
    set_image(client, NS, "back", "app:2")
    code, out = hakubectl(client, "rollout", "status", "deploy/back", "--timeout", "40s")
    assert code == 0 and 'deployment "back" successfully rolled out' in out, out
    code, out = hakubectl(client, "rollout", "undo", "deployment/back")
    assert code == 0 and "deployment.apps/back rolled back" in out, out
    wait_rolled_out(client, NS, "back")
    assert images(client, NS, "back") == ["app:1", "app:1"]
    rss = replicasets(client, "back")
    assert sorted(rss) == [2, 3], "the first ReplicaSet is reused as revision 3"
    code, out = hakubectl(client, "rollout", "history", "deployment", "back")
    assert code == 0 and "REVISION" in out and "\n2 " in out and "\n3 " in out, out
    code, out = hakubectl(client, "rollout", "undo", "deploy/back", "--to-revision", "2")
    assert code == 0, out
    wait_rolled_out(client, NS, "back")
    assert images(client, NS, "back") == ["app:2", "app:2"]
    code, out = hakubectl(client, "rollout", "undo", "deploy/back", "--to-revision", "9")
    assert code == 1 and "revision 9" in out


def test_recreate_never_runs_old_and_new_pods_together(
    client: Client, kubelet: FakeKubelet
) -> None:
    client.deployments.create(
        deployment("recr", NS, 3, {"app": "recr"}, "app:1", strategy={"type": "Recreate"})
    )
    wait_rolled_out(client, NS, "recr")
    with PodBounds(client, NS, "recr", max_pods=3, min_available=0) as bounds:
        set_image(client, NS, "recr", "app:2")
        mixed: list[list[str]] = []

        def no_mix() -> bool:
            imgs = images(client, NS, "recr")
            if len(set(imgs)) > 1:
                mixed.append(imgs)
            return imgs == ["app:2"] * 3

        wait_for(no_mix, 40, "recreate to finish", interval=0.05)
        wait_rolled_out(client, NS, "recr")
    assert not mixed and bounds.violations == [] and bounds.fewest_ready == 0


def test_a_stuck_rollout_exceeds_its_progress_deadline(
    client: Client, kubelet: FakeKubelet
) -> None:
    client.deployments.create(
        deployment("stuck", NS, 2, {"app": "stuck"}, "app:1", progress_deadline_seconds=2)
    )
    wait_rolled_out(client, NS, "stuck")
    set_image(client, NS, "stuck", "broken:1")

    def timed_out() -> bool:
        d = client.deployments.get("stuck", namespace=NS)
        return any(
            c.type == "Progressing"
            and c.status == "False"
            and c.reason == "ProgressDeadlineExceeded"
            for c in d.status.conditions
        )

    wait_for(timed_out, 30, "Progressing=False ProgressDeadlineExceeded", interval=0.2)
    code, out = hakubectl(client, "rollout", "status", "deploy/stuck")
    assert code == 1 and "exceeded its progress deadline" in out, out
    assert len([i for i in images(client, NS, "stuck") if i == "app:1"]) >= 1


def test_pause_scale_resume_restart_and_history_limit(client: Client, kubelet: FakeKubelet) -> None:
    client.deployments.create(
        deployment("pz", NS, 2, {"app": "pz"}, "app:1", revision_history_limit=1)
    )
    wait_rolled_out(client, NS, "pz")
    code, out = hakubectl(client, "rollout", "pause", "deploy/pz")
    assert code == 0 and "paused" in out
    set_image(client, NS, "pz", "app:2")
    code, out = hakubectl(client, "scale", "deploy/pz", "--replicas", "3")
    assert code == 0, out
    wait_for(
        lambda: images(client, NS, "pz") == ["app:1"] * 3,
        30,
        "a paused deployment to scale without rolling out",
        interval=0.1,
    )
    assert sorted(replicasets(client, "pz")) == [1]
    code, out = hakubectl(client, "rollout", "resume", "deploy/pz")
    assert code == 0 and "resumed" in out
    wait_rolled_out(client, NS, "pz")
    assert images(client, NS, "pz") == ["app:2"] * 3
    code, out = hakubectl(client, "rollout", "restart", "deploy/pz")
    assert code == 0 and "restarted" in out
    wait_rolled_out(client, NS, "pz")
    wait_for(
        lambda: sorted(replicasets(client, "pz")) == [2, 3],
        20,
        "history beyond revisionHistoryLimit=1 to be pruned",
        interval=0.1,
    )
    code, out = hakubectl(client, "rollout", "status", "deploy/nonexistent")
    assert code == 1 and "not found" in out


def test_an_opted_in_deployment_rolls_itself_back_when_stuck(
    client: Client, kubelet: FakeKubelet
) -> None:
    d = deployment("auto", NS, 2, {"app": "auto"}, "app:1", progress_deadline_seconds=2)
    d.metadata.annotations[du.AUTO_ROLLBACK] = "true"
    client.deployments.create(d)
    wait_rolled_out(client, NS, "auto")
    set_image(client, NS, "auto", "broken:1")
    wait_for(
        lambda: (
            client.deployments.get("auto", namespace=NS).spec.template.spec.containers[0].image
            == "app:1"
        ),
        30,
        "the deployment to roll itself back",
        interval=0.2,
    )
    wait_rolled_out(client, NS, "auto")
    assert images(client, NS, "auto") == ["app:1", "app:1"]
    rss = replicasets(client, "auto")
    assert sorted(rss) == [2, 3]
    assert rss[2].metadata.annotations.get(du.PROGRESS_FAILED) == "true"

    def reasons() -> set[str]:  # the recorder sends events in the background
        events = client.events.list(namespace=NS).items
        return {e.reason for e in events if e.involved_object.name == "auto"}

    wait_for(
        lambda: {"ProgressDeadlineExceeded", "DeploymentRollback"} <= reasons(), 10, "the events"
    )


def test_scaling_a_stuck_rollout_shares_the_new_pods_proportionally(
    client: Client, kubelet: FakeKubelet
) -> None:
    client.deployments.create(deployment("prop", NS, 4, {"app": "prop"}, "app:1"))
    wait_rolled_out(client, NS, "prop")
    set_image(client, NS, "prop", "broken:2")  # its pods never become ready

    def sizes() -> dict[int, int]:
        return {rev: rs.spec.replicas for rev, rs in replicasets(client, "prop").items()}

    wait_for(
        lambda: sizes() == {1: 3, 2: 2},
        20,
        "the rollout to get stuck at 3 old + 2 new",
        interval=0.1,
    )
    code, out = hakubectl(client, "scale", "deployment/prop", "--replicas", "8")
    assert code == 0, out
    # 8 replicas + 25 % surge = 10 pods allowed; the 5 extra are shared 3:2.
    wait_for(
        lambda: sizes() == {1: 6, 2: 4}, 20, "proportional scaling to 6 old + 4 new", interval=0.1
    )
    set_image(client, NS, "prop", "app:1")
    wait_rolled_out(client, NS, "prop")
    assert images(client, NS, "prop") == ["app:1"] * 8
