"""``hakube master --with-controllers``: kill -9 the master whose in-process scheduler leads;
another master's scheduler resumes within the target, and no pod is bound twice."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hakube.api.convert import from_dict
from hakube.cli.main import main
from hakube.client import Client, errors
from hakube.testing.cluster import LocalCluster
from hakube.testing.fakekubelet import FakeKubelet
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d = str(tmp_path_factory.mktemp("masters"))
    with LocalCluster(d, 3, extra_args=["--with-controllers"]) as c:
        yield c


def holder(client: Client) -> str:
    try:
        return client.leases.get("hakube-scheduler", namespace="kube-system").spec.holder_identity
    except errors.NotFound:
        return ""


def create(client: Client, name: str) -> None:
    client.pods.create(
        from_dict(
            {  # type: ignore[arg-type]
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox:1",
                            "resources": {"requests": {"cpu": "10m"}},
                        }
                    ]
                },
            }
        )
    )


def node_of(client: Client, name: str) -> str:
    try:
        return client.pods.get(name).spec.node_name
    except errors.HakubeError:
        return ""


def test_killing_the_master_under_the_scheduler_hands_over(cluster: LocalCluster) -> None:
    with (
        Client(cluster.endpoints(), timeout=20) as client,
        FakeKubelet(client, run_pods=False) as sim,
    ):
        for i in range(2):
            sim.add_node(f"n{i}", cpu="32", pods=200)
        wait_for(lambda: holder(client), 30, "an in-process scheduler to lead")
        create(client, "before")
        wait_for(lambda: node_of(client, "before"), 20, "the first pod to be bound")
        lead = holder(client).split("_", 1)[0]
        victim = next(m for m in cluster.masters if m.name == lead)
        names = [f"p{i}" for i in range(20)]
        for n in names[:10]:
            create(client, n)
        cluster.kill(victim)
        killed = time.monotonic()
        for n in names[10:]:
            create(client, n)
        wait_for(lambda: node_of(client, "p19"), 30, "a pod created after the kill to be bound")
        took = time.monotonic() - killed
        wait_for(lambda: all(node_of(client, n) for n in names), 30, "every pod to be bound")
        print(f"scheduling resumed {took:.2f} s after kill -9 of master {lead}")
        assert not holder(client).startswith(lead + "_")
        assert took <= 8.0, f"scheduling resumed only after {took:.1f} s"
        # Bind is compare-and-swap: a pod that is bound never moves.
        assert all(node_of(client, n) in ("n0", "n1") for n in names)


def test_a_master_gives_its_controllers_the_cluster_cidr_it_is_started_with(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """``hakube master --with-controllers --cluster-cidr`` (the Ansible playbook's
    hakube_cluster_cidr, which the nodes' proxies get too): a Node gets its podCIDR from that
    range; one overlapping the Service range is refused with one line naming both, exit 2."""
    required = ["--name", "m1", "--data-dir", "/nonexistent", "--raft-listen", "127.0.0.1:1"]
    assert main(["master", *required, "--cluster-cidr", "10.96.0.0/16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--cluster-cidr 10.96.0.0/16" in err and "10.96.0.0/12" in err
    d = str(tmp_path_factory.mktemp("cidr"))
    with (
        LocalCluster(
            d, 1, extra_args=["--with-controllers", "--cluster-cidr", "10.77.0.0/16"]
        ) as c,
        Client(c.endpoints(), timeout=20) as client,
        FakeKubelet(client, run_pods=False) as sim,
    ):
        sim.add_node("n0")
        wait_for(lambda: client.nodes.get("n0").spec.pod_cidr, 30, "a podCIDR for n0")
        assert client.nodes.get("n0").spec.pod_cidr == "10.77.0.0/24"
