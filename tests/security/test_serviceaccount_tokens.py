"""ServiceAccounts and their tokens on a real three-master cluster with a controller-manager:
the default account and root CA ConfigMap per namespace, pod admission, TokenRequest on both
doors, bearer tokens at the REST door (accepted as the account, subject to RBAC), and every way
a token must stop working -- expired, foreign key, wrong audience, account or pod deleted --
plus a node asking for a token of an account none of its pods runs as."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakube.agent.satokens import PodTokens
from hakube.api.v1 import core_pb2, pod_pb2, token_pb2
from hakube.apiserver import serviceaccounts as sa_admission
from hakube.client import Client, Forbidden, Invalid
from hakube.client.tokens import create_token
from hakube.pki import certs, jwt
from hakube.pki.layout import Pki, PkiError
from hakube.pki.tls import Credentials
from hakube.testing.clock import FakeClock
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.wait import wait_for
from tests.conftest import require
from tests.kubeapi.conftest import Kubectl, rest_tls_context

pytestmark = pytest.mark.timeout(120)
AUDIENCE = "https://kubernetes.default.svc"


@pytest.fixture(scope="module")
def cluster(
    masters3: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    with ComponentProcs(
        "controller-manager", masters3.endpoints(), str(tmp_path_factory.mktemp("cm"))
    ) as cm:
        cm.start("cm-a", "--controllers", "serviceaccount")
        yield masters3


@pytest.fixture(scope="module")
def admin(cluster: LocalCluster) -> Iterator[Client]:
    with cluster.client() as c:
        yield c


def _namespace(admin: Client) -> str:
    name = f"sa-{uuid.uuid4().hex[:6]}"
    admin.create(core_pb2.Namespace(metadata={"name": name}))
    wait_for(
        lambda: _get(admin, core_pb2.ServiceAccount, "default", name) is not None,
        20,
        f"the default ServiceAccount of {name}",
    )
    return name


def _get(admin: Client, kind: Any, name: str, ns: str) -> Any:
    found = [o for o in admin.list(kind, namespace=ns).items if o.metadata.name == name]
    return found[0] if found else None


def _pod(name: str, ns: str, *, account: str = "", node: str = "") -> pod_pb2.Pod:
    pod = pod_pb2.Pod(metadata={"name": name, "namespace": ns})
    pod.spec.containers.add(name="c", image="busybox")
    pod.spec.service_account_name = account
    pod.spec.node_name = node
    return pod


def _request(
    address: str,
    ca: bytes,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    pair: tuple[bytes, bytes] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One HTTPS request to the REST door, with a client certificate only if ``pair``."""
    ctx = rest_tls_context(ca, pair)
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _token(
    admin: Client,
    ns: str,
    account: str,
    pod: pod_pb2.Pod | None = None,
    audiences: tuple[str, ...] = (),
) -> str:
    tr = token_pb2.TokenRequest()
    tr.spec.audiences.extend(audiences)
    if pod is not None:
        ref = tr.spec.bound_object_ref
        ref.kind, ref.api_version, ref.name, ref.uid = (
            "Pod",
            "v1",
            pod.metadata.name,
            pod.metadata.uid,
        )
    return create_token(admin.transport, ns, account, tr).status.token


def _list_pods(
    cluster: LocalCluster, ns: str, token: str | None, master: int = 0
) -> tuple[int, dict[str, Any]]:
    return _request(
        cluster.masters[master].k8s_api,
        cluster.credentials.ca,
        "GET",
        f"/api/v1/namespaces/{ns}/pods",
        token=token,
    )


def test_a_new_namespace_gets_its_default_account_and_the_root_ca(
    cluster: LocalCluster, admin: Client
) -> None:
    ns = _namespace(admin)
    wait_for(
        lambda: _get(admin, core_pb2.ConfigMap, "kube-root-ca.crt", ns) is not None,
        20,
        "kube-root-ca.crt",
    )
    cm = _get(admin, core_pb2.ConfigMap, "kube-root-ca.crt", ns)
    assert dict(cm.data) == {"ca.crt": cluster.credentials.ca.decode()}
    # Deleted, both come back; an edited ConfigMap is put back.
    admin.delete(core_pb2.ServiceAccount, "default", namespace=ns)
    cm.data["ca.crt"] = "forged"
    admin.update(cm)
    wait_for(
        lambda: (
            _get(admin, core_pb2.ServiceAccount, "default", ns) is not None
            and _get(admin, core_pb2.ConfigMap, "kube-root-ca.crt", ns).data["ca.crt"]
            == cluster.credentials.ca.decode()
        ),
        20,
        "the default account and the CA ConfigMap restored",
    )


