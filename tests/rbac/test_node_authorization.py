"""Node authorization on a real three-master cluster: a node's credentials reach its own Node,
Lease, pods and the Secrets those pods use, and nothing of another node's.

Node identities are issued from the cluster CA as a pre-provisioned node holds them
(hakube.testing.nodepki); each attack is tried with node A's certificate against node B's
objects and must leave them unchanged."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, Forbidden, NotFound
from hakube.testing.cluster import LocalCluster
from hakube.testing.nodepki import provision_node

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    with masters3.client() as admin:
        admin.create(core_pb2.Namespace(metadata={"name": "apps"}))
        for node in ("node-a", "node-b"):
            admin.create(
                core_pb2.Secret(
                    metadata={"name": f"{node}-secret", "namespace": "apps"},
                    data={"password": b"s3cret"},
                )
            )
            admin.create(
                core_pb2.ConfigMap(metadata={"name": f"{node}-config", "namespace": "apps"})
            )
            admin.create(
                pod_pb2.Pod(
                    metadata={"name": f"{node}-pod", "namespace": "apps"},
                    spec={
                        "node_name": node,
                        "containers": [
                            {
                                "name": "c",
                                "image": "busybox",
                                "env_from": [{"config_map_ref": {"name": f"{node}-config"}}],
                            }
                        ],
                        "volumes": [{"name": "s", "secret": {"secret_name": f"{node}-secret"}}],
                    },
                )
            )
            admin.create(
                core_pb2.Node(
                    metadata={"name": node, "labels": {"node-role.kubernetes.io/worker": ""}},
                    spec={"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
                )
            )
    return masters3


@pytest.fixture(scope="module")
def node_a(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    pki = provision_node(cluster, str(tmp_path_factory.mktemp("node-a")), "node-a", ["127.0.0.1"])
    with Client(cluster.endpoints(), credentials=pki.tls_files().load()) as c:
        yield c


def test_a_node_reads_the_secrets_of_its_own_pods_only(node_a: Client) -> None:
    assert (
        node_a.get(core_pb2.Secret, "node-a-secret", namespace="apps").data["password"] == b"s3cret"
    )
    assert node_a.get(core_pb2.ConfigMap, "node-a-config", namespace="apps")
    with pytest.raises(
        Forbidden,
        match='user "system:node:node-a" cannot get secrets "node-b-secret" in namespace "apps"',
    ):
        node_a.get(core_pb2.Secret, "node-b-secret", namespace="apps")
    with pytest.raises(Forbidden):
        node_a.get(core_pb2.ConfigMap, "node-b-config", namespace="apps")
    with pytest.raises(Forbidden, match="cannot list secrets"):
        node_a.list(core_pb2.Secret, namespace="apps")


def test_a_node_sees_and_updates_only_the_pods_bound_to_it(
    cluster: LocalCluster, node_a: Client
) -> None:
    mine = node_a.list(pod_pb2.Pod, field_selector="spec.nodeName=node-a").items
    assert [p.metadata.name for p in mine] == ["node-a-pod"]
    with pytest.raises(Forbidden, match="cannot list pods"):
        node_a.list(pod_pb2.Pod)
    with pytest.raises(Forbidden, match="cannot list pods"):
        node_a.list(pod_pb2.Pod, field_selector="spec.nodeName=node-b")
    pod = mine[0]
    pod.status.phase = "Running"
    assert node_a.update_status(pod).status.phase == "Running"
    with cluster.client() as admin:
        theirs = admin.get(pod_pb2.Pod, "node-b-pod", namespace="apps")
    theirs.status.phase = "Failed"
    with pytest.raises(Forbidden, match='cannot update pods/status "node-b-pod"'):
        node_a.update_status(theirs)
    with pytest.raises(Forbidden, match='cannot delete pods "node-b-pod"'):
        node_a.delete(pod_pb2.Pod, "node-b-pod", namespace="apps")
    with pytest.raises(Forbidden):
        node_a.get(pod_pb2.Pod, "node-b-pod", namespace="apps")
    # A pod that is gone answers NOT_FOUND, as the agent expects after a deletion.
    with pytest.raises(NotFound):
        node_a.get(pod_pb2.Pod, "never-existed", namespace="apps")
    with cluster.client() as admin:
        assert admin.get(pod_pb2.Pod, "node-b-pod", namespace="apps").status.phase != "Failed"


def test_a_node_changes_its_own_node_but_may_not_widen_it(
    cluster: LocalCluster, node_a: Client
) -> None:
    mine = node_a.get(core_pb2.Node, "node-a")
    mine.metadata.labels["zone"] = "z1"
    mine = node_a.update(mine)
    mine.status.phase = "Running"
    node_a.update_status(mine)
    theirs = node_a.get(core_pb2.Node, "node-b")  # read, to route its pods; never written
    theirs.spec.unschedulable = True
    with pytest.raises(Forbidden, match='cannot update nodes "node-b"'):
        node_a.update(theirs)
    with pytest.raises(Forbidden, match='cannot update nodes/status "node-b"'):
        node_a.update_status(theirs)
    for change, message in [
        (
            lambda n: n.metadata.labels.pop("node-role.kubernetes.io/worker"),
            'may not set, change or remove its label "node-role.kubernetes.io/worker"',
        ),
        (
            lambda n: n.metadata.labels.update({"node-role.kubernetes.io/master": ""}),
            'label "node-role.kubernetes.io/master"',
        ),
        (lambda n: n.spec.ClearField("taints"), 'may not remove its taint "dedicated'),
    ]:
        current = node_a.get(core_pb2.Node, "node-a")
        change(current)
        with pytest.raises(Forbidden, match=message):
            node_a.update(current)
    with cluster.client() as admin:
        after = admin.get(core_pb2.Node, "node-a")
        assert "node-role.kubernetes.io/worker" in after.metadata.labels
        assert "node-role.kubernetes.io/master" not in after.metadata.labels
        assert [t.key for t in after.spec.taints] == ["dedicated"]
        assert not admin.get(core_pb2.Node, "node-b").spec.unschedulable


def test_a_node_may_not_use_the_node_proxy_or_admin_apis(node_a: Client) -> None:
    with pytest.raises(Forbidden):
        node_a.create(
            pod_pb2.Pod(
                metadata={"name": "sneaky", "namespace": "apps"},
                spec={"node_name": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
            )
        )
    with pytest.raises(Forbidden):
        node_a.list("ClusterRoleBinding")
