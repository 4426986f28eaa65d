"""The authorizer itself, table-driven, on a real store replica filled through the object API:
RBAC rule semantics, the default roles, the node authorizer and node restriction, and that
every API method has authorization attributes."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2, authz_pb2, core_pb2, pod_pb2
from hakube.apiserver.authz import attributes, defaults
from hakube.apiserver.authz.attributes import METHODS, Attributes
from hakube.apiserver.authz.authorizer import Authorizer, denial
from hakube.apiserver.authz.review import attributes_of
from hakube.apiserver.errors import Invalid
from hakube.apiserver.objects import ObjectAPI
from hakube.store import fsm as store
from hakube.store.fsm import StoreFSM

pytestmark = pytest.mark.timeout(60)


class Immediate:
    def __init__(self, fsm: StoreFSM) -> None:
        self.fsm = fsm

    def submit(self, op: store.Op) -> concurrent.futures.Future[store.Result]:
        fut: concurrent.futures.Future[store.Result] = concurrent.futures.Future()
        fut.set_result(self.fsm.apply_batch([op], _doApply=True)[0])
        return fut


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def create(api: ObjectAPI, doc: dict[str, Any]) -> None:
    run(api.create(api_pb2.CreateRequest(object=kinds.wrap(convert.from_dict(doc)))))


RBAC = "rbac.authorization.k8s.io/v1"


def binding(name: str, ns: str, role_kind: str, role: str, *subjects: dict[str, str]) -> dict:
    doc: dict[str, Any] = {
        "apiVersion": RBAC,
        "kind": "RoleBinding" if ns else "ClusterRoleBinding",
        "metadata": {"name": name, **({"namespace": ns} if ns else {})},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": list(subjects),
    }
    return doc


def user(name: str) -> dict[str, str]:
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def pod(name: str, ns: str, node: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **spec},
    }


@pytest.fixture(scope="module")
def authz() -> tuple[Authorizer, ObjectAPI]:
    fsm = StoreFSM()
    api = ObjectAPI(fsm, Immediate(fsm), clock=lambda: 1_700_000_000.0)  # type: ignore[arg-type]
    for ns in ("default", "dev", "prod", "kube-node-lease"):
        create(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    run(defaults.reconcile(api))
    create(api, binding("alice-view", "dev", "ClusterRole", "view", user("alice")))
    create(
        api,
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {"name": "one-config", "namespace": "dev"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "update"],
                    "resourceNames": ["app-config"],
                },
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
            ],
        },
    )
    create(api, binding("bob-one-config", "dev", "Role", "one-config", user("bob")))
    create(
        api,
        binding(
            "ops-edit",
            "prod",
            "ClusterRole",
            "edit",
            {"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"},
        ),
    )
    create(
        api,
        binding("robot", "dev", "ClusterRole", "view", {"kind": "ServiceAccount", "name": "robot"}),
    )
    create(
        api,
        binding(
            "all-sa-view",
            "",
            "ClusterRole",
            "view",
            {
                "kind": "Group",
                "name": "system:serviceaccounts:prod",
                "apiGroup": "rbac.authorization.k8s.io",
            },
        ),
    )
    # Pods on two nodes, referencing Secrets and ConfigMaps in every way a pod can.
    create(
        api,
        pod(
            "a1",
            "dev",
            "node-a",
            volumes=[
                {"name": "s", "secret": {"secretName": "a-secret"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "a-projected"}}]}},
                {"name": "v", "persistentVolumeClaim": {"claimName": "a-claim"}},
            ],
            imagePullSecrets=[{"name": "a-pull"}],
        ),
    )
    create(
        api,
        pod(
            "a2",
            "dev",
            "node-a",
            containers=[
                {
                    "name": "c",
                    "image": "busybox",
                    "env": [
                        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "a-env", "key": "k"}}}
                    ],
                    "envFrom": [{"configMapRef": {"name": "a-envfrom"}}],
                }
            ],
        ),
    )
    create(
        api,
        pod("b1", "dev", "node-b", volumes=[{"name": "s", "secret": {"secretName": "b-secret"}}]),
    )
    create(
        api,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": "node-a",
                "labels": {"node-role.kubernetes.io/worker": "", "zone": "z1"},
            },
            "spec": {
                "taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}],
                "unschedulable": True,
            },
        },
    )
    return Authorizer(fsm), api


def A(
    verb: str,
    resource: str,
    ns: str = "",
    name: str = "",
    sub: str = "",
    group: str = "",
    **kw: Any,
) -> Attributes:
    return Attributes(verb, group, resource, sub, ns, name, **kw)


NODE = ("system:nodes",)

CASES = [
    # (user, groups, attributes, allowed)
    ("alice", (), A("list", "pods", "dev"), True),
    ("alice", (), A("watch", "deployments", "dev", group="apps"), True),
    ("alice", (), A("get", "pods", "dev", "x", sub="log"), True),
    ("alice", (), A("create", "pods", "dev", "x"), False),
    ("alice", (), A("list", "pods", "prod"), False),
    ("alice", (), A("list", "pods", ""), False),  # all namespaces: cluster scope
    ("alice", (), A("get", "secrets", "dev", "s"), False),  # view excludes Secrets
    ("alice", (), A("create", "pods", "dev", "x", sub="exec"), False),
    ("bob", (), A("get", "configmaps", "dev", "app-config"), True),
    ("bob", (), A("update", "configmaps", "dev", "app-config"), True),
    ("bob", (), A("get", "configmaps", "dev", "other"), False),
    ("bob", (), A("list", "configmaps", "dev"), False),  # resourceNames never allow a list
    ("bob", (), A("delete", "configmaps", "dev", "app-config"), False),
    ("bob", (), A("get", "pods", "dev", "p", sub="log"), True),
    ("bob", (), A("get", "pods", "dev", "p"), False),
    ("bob", (), A("update", "deployments", "dev", "d", sub="scale", group="apps"), True),
    ("bob", (), A("update", "deployments", "dev", "d", group="apps"), False),
    ("bob", (), A("get", "configmaps", "prod", "app-config"), False),
    ("dave", ("ops",), A("create", "deployments", "prod", "d", group="apps"), True),
    (
        "dave",
        ("ops",),
        A("create", "rolebindings", "prod", "r", group="rbac.authorization.k8s.io"),
        False,
    ),
    ("dave", ("ops",), A("create", "deployments", "dev", "d", group="apps"), False),
    ("system:serviceaccount:dev:robot", (), A("list", "pods", "dev"), True),
    ("system:serviceaccount:prod:robot", (), A("list", "pods", "dev"), True),  # group binding
    ("system:serviceaccount:qa:robot", (), A("list", "pods", "dev"), False),
    ("root", ("system:masters",), A("delete", "members", group="hakube.io"), True),
    ("alice", (), A("get", "snapshots", group="hakube.io"), False),
    # Components.
    ("system:kube-scheduler", (), A("create", "pods", "dev", "p", sub="binding"), True),
    ("system:kube-scheduler", (), A("update", "pods", "dev", "p", sub="status"), True),
    ("system:kube-scheduler", (), A("delete", "pods", "dev", "p"), True),
    ("system:kube-scheduler", (), A("update", "pods", "dev", "p"), False),
    ("system:kube-scheduler", (), A("get", "secrets", "dev", "s"), False),
    ("system:kube-scheduler", (), A("get", "snapshots", group="hakube.io"), False),
    ("system:hakube-dns", (), A("list", "services"), True),
    ("system:hakube-dns", (), A("watch", "endpoints", "dev"), True),
    ("system:hakube-dns", (), A("get", "secrets", "dev", "s"), False),
    ("system:hakube-dns", (), A("list", "pods", "dev"), False),
    ("system:hakube-dns", (), A("update", "endpoints", "kube-system", "kube-dns"), False),
    ("system:kube-controller-manager", (), A("create", "pods", "dev", "p"), True),
    (
        "system:kube-controller-manager",
        (),
        A("update", "deployments", "dev", "d", sub="status", group="apps"),
        True,
    ),
    (
        "system:kube-controller-manager",
        (),
        A("delete", "rolebindings", "dev", "r", group="rbac.authorization.k8s.io"),
        True,
    ),
    (
        "system:kube-controller-manager",
        (),
        A("update", "clusterroles", "", "r", group="rbac.authorization.k8s.io"),
        False,
    ),
    ("system:kube-controller-manager", (), A("create", "secrets", "dev", "s"), False),
    ("system:kube-controller-manager", (), A("delete", "members", group="hakube.io"), False),
    ("system:kube-proxy", (), A("watch", "services"), True),
    ("system:kube-proxy", (), A("list", "endpoints"), True),
    ("system:kube-proxy", (), A("update", "endpoints", "dev", "e"), False),
    ("system:kube-proxy", (), A("get", "secrets", "dev", "s"), False),
    ("system:kube-proxy", (), A("list", "pods"), False),
    (
        "system:bootstrap:abcdef",
        ("system:bootstrappers",),
        A("create", "certificatesigningrequests", group="certificates.k8s.io"),
        True,
    ),
    ("system:bootstrap:abcdef", ("system:bootstrappers",), A("get", "secrets", "dev", "s"), False),
    # Nodes.
    ("system:node:node-a", NODE, A("get", "nodes", "", "node-a"), True),
    ("system:node:node-a", NODE, A("update", "nodes", "", "node-a", sub="status"), True),
    # Every node reads every Node (RBAC's system:node role: it routes their podCIDRs), as in
    # Kubernetes; it writes only its own.
    ("system:node:node-a", NODE, A("get", "nodes", "", "node-b"), True),
    ("system:node:node-a", NODE, A("update", "nodes", "", "node-b", sub="status"), False),
    ("system:node:node-a", NODE, A("update", "nodes", "", "node-b"), False),
    ("system:node:node-a", NODE, A("delete", "nodes", "", "node-b"), False),
    ("system:node:node-a", NODE, A("list", "nodes"), True),
    ("system:node:node-a", NODE, A("watch", "nodes"), True),
    ("system:node:node-a", NODE, A("list", "pods", field_selector="spec.nodeName=node-a"), True),
    ("system:node:node-a", NODE, A("watch", "pods", field_selector="spec.nodeName==node-a"), True),
    ("system:node:node-a", NODE, A("watch", "pods", field_selector="spec.nodeName=node-b"), False),
    ("system:node:node-a", NODE, A("list", "pods"), False),
    ("system:node:node-a", NODE, A("update", "pods", "dev", "a1", sub="status"), True),
    ("system:node:node-a", NODE, A("update", "pods", "dev", "b1", sub="status"), False),
    ("system:node:node-a", NODE, A("delete", "pods", "dev", "b1"), False),
    ("system:node:node-a", NODE, A("get", "pods", "dev", "b1"), False),
    ("system:node:node-a", NODE, A("get", "secrets", "dev", "a-secret"), True),
    ("system:node:node-a", NODE, A("get", "secrets", "dev", "a-pull"), True),
    ("system:node:node-a", NODE, A("get", "secrets", "dev", "a-env"), True),
    ("system:node:node-a", NODE, A("get", "configmaps", "dev", "a-projected"), True),
    ("system:node:node-a", NODE, A("get", "configmaps", "dev", "a-envfrom"), True),
    ("system:node:node-a", NODE, A("get", "persistentvolumeclaims", "dev", "a-claim"), True),
    ("system:node:node-a", NODE, A("get", "secrets", "dev", "b-secret"), False),
    ("system:node:node-a", NODE, A("get", "secrets", "prod", "a-secret"), False),
    ("system:node:node-a", NODE, A("list", "secrets", "dev"), False),
    (
        "system:node:node-a",
        NODE,
        A("update", "leases", "kube-node-lease", "node-a", group="coordination.k8s.io"),
        True,
    ),
    (
        "system:node:node-a",
        NODE,
        A("update", "leases", "kube-node-lease", "node-b", group="coordination.k8s.io"),
        False,
    ),
    ("system:node:node-a", NODE, A("create", "events", "dev", "e"), True),
    ("system:node:node-a", NODE, A("create", "pods", "dev", "p", sub="binding"), False),
    ("system:node:node-a", NODE, A("create", "pods", "dev", "p", sub="exec"), False),
    (
        "system:node:node-a",
        NODE,
        A(
            "create",
            "certificatesigningrequests",
            sub="selfnodeclient",
            group="certificates.k8s.io",
        ),
        True,
    ),
    # A certificate naming a node but without the nodes group is no node.
    ("system:node:node-a", (), A("get", "secrets", "dev", "a-secret"), False),
]


@pytest.mark.parametrize(
    ("user_", "groups", "attrs", "allowed"),
    CASES,
    ids=[
        f"{c[0]}-{c[2].verb}-{c[2].full_resource}-{c[2].namespace}-{c[2].name}-{c[3]}"
        for c in CASES
    ],
)
def test_decisions_follow_the_rules_and_bindings(
    authz: tuple[Authorizer, ObjectAPI],
    user_: str,
    groups: tuple[str, ...],
    attrs: Attributes,
    allowed: bool,
) -> None:
    verdict = authz[0].decide(user_, groups, attrs)
    assert verdict.allowed is allowed, verdict.reason


def test_a_denial_names_user_verb_resource_and_namespace() -> None:
    assert (
        denial("alice", A("create", "pods", "dev"))
        == 'user "alice" cannot create pods in namespace "dev"'
    )
    assert (
        denial("alice", A("get", "pods", "dev", "web", sub="log"))
        == 'user "alice" cannot get pods/log "web" in namespace "dev"'
    )
    assert (
        denial("bob", A("delete", "members", group="hakube.io"))
        == 'user "bob" cannot delete members (group hakube.io) at the cluster scope'
    )


def node_update(api: ObjectAPI, **change: Any) -> Attributes:
    rec = api.fsm.get("Node", "", "node-a")
    assert rec is not None
    node = core_pb2.Node.FromString(rec.value)
    for path, value in change.items():
        if path == "labels":
            node.metadata.labels.clear()
            node.metadata.labels.update(value)
        elif path == "taints":
            del node.spec.taints[:]
        elif path == "unschedulable":
            node.spec.unschedulable = value
    return A("update", "nodes", "", "node-a", obj=node)


@pytest.mark.parametrize(
    ("change", "allowed"),
    [
        ({}, True),
        ({"labels": {"node-role.kubernetes.io/worker": "", "zone": "z2"}}, True),
        ({"labels": {"zone": "z1"}}, False),  # removes node-role.kubernetes.io/worker
        (
            {
                "labels": {
                    "node-role.kubernetes.io/worker": "",
                    "node-role.kubernetes.io/master": "",
                    "zone": "z1",
                }
            },
            False,
        ),
        (
            {
                "labels": {
                    "node-role.kubernetes.io/worker": "",
                    "zone": "z1",
                    "node-restriction.kubernetes.io/pool": "gpu",
                }
            },
            False,
        ),
        (
            {
                "labels": {
                    "node-role.kubernetes.io/worker": "",
                    "zone": "z1",
                    "x.node-restriction.kubernetes.io/pool": "gpu",
                }
            },
            False,
        ),
        ({"taints": []}, False),
        ({"unschedulable": False}, False),
    ],
)
def test_a_node_may_not_widen_what_lands_on_it(
    authz: tuple[Authorizer, ObjectAPI], change: dict[str, Any], allowed: bool
) -> None:
    verdict = authz[0].decide("system:node:node-a", NODE, node_update(authz[1], **change))
    assert verdict.allowed is allowed, verdict.reason
    if not allowed:
        assert verdict.reason.startswith('node "node-a" may not')


def test_a_node_may_not_register_itself_with_a_role_label(
    authz: tuple[Authorizer, ObjectAPI],
) -> None:
    node = core_pb2.Node(
        metadata={"name": "node-c", "labels": {"node-role.kubernetes.io/master": ""}}
    )
    verdict = authz[0].decide(
        "system:node:node-c", NODE, A("create", "nodes", "", "node-c", obj=node)
    )
    assert not verdict.allowed
    node.metadata.labels.clear()
    assert (
        authz[0]
        .decide("system:node:node-c", NODE, A("create", "nodes", "", "node-c", obj=node))
        .allowed
    )


def test_the_pod_graph_follows_pods_as_they_come_and_go(
    authz: tuple[Authorizer, ObjectAPI],
) -> None:
    az, api = authz
    ask = A("get", "secrets", "dev", "late-secret")
    assert not az.decide("system:node:node-b", NODE, ask).allowed
    create(
        api,
        pod(
            "b2", "dev", "node-b", volumes=[{"name": "s", "secret": {"secretName": "late-secret"}}]
        ),
    )
    assert az.decide("system:node:node-b", NODE, ask).allowed
    run(
        api.delete(
            api_pb2.DeleteRequest(kind="Pod", namespace="dev", name="b2", grace_period_seconds=0)
        )
    )
    assert not az.decide("system:node:node-b", NODE, ask).allowed


def test_bindings_take_effect_at_once_and_unchanged_stores_do_not_rebuild(
    authz: tuple[Authorizer, ObjectAPI],
) -> None:
    az, api = authz
    ask = A("list", "pods", "prod")
    assert not az.decide("erin", (), ask).allowed
    create(api, binding("erin-view", "prod", "ClusterRole", "view", user("erin")))
    assert az.decide("erin", (), ask).allowed
    built = az.rbac.rebuilds
    create(
        api,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "unrelated", "namespace": "prod"},
        },
    )
    for _ in range(100):
        assert az.decide("erin", (), ask).allowed
    assert az.rbac.rebuilds == built
    run(api.delete(api_pb2.DeleteRequest(kind="RoleBinding", namespace="prod", name="erin-view")))
    assert not az.decide("erin", (), ask).allowed


def test_the_defaults_are_restored_after_edits_and_deletion(
    authz: tuple[Authorizer, ObjectAPI],
) -> None:
    az, api = authz
    run(api.delete(api_pb2.DeleteRequest(kind="ClusterRoleBinding", name="system:kube-scheduler")))
    ask = A("create", "pods", "dev", "p", sub="binding")
    assert not az.decide("system:kube-scheduler", (), ask).allowed
    rec = api.fsm.get("ClusterRole", "", "view")
    assert rec is not None
    view = kinds.BY_NAME["ClusterRole"].message.FromString(rec.value)
    del view.rules[1:]  # type: ignore[attr-defined]
    run(api.update(api_pb2.UpdateRequest(object=kinds.wrap(view)), status=False))
    assert run(defaults.reconcile(api)) == 2
    assert az.decide("system:kube-scheduler", (), ask).allowed
    assert az.decide("alice", (), A("get", "pods", "dev", "x", sub="log")).allowed
    assert run(defaults.reconcile(api)) == 0


def test_a_binding_keeps_its_role_ref(authz: tuple[Authorizer, ObjectAPI]) -> None:
    _, api = authz
    rec = api.fsm.get("RoleBinding", "dev", "alice-view")
    assert rec is not None
    rb = kinds.BY_NAME["RoleBinding"].message.FromString(rec.value)
    rb.role_ref.name = "admin"  # type: ignore[attr-defined]
    with pytest.raises(Invalid, match="roleRef: field is immutable"):
        run(api.update(api_pb2.UpdateRequest(object=kinds.wrap(rb)), status=False))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {
                "kind": "Role",
                "metadata": {"name": "r", "namespace": "dev"},
                "rules": [{"apiGroups": [""], "resources": ["pods"]}],
            },
            "rules[0].verbs: required",
        ),
        (
            {
                "kind": "Role",
                "metadata": {"name": "r", "namespace": "dev"},
                "rules": [{"resources": ["pods"], "verbs": ["get"]}],
            },
            "rules[0].apiGroups: required",
        ),
        (
            {
                "kind": "Role",
                "metadata": {"name": "r", "namespace": "dev"},
                "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
            },
            "namespaced rules cannot apply to non-resource URLs",
        ),
        (
            {"kind": "ClusterRole", "metadata": {"name": "a/b"}, "rules": []},
            'metadata.name: "a/b" is not a valid name',
        ),
        (
            {
                "kind": "RoleBinding",
                "metadata": {"name": "b", "namespace": "dev"},
                "roleRef": {"kind": "Deployment", "name": "x"},
                "subjects": [],
            },
            'roleRef.kind: unsupported value "Deployment"',
        ),
        (
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "Role", "name": "x"},
                "subjects": [],
            },
            'roleRef.kind: unsupported value "Role"',
        ),
        (
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "Robot", "name": "r"}],
            },
            "subjects[0].kind: unsupported value",
        ),
        (
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "r"}],
            },
            "subjects[0].namespace: required",
        ),
    ],
)
def test_bad_rbac_objects_name_the_field(
    authz: tuple[Authorizer, ObjectAPI], doc: dict[str, Any], message: str
) -> None:
    with pytest.raises(Invalid, match=message.replace("[", r"\[").replace("]", r"\]")):
        create(authz[1], {"apiVersion": RBAC, **doc})


def test_a_nonresource_rule_in_a_cluster_role_is_accepted_and_grants_nothing(
    authz: tuple[Authorizer, ObjectAPI],
) -> None:
    create(
        authz[1],
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "health"},
            "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
        },
    )


def test_every_served_method_has_authorization_attributes() -> None:
    from hakube.api.v1 import (
        api_pb2 as api_mod,
    )
    from hakube.api.v1 import (
        authz_pb2 as authz_mod,
    )
    from hakube.api.v1 import join_pb2, nodeproxy_pb2, ops_pb2

    served = {
        m.name
        for mod in (api_mod, authz_mod, join_pb2, nodeproxy_pb2, ops_pb2)
        for s in mod.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    }
    # The server's method names for the same RPCs where they differ.
    renamed = {
        "Grant": "LeaseGrant",
        "KeepAlive": "LeaseKeepAlive",
        "Revoke": "LeaseRevoke",
        "Exec": "ProxyExec",
        "Stats": "ProxyStats",
    }
    assert {renamed.get(m, m) for m in served} - set(METHODS) == set()


def test_method_attributes_come_from_the_request() -> None:
    p = pod_pb2.Pod(metadata={"name": "web", "namespace": "dev"})
    a = METHODS["UpdateStatus"](api_pb2.UpdateRequest(object=kinds.wrap(p)))  # type: ignore[misc]
    assert (a.verb, a.resource, a.subresource, a.namespace, a.name) == (
        "update",
        "pods",
        "status",
        "dev",
        "web",
    )
    a = METHODS["List"](api_pb2.ListRequest(kind="deploy"))  # type: ignore[misc]
    assert (a.verb, a.group, a.resource, a.namespace) == ("list", "apps", "deployments", "")
    a = METHODS["Get"](api_pb2.GetRequest(kind="Node", namespace="x", name="n"))  # type: ignore
    assert (a.resource, a.namespace, a.name) == ("nodes", "", "n")
    a = METHODS["Bind"](api_pb2.BindRequest(name="p", node_name="n"))  # type: ignore[misc]
    assert (a.verb, a.full_resource, a.namespace) == ("create", "pods/binding", "default")
    assert attributes.METHODS["Status"] is None
    ra = attributes_of(authz_pb2.ResourceAttributes(verb="get", resource="po", namespace="x"))
    assert (ra.resource, ra.namespace) == ("pods", "x")


def _role(name: str, ns: str, *rules: dict[str, Any]) -> Any:
    return convert.from_dict(
        {
            "apiVersion": RBAC,
            "kind": "Role" if ns else "ClusterRole",
            "metadata": {"name": name, **({"namespace": ns} if ns else {})},
            "rules": list(rules),
        }
    )


def _binding_obj(ns: str, role_kind: str, role: str) -> Any:
    return convert.from_dict(binding("b", ns, role_kind, role, user("someone")))


def test_nobody_grants_more_than_they_hold(authz: tuple[Authorizer, ObjectAPI]) -> None:
    az, api = authz
    create(api, binding("nadia-admin", "dev", "ClusterRole", "admin", user("nadia")))
    rbac = "rbac.authorization.k8s.io"

    def may(verb: str, resource: str, ns: str, obj: Any, who: str = "nadia") -> bool:
        attrs = A(verb, resource, ns, obj.metadata.name, group=rbac, obj=obj)
        return az.decide(who, (), attrs).allowed

    pods_reader = _role(
        "pods-reader", "dev", {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    )
    assert may("create", "roles", "dev", pods_reader)
    node_reader = _role(
        "node-reader", "dev", {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}
    )
    assert not may("create", "roles", "dev", node_reader)
    verdict = az.decide(
        "nadia", (), A("create", "roles", "dev", "node-reader", group=rbac, obj=node_reader)
    )
    assert verdict.reason == (
        'user "nadia" may not create Role "node-reader": it grants get '
        "nodes, which the user does not hold (needs the escalate verb)"
    )
    everything = _role("all", "dev", {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})
    assert not may("update", "roles", "dev", everything)
    assert may("create", "rolebindings", "dev", _binding_obj("dev", "ClusterRole", "view"))
    assert may("create", "rolebindings", "dev", _binding_obj("dev", "ClusterRole", "admin"))
    assert not may(
        "create", "rolebindings", "dev", _binding_obj("dev", "ClusterRole", "cluster-admin")
    )
    assert not may(
        "create", "rolebindings", "dev", _binding_obj("dev", "ClusterRole", "system:kube-scheduler")
    )
    assert not may("create", "rolebindings", "dev", _binding_obj("dev", "Role", "missing"))
    assert not may("create", "rolebindings", "prod", _binding_obj("prod", "ClusterRole", "view"))
    # The escalate and bind verbs lift the check, as in Kubernetes.
    create(
        api,
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {"name": "granter"},
            "rules": [
                {"apiGroups": [rbac], "resources": ["roles"], "verbs": ["create", "escalate"]},
                {"apiGroups": [rbac], "resources": ["rolebindings"], "verbs": ["create"]},
                {
                    "apiGroups": [rbac],
                    "resources": ["clusterroles"],
                    "verbs": ["bind"],
                    "resourceNames": ["system:kube-scheduler"],
                },
            ],
        },
    )
    create(api, binding("gina-granter", "dev", "ClusterRole", "granter", user("gina")))
    assert may("create", "roles", "dev", everything, who="gina")
    assert may(
        "create",
        "rolebindings",
        "dev",
        _binding_obj("dev", "ClusterRole", "system:kube-scheduler"),
        who="gina",
    )
    assert not may(
        "create",
        "rolebindings",
        "dev",
        _binding_obj("dev", "ClusterRole", "cluster-admin"),
        who="gina",
    )