def test_pod_admission_defaults_checks_and_mounts_the_account(admin: Client) -> None:
    ns = _namespace(admin)
    pod = admin.create(_pod("plain", ns))
    assert pod.spec.service_account_name == "default"
    [vol] = [v for v in pod.spec.volumes if v.name.startswith("kube-api-access-")]
    assert len(vol.name) == len("kube-api-access-") + 5
    srcs = vol.projected.sources
    assert srcs[0].service_account_token.expiration_seconds == 3607
    assert srcs[0].service_account_token.path == "token"
    assert srcs[1].config_map.name == "kube-root-ca.crt"
    assert srcs[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
    [mount] = pod.spec.containers[0].volume_mounts
    assert (mount.name, mount.mount_path, mount.read_only) == (
        vol.name,
        sa_admission.MOUNT_PATH,
        True,
    )
    with pytest.raises(Forbidden, match=r"spec\.serviceAccountName: serviceaccount \"ghost\""):
        admin.create(_pod("ghosted", ns, account="ghost"))
    assert _get(admin, pod_pb2.Pod, "ghosted", ns) is None
    off = _pod("off", ns)
    off.spec.automount_service_account_token = False
    assert not admin.create(off).spec.volumes
    quiet = core_pb2.ServiceAccount(metadata={"name": "quiet", "namespace": ns})
    quiet.automount_service_account_token = False
    quiet.image_pull_secrets.add(name="regcred")
    admin.create(quiet)
    made = admin.create(_pod("quiet", ns, account="quiet"))
    assert not made.spec.volumes
    assert [s.name for s in made.spec.image_pull_secrets] == ["regcred"]  # the account's


def test_manifests_with_accounts_and_token_volumes_apply_unchanged(admin: Client) -> None:
    ns = _namespace(admin)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "build-robot", "namespace": ns},
        "automountServiceAccountToken": False,
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nginx", "namespace": ns},
        "spec": {
            "serviceAccountName": "build-robot",
            "containers": [
                {
                    "name": "nginx",
                    "image": "nginx",
                    "volumeMounts": [
                        {"mountPath": "/var/run/secrets/tokens", "name": "vault-token"}
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "vault-token",
                    "projected": {
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "path": "vault-token",
                                    "expirationSeconds": 7200,
                                    "audience": "vault",
                                }
                            }
                        ]
                    },
                }
            ],
        },
    }
    for doc in (account, pod):
        assert admin.apply(doc).action == "created"
        assert admin.apply(doc).action == "unchanged"
    # A pod whose token volume admission added applies unchanged too.
    plain = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert admin.apply(plain).action == "created"
    assert admin.apply(plain).action == "unchanged"
    bad = json.loads(json.dumps(pod))
    bad["metadata"]["name"] = "short"
    source = bad["spec"]["volumes"][0]["projected"]["sources"][0]
    source["serviceAccountToken"]["expirationSeconds"] = 60
    with pytest.raises(Invalid, match=r"serviceAccountToken\.expirationSeconds"):
        admin.apply(bad)


