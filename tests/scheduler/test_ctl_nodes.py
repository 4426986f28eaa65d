"""hakubectl taint / cordon / uncordon / drain through the real command line."""

from __future__ import annotations

import subprocess
import time

import pytest

from hakube.api.convert import from_dict
from hakube.client import Client, errors
from hakube.testing.cluster import LocalCluster
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for
from tests.cli.conftest import REPO, Result, ctl_command, ctl_env

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ctl(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = str(tmp_path_factory.mktemp("home"))

    def run(*args: str, timeout: float = 60) -> Result:
        env = ctl_env(
            home, HAKUBE_SERVER=",".join(cluster.endpoints()), HAKUBE_CONFIG=cluster.admin_config
        )
        p = subprocess.run(
            ctl_command(*args), capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run


def taints(client: Client, node: str) -> list[tuple[str, str, str]]:
    return [(t.key, t.value, t.effect) for t in client.nodes.get(node).spec.taints]


def test_taint_add_overwrite_and_remove(ctl, client: Client, nodes: FakeKubelet) -> None:  # type: ignore[no-untyped-def]
    nodes.add_node("n1")
    r = ctl("taint", "nodes", "n1", "dedicated=gpu:NoSchedule", "spot:PreferNoSchedule")
    assert (r.rc, r.out.strip()) == (0, "node/n1 tainted"), r.err
    assert taints(client, "n1") == [
        ("dedicated", "gpu", "NoSchedule"),
        ("spot", "", "PreferNoSchedule"),
    ]
    r = ctl("taint", "nodes", "n1", "dedicated=db:NoSchedule")
    assert r.rc == 1 and "--overwrite is false" in r.err
    assert ctl("taint", "node/n1", "dedicated=db:NoSchedule", "--overwrite").rc == 0
    assert ("dedicated", "db", "NoSchedule") in taints(client, "n1")
    r = ctl("taint", "nodes", "n1", "dedicated:NoSchedule-", "spot-")
    assert (r.rc, r.out.strip()) == (0, "node/n1 untainted")
    assert taints(client, "n1") == []
    r = ctl("taint", "nodes", "n1", "ghost-")
    assert r.rc == 1 and 'taint "ghost" not found' in r.err
    r = ctl("taint", "nodes", "n1", "k=v:Sometimes")
    assert r.rc == 1 and 'effect "Sometimes" must be one of' in r.err
    r = ctl("taint", "nodes", "missing", "k=v:NoSchedule")
    assert r.rc == 1 and 'nodes "missing" not found' in r.err


def test_cordon_and_uncordon(ctl, client: Client, nodes: FakeKubelet) -> None:  # type: ignore[no-untyped-def]
    nodes.add_node("n1")
    assert ctl("cordon", "n1").out.strip() == "node/n1 cordoned"
    assert client.nodes.get("n1").spec.unschedulable
    assert ctl("cordon", "n1").out.strip() == "node/n1 already cordoned"
    assert ctl("uncordon", "n1").out.strip() == "node/n1 uncordoned"
    assert not client.nodes.get("n1").spec.unschedulable


def pod(name: str, node: str, owner_kind: str = "ReplicaSet", grace: int = 30) -> object:
    meta: dict[str, object] = {"name": name}
    if owner_kind:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner_kind,
                "name": "o",
                "uid": f"uid-{owner_kind}",
                "controller": True,
            }
        ]
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": grace,
                "containers": [{"name": "c", "image": "busybox:1"}],
            },
        }
    )


def gone(client: Client, name: str) -> bool:
    try:
        client.pods.get(name)
    except errors.NotFound:
        return True
    return False


def test_drain_refuses_daemonset_and_bare_pods_then_evicts_gracefully(
    ctl,
    client: Client,
    nodes: FakeKubelet,  # type: ignore[no-untyped-def]
) -> None:
    nodes.add_node("n1")
    nodes.add_node("n2")
    client.pods.create(pod("web-1", "n1", grace=1))  # type: ignore[arg-type]
    client.pods.create(pod("web-2", "n1", grace=1))  # type: ignore[arg-type]
    client.pods.create(pod("ds-1", "n1", owner_kind="DaemonSet"))  # type: ignore[arg-type]
    client.pods.create(pod("bare", "n1", owner_kind="", grace=1))  # type: ignore[arg-type]
    client.pods.create(pod("other", "n2"))  # type: ignore[arg-type]
    r = ctl("drain", "n1")
    assert r.rc == 1
    assert "use --ignore-daemonsets" in r.err and "default/ds-1" in r.err
    assert "use --force" in r.err and "default/bare" in r.err
    assert not gone(client, "web-1")  # nothing was evicted
    started = time.monotonic()
    r = ctl("drain", "n1", "--ignore-daemonsets", "--force", "--timeout", "30s")
    took = time.monotonic() - started
    assert r.rc == 0, r.err
    assert "node/n1 drained" in r.out and "evicting pod default/web-1" in r.out
    assert took >= 1.0  # the pods' one-second grace period was respected
    assert gone(client, "web-1") and gone(client, "web-2") and gone(client, "bare")
    assert not gone(client, "ds-1") and not gone(client, "other")
    assert client.nodes.get("n1").spec.unschedulable


def test_drain_times_out_on_a_pod_that_does_not_stop(
    ctl,
    client: Client,
    nodes: FakeKubelet,  # type: ignore[no-untyped-def]
) -> None:
    nodes.add_node("n1")
    client.pods.create(pod("slow", "n1", grace=30))  # type: ignore[arg-type]
    r = ctl("drain", "n1", "--timeout", "1s")
    assert r.rc == 1 and "drain did not complete within 1s" in r.err
    assert client.pods.get("slow").metadata.deletion_grace_period_seconds == 30
    r = ctl("drain", "n1", "--grace-period", "0", "--timeout", "20s")
    assert r.rc == 0, r.err
    wait_for(lambda: gone(client, "slow"), 10, "the pod to go")
