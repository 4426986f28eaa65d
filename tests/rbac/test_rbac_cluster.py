"""RBAC end to end on a real three-master cluster: users with certificates from the cluster CA,
roles and bindings applied as Kubernetes manifests with hakubectl, every decision tried against
the masters (and the attack, a request that must be refused, leaves the cluster unchanged)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2, ops_pb2, ops_pb2_grpc, pod_pb2
from hakube.client import Client, Forbidden, NotFound
from hakube.client.config import ClientConfig, tls_settings, write_client_config
from hakube.local import cluster as local
from hakube.pki import certs
from hakube.pki.tls import Credentials, TlsFiles, channel_credentials
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(180)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MANIFESTS = """
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-view, namespace: dev}
subjects:
- kind: User
  name: alice
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: view
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: app-config-reader, namespace: dev}
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["app-config"]
  verbs: ["get", "update"]
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-app-config, namespace: dev}
subjects:
- kind: User
  name: bob
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: app-config-reader
  apiGroup: rbac.authorization.k8s.io
"""


@pytest.fixture(scope="module")
def cluster(masters3: LocalCluster) -> LocalCluster:
    return masters3


def user_credentials(
    cluster: local.LocalCluster, user: str, groups: tuple[str, ...] = ()
) -> Credentials:
    cert, key = cluster.pki.load_ca().issue_pair(certs.Identity(user, groups))
    return Credentials(cluster.credentials.ca, cert, key)


def user_config(cluster: LocalCluster, directory: str, user: str) -> str:
    """A client config file for ``user`` (certificate from the cluster CA)."""
    creds = user_credentials(cluster, user)
    paths = {}
    for what, data in (("ca", creds.ca), ("cert", creds.cert), ("key", creds.key)):
        paths[what] = os.path.join(directory, f"{user}.{what}")
        fd = os.open(paths[what], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    path = os.path.join(directory, f"{user}.conf")
    write_client_config(
        path,
        ClientConfig(
            servers=cluster.endpoints(),
            tls=tls_settings(TlsFiles(paths["ca"], paths["cert"], paths["key"])),
        ),
    )
    return path


def ctl(config: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKUBE_")}
    env.update(PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), HAKUBE_CONFIG=config)
    return subprocess.run(
        [sys.executable, "-m", "hakube.cli.ctl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def applied(cluster: LocalCluster) -> LocalCluster:
    p = ctl(cluster.admin_config, "apply", "-f", "-", stdin=MANIFESTS)
    assert p.returncode == 0, p.stderr
    with cluster.client() as admin:
        admin.create(
            pod_pb2.Pod(
                metadata={"name": "web", "namespace": "dev"},
                spec={"containers": [{"name": "c", "image": "busybox"}]},
            )
        )
        admin.create(
            core_pb2.ConfigMap(metadata={"name": "app-config", "namespace": "dev"}, data={"k": "v"})
        )
        admin.create(core_pb2.ConfigMap(metadata={"name": "other", "namespace": "dev"}))
    return cluster


@pytest.fixture
def alice(applied: LocalCluster) -> Iterator[Client]:
    with Client(applied.endpoints(), credentials=user_credentials(applied, "alice")) as c:
        yield c


def test_a_user_bound_to_view_reads_its_namespace_and_nothing_more(
    applied: LocalCluster, alice: Client
) -> None:
    assert [p.metadata.name for p in alice.list(pod_pb2.Pod, namespace="dev").items] == ["web"]
    with pytest.raises(Forbidden) as err:
        alice.create(
            pod_pb2.Pod(
                metadata={"name": "evil", "namespace": "dev"},
                spec={"containers": [{"name": "c", "image": "busybox"}]},
            )
        )
    assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert 'user "alice" cannot create pods "evil" in namespace "dev"' in err.value.message
    with pytest.raises(Forbidden, match='cannot list pods in namespace "prod"'):
        alice.list(pod_pb2.Pod, namespace="prod")
    with pytest.raises(Forbidden, match="cannot get secrets"):
        alice.get(core_pb2.Secret, "anything", namespace="dev")
    creds = user_credentials(applied, "alice")
    with grpc.secure_channel(applied.endpoints()[1], channel_credentials(creds)) as ch:
        stream = api_pb2_grpc.ObjectServiceStub(ch).Watch(
            api_pb2.WatchRequest(kind="pods", namespace="prod"), timeout=10
        )
        with pytest.raises(grpc.RpcError) as rpc_err:
            next(stream)
    assert rpc_err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'user "alice" cannot watch pods in namespace "prod"' == rpc_err.value.details()
    with pytest.raises(Forbidden, match='cannot delete pods "web"'):
        alice.delete(pod_pb2.Pod, "web", namespace="dev")
    with applied.client() as admin:
        assert admin.get(pod_pb2.Pod, "web", namespace="dev").metadata.deletion_timestamp == ""


def test_a_role_binding_grants_exactly_its_rules(applied: LocalCluster) -> None:
    with Client(applied.endpoints(), credentials=user_credentials(applied, "bob")) as bob:
        cm = bob.get(core_pb2.ConfigMap, "app-config", namespace="dev")
        cm.data["k"] = "changed"
        bob.update(cm)
        with pytest.raises(Forbidden, match='cannot get configmaps "other"'):
            bob.get(core_pb2.ConfigMap, "other", namespace="dev")
        with pytest.raises(Forbidden, match="cannot list configmaps"):
            bob.list(core_pb2.ConfigMap, namespace="dev")
        with pytest.raises(Forbidden, match='cannot delete configmaps "app-config"'):
            bob.delete(core_pb2.ConfigMap, "app-config", namespace="dev")
        # The status subresource but not the pod itself.
        with pytest.raises(Forbidden, match='cannot get pods "web"'):
            bob.get(pod_pb2.Pod, "web", namespace="dev")
        with applied.client() as admin:
            pod = admin.get(pod_pb2.Pod, "web", namespace="dev")
        pod.status.message = "from bob"
        bob.update_status(pod)
        pod.metadata.labels["x"] = "y"
        with pytest.raises(Forbidden, match='cannot update pods "web"'):
            bob.update(pod)


def test_can_i_answers_what_the_server_decides(
    applied: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    conf = user_config(applied, str(tmp_path_factory.mktemp("users")), "alice")
    who = ctl(conf, "auth", "whoami")
    assert who.returncode == 0 and "user: alice" in who.stdout, who.stderr
    for args, answer in [
        (("list", "pods", "-n", "dev"), "yes"),
        (("get", "pods/log", "web", "-n", "dev"), "yes"),
        (("create", "pods", "-n", "dev"), "no"),
        (("list", "pods", "-n", "prod"), "no"),
        (("get", "snapshots.hakube.io"), "no"),
    ]:
        p = ctl(conf, "auth", "can-i", *args)
        assert (p.stdout.strip(), p.returncode) == (answer, 0 if answer == "yes" else 1), (
            args,
            p.stdout,
            p.stderr,
        )
    # Asking about someone else is impersonation: refused to alice, allowed to the admin.
    p = ctl(conf, "auth", "can-i", "list", "pods", "-n", "dev", "--as", "bob")
    assert p.returncode == 1 and 'cannot impersonate user "bob"' in p.stderr, p.stderr
    p = ctl(
        applied.admin_config,
        "auth",
        "can-i",
        "get",
        "configmaps",
        "app-config",
        "-n",
        "dev",
        "--as",
        "bob",
    )
    assert (p.stdout.strip(), p.returncode) == ("yes", 0), p.stderr
    p = ctl(
        applied.admin_config,
        "auth",
        "can-i",
        "get",
        "configmaps",
        "other",
        "-n",
        "dev",
        "--as",
        "bob",
    )
    assert (p.stdout.strip(), p.returncode) == ("no", 1), p.stderr


def test_ops_api_is_for_cluster_admins_only(applied: LocalCluster) -> None:
    endpoint = applied.endpoints()[0]
    for user in ("alice", "system:kube-controller-manager"):
        creds = user_credentials(applied, user)
        with grpc.secure_channel(endpoint, channel_credentials(creds)) as ch:
            ops = ops_pb2_grpc.OpsServiceStub(ch)
            calls = [
                functools.partial(
                    lambda o: list(o.SaveSnapshot(ops_pb2.SaveSnapshotRequest(), timeout=10)), ops
                ),
                functools.partial(
                    ops.RemoveMember, ops_pb2.RemoveMemberRequest(name="m3"), timeout=10
                ),
                functools.partial(ops.TransferLeader, ops_pb2.TransferLeaderRequest(), timeout=10),
                functools.partial(ops.AddMember, ops_pb2.AddMemberRequest(name="m9"), timeout=10),
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as err:
                    call()
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
                assert f'user "{user}" cannot' in (err.value.details() or "")
    # Nothing changed: all three masters still members, and the admin may take a snapshot.
    with applied.channel(endpoint) as ch:
        ops = ops_pb2_grpc.OpsServiceStub(ch)
        assert len(ops.ListMembers(ops_pb2.ListMembersRequest(), timeout=10).members) == 3
        assert b"".join(c.data for c in ops.SaveSnapshot(ops_pb2.SaveSnapshotRequest(), timeout=30))
    assert all(m.alive for m in applied.masters)


def test_a_deleted_default_role_comes_back(applied: LocalCluster) -> None:
    with applied.client() as admin:
        admin.delete("ClusterRole", "view")
        deadline = time.monotonic() + 30
        while True:
            try:
                role = admin.get("ClusterRole", "view")
                break
            except NotFound:
                assert time.monotonic() < deadline, "the view role was not recreated"
                time.sleep(0.2)
        assert role.rules  # type: ignore[attr-defined]


def test_a_namespace_admin_cannot_bind_more_than_it_holds(
    applied: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    grant = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: nadia-admin, namespace: dev}
subjects: [{kind: User, name: nadia, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: admin, apiGroup: rbac.authorization.k8s.io}
"""
    assert ctl(applied.admin_config, "apply", "-f", "-", stdin=grant).returncode == 0
    nadia = user_config(applied, str(tmp_path_factory.mktemp("nadia")), "nadia")
    fine = (
        grant.replace("nadia-admin", "mallory-view")
        .replace("nadia", "mallory")
        .replace("name: admin", "name: view")
    )
    p = ctl(nadia, "apply", "-f", "-", stdin=fine)
    assert p.returncode == 0, p.stderr
    escalate = grant.replace("nadia-admin", "nadia-root").replace(
        "name: admin", "name: cluster-admin"
    )
    p = ctl(nadia, "apply", "-f", "-", stdin=escalate)
    assert p.returncode == 1
    assert 'user "nadia" may not bind ClusterRole "cluster-admin"' in p.stderr, p.stderr
    with applied.client() as admin, pytest.raises(NotFound):
        admin.get("RoleBinding", "nadia-root", namespace="dev")


def test_always_allow_turns_authorization_off_and_says_so(tmp_path: Path) -> None:
    with LocalCluster(str(tmp_path), 1, extra_args=["--authorization-mode", "AlwaysAllow"]) as c:
        with Client(c.endpoints(), credentials=user_credentials(c, "nobody")) as nobody:
            nobody.create(core_pb2.ConfigMap(metadata={"name": "x", "namespace": "default"}))
            assert nobody.get(core_pb2.ConfigMap, "x", namespace="default")
        assert "AUTHORIZATION IS OFF" in Path(c.masters[0].log_path).read_text()


def test_an_unknown_authorization_mode_is_refused(tmp_path: Path) -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "hakube",
            "master",
            "--name",
            "m1",
            "--data-dir",
            str(tmp_path / "d"),
            "--raft-listen",
            "127.0.0.1:1",
            "--authorization-mode",
            "Webhook",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "--authorization-mode" in p.stderr
    assert not (tmp_path / "d").exists()