def test_a_token_authenticates_as_its_account_on_every_master_subject_to_rbac(
    cluster: LocalCluster, admin: Client
) -> None:
    ns = _namespace(admin)
    admin.create(core_pb2.ServiceAccount(metadata={"name": "robot", "namespace": ns}))
    pod = admin.create(_pod("p", ns, account="robot", node="n1"))
    # Issued through the REST door by the admin (client certificate), bound to the pod.
    c = cluster.credentials
    code, doc = _request(
        cluster.masters[1].k8s_api,
        c.ca,
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token",
        pair=(c.cert, c.key),
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": "p",
                    "uid": pod.metadata.uid,
                }
            },
        },
    )
    assert code == 201, doc
    token = doc["status"]["token"]
    assert doc["spec"]["expirationSeconds"] == 3600 and doc["spec"]["audiences"] == [AUDIENCE]
    claims = jwt.verify(token, jwt.derive_signing_key(cluster.pki.load_ca().key).public_key())  # type: ignore[arg-type]
    assert claims["sub"] == f"system:serviceaccount:{ns}:robot"
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": pod.metadata.uid}
    assert claims["exp"] - claims["iat"] == 3600
    user = f"system:serviceaccount:{ns}:robot"
    for master in range(3):  # every master verifies every master's tokens
        code, status = _list_pods(cluster, ns, token, master)
        assert code == 403 and f'"{user}"' in status["message"], status
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "robot-view", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
    }
    admin.apply(binding)
    wait_for(lambda: _list_pods(cluster, ns, token)[0] == 200, 10, "the RoleBinding to apply")
    code, listed = _list_pods(cluster, ns, token, 2)
    assert code == 200 and "p" in [i["metadata"]["name"] for i in listed["items"]]


def test_tokens_that_must_not_work_are_401(cluster: LocalCluster, admin: Client) -> None:
    ns = _namespace(admin)
    admin.create(core_pb2.ServiceAccount(metadata={"name": "robot", "namespace": ns}))
    admin.create(core_pb2.ServiceAccount(metadata={"name": "doomed", "namespace": ns}))
    pod = admin.create(_pod("p", ns, account="robot", node="n1"))
    good = _token(admin, ns, "robot", pod)
    assert _list_pods(cluster, ns, good)[0] == 403  # authenticated (RBAC grants nothing)
    key = jwt.derive_signing_key(cluster.pki.load_ca().key)  # type: ignore[arg-type]
    claims = jwt.verify(good, key.public_key())

    def forged(signing_key: Any = key, **changes: Any) -> str:
        return jwt.sign({**claims, **changes}, signing_key)

    now = int(time.time())
    cases = {
        "expired": forged(iat=now - 7200, nbf=now - 7200, exp=now - 1),
        "not yet valid": forged(nbf=now + 600),
        "another key": forged(certs.new_key()),
        "another audience": _token(admin, ns, "robot", pod, audiences=("vault",)),
        "another issuer": forged(iss="https://elsewhere"),
        "another account's name": forged(sub=f"system:serviceaccount:{ns}:admin"),
        "garbage": "not.a.token",
        "alg none": ".".join(
            [
                jwt._b64(json.dumps({"alg": "none"}).encode()),
                jwt._b64(json.dumps(claims).encode()),
                "",
            ]
        ),
    }
    for why, token in cases.items():
        code, status = _list_pods(cluster, ns, token)
        assert (code, status.get("reason")) == (401, "Unauthorized"), (why, status)
    code, status = _list_pods(cluster, ns, None)
    assert (code, status["reason"]) == (401, "Unauthorized")
    # The pod it is bound to deleted: refused (another pod of the same name does not help).
    admin.delete(pod_pb2.Pod, "p", namespace=ns, grace_period_seconds=0)
    admin.create(_pod("p", ns, account="robot", node="n1"))
    assert _list_pods(cluster, ns, good)[0] == 401
    # The account deleted (and made again under its name): refused.
    unbound = _token(admin, ns, "doomed")
    assert _list_pods(cluster, ns, unbound)[0] == 403
    admin.delete(core_pb2.ServiceAccount, "doomed", namespace=ns)
    assert _list_pods(cluster, ns, unbound)[0] == 401
    admin.create(core_pb2.ServiceAccount(metadata={"name": "doomed", "namespace": ns}))
    assert _list_pods(cluster, ns, unbound)[0] == 401
    with pytest.raises(
        Invalid, match=r"spec\.expirationSeconds: may not specify a duration less than 600"
    ):
        tr = token_pb2.TokenRequest()
        tr.spec.expiration_seconds = 599
        create_token(admin.transport, ns, "robot", tr)


def _node_client(cluster: LocalCluster, node: str) -> Client:
    cert, key = cluster.pki.load_ca().issue_pair(
        certs.Identity(f"system:node:{node}", ("system:nodes",))
    )
    return Client(cluster.endpoints(), credentials=Credentials(cluster.credentials.ca, cert, key))


def test_a_node_gets_tokens_only_for_the_accounts_of_its_own_pods(
    cluster: LocalCluster, admin: Client
) -> None:
    ns = _namespace(admin)
    for name in ("robot", "other"):
        admin.create(core_pb2.ServiceAccount(metadata={"name": name, "namespace": ns}))
    pod = admin.create(_pod("p", ns, account="robot", node="n1"))
    with _node_client(cluster, "n1") as n1, _node_client(cluster, "n2") as n2:
        token = _token(n1, ns, "robot", pod)
        assert _list_pods(cluster, ns, token)[0] == 403
        with pytest.raises(Forbidden):
            _token(n2, ns, "robot", pod)  # the pod is not on n2
        with pytest.raises(Forbidden):
            _token(n1, ns, "other")  # no pod of n1 runs as "other"
        with pytest.raises(Forbidden, match="bound to a pod on it"):
            _token(n1, ns, "robot")  # not bound to a pod


def test_the_agent_side_asks_again_at_80_percent_of_a_tokens_lifetime(
    cluster: LocalCluster, admin: Client
) -> None:
    ns = _namespace(admin)
    pod = admin.create(_pod("p", ns))
    clock = FakeClock(time.time())
    asked: list[int] = []

    def request(ns_: str, name: str, tr: token_pb2.TokenRequest) -> token_pb2.TokenRequest:
        asked.append(tr.spec.expiration_seconds)
        return create_token(admin.transport, ns_, name, tr)

    tokens = PodTokens(request, clock.now)
    src = pod_pb2.ServiceAccountTokenProjection(path="token", expiration_seconds=1000)
    first = tokens.token(pod, src)
    assert tokens.refresh_in(pod.metadata.uid) == pytest.approx(800)
    clock.advance(799)
    assert tokens.token(pod, src) == first and asked == [1000]
    clock.advance(2)
    assert tokens.token(pod, src) != first and asked == [1000, 1000]
    tokens.forget(pod.metadata.uid)
    assert tokens.refresh_in(pod.metadata.uid) is None


def test_kubectl_create_token_and_kubectl_with_that_token(
    cluster: LocalCluster, admin: Client, tmp_path: Path
) -> None:
    require(None if shutil.which("kubectl") else "kubectl is not installed")
    ns = _namespace(admin)
    admin.create(core_pb2.ServiceAccount(metadata={"name": "robot", "namespace": ns}))
    kubectl = Kubectl(cluster.kubeconfig(str(tmp_path / "admin")))
    token = kubectl.ok("create", "token", "robot", "-n", ns, "--duration=10m").strip()
    claims = jwt.verify(token, jwt.derive_signing_key(cluster.pki.load_ca().key).public_key())  # type: ignore[arg-type]
    assert claims["exp"] - claims["iat"] == 600
    # A kubeconfig with the token and no client certificate, as a pod's client would use.
    doc = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    doc["users"][0]["user"] = {"token": token}
    as_robot = Kubectl(str(tmp_path / "robot"))
    Path(as_robot.kubeconfig).write_text(yaml.safe_dump(doc))
    r = as_robot("get", "pods", "-n", ns)
    assert r.returncode == 1 and "Forbidden" in r.stderr, r.stderr
    assert f"system:serviceaccount:{ns}:robot" in r.stderr
    binding = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: robot-view, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: ServiceAccount, name: robot, namespace: {ns}}}]
"""
    kubectl.ok("apply", "-f", "-", stdin=binding)
    assert "No resources found" in as_robot("get", "pods", "-n", ns).stderr
    doc["users"][0]["user"] = {"token": token[:-4] + "AAAA"}
    Path(as_robot.kubeconfig).write_text(yaml.safe_dump(doc))
    r = as_robot("get", "pods", "-n", ns)
    assert r.returncode == 1 and "You must be logged in" in r.stderr, r.stderr  # 401


def test_the_token_key_is_refused_when_the_ca_key_is_readable_by_others(tmp_path: Path) -> None:
    pki = Pki(str(tmp_path / "pki"))
    pki.init_ca()
    first = jwt.key_id(pki.token_signing_key().public_key())
    assert jwt.key_id(pki.token_signing_key().public_key()) == first  # derived, not random
    os.chmod(pki.ca_key, 0o644)
    with pytest.raises(PkiError, match=r"ca\.key is readable by others .*chmod 600"):
        pki.token_signing_key()
