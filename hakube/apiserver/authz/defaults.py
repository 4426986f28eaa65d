"""The default ClusterRoles and ClusterRoleBindings, created at bootstrap and kept reconciled.

As Kubernetes' bootstrap policy: every master creates what is missing before it reports ready,
and the Raft leader's master re-checks every few seconds, recreating a deleted default, putting
back the rules of an edited one and the subjects missing from a binding, unless the object
carries ``rbac.authorization.kubernetes.io/autoupdate: "false"`` (an operator's deliberate
change; Kubernetes' switch). Extra subjects an operator added to a default binding are kept.

User-facing roles: cluster-admin (bound to ``system:masters``), admin, edit, view (bind them
in a namespace with a RoleBinding). Component roles, least privilege, each bound to the
component's own identity (hakube.pki.names): the scheduler, the controller-manager, nodes (what
the node authorizer does not cover: events, renewing their certificate) and bootstrap tokens
(joining). Masters reach the store in-process and get no API rights; the ops API (members,
snapshots, leadership) is in no role but cluster-admin.
"""

from __future__ import annotations

import logging
from typing import Any

from hakube.api import kinds
from hakube.api.v1 import api_pb2, rbac_pb2
from hakube.apiserver.authz.attributes import HAKUBE_GROUP
from hakube.apiserver.errors import AlreadyExists, Conflict, NotFound
from hakube.apiserver.objects import ObjectAPI
from hakube.pki import names

log = logging.getLogger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = "kubernetes.io/bootstrapping"
RBAC_GROUP = "rbac.authorization.k8s.io"

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
ALL = READ + WRITE
WORKLOADS = {
    "": [
        "pods",
        "services",
        "endpoints",
        "configmaps",
        "persistentvolumeclaims",
        "serviceaccounts",
    ],
    "apps": [
        "deployments",
        "deployments/scale",
        "replicasets",
        "replicasets/scale",
        "statefulsets",
        "statefulsets/scale",
        "daemonsets",
    ],
    "batch": ["jobs", "cronjobs"],
    "autoscaling": ["horizontalpodautoscalers"],
}
"""What users run in a namespace: admin and edit may write it, view may read it."""
READ_ONLY = {
    "": [
        "pods/log",
        "pods/status",
        "events",
        "namespaces",
        "namespaces/status",
        "resourcequotas",
        "limitranges",
    ],
    "apps": [
        "deployments/status",
        "replicasets/status",
        "statefulsets/status",
        "daemonsets/status",
    ],
    "batch": ["jobs/status", "cronjobs/status"],
    "autoscaling": ["horizontalpodautoscalers/status"],
    "events.k8s.io": ["events"],
}
"""Readable by view, edit and admin, written by nobody of them."""
STORE_GROUPS = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "coordination.k8s.io",
    "scheduling.k8s.io",
    "events.k8s.io",
]
"""Every group of hakube's stored kinds but RBAC's."""

Rule = dict[str, list[str]]


def _rule(
    groups: list[str], resources: list[str], verbs: list[str], names_: list[str] | None = None
) -> Rule:
    r = {"api_groups": groups, "resources": resources, "verbs": verbs}
    if names_:
        r["resource_names"] = names_
    return r


def _per_group(table: dict[str, list[str]], verbs: list[str]) -> list[Rule]:
    return [_rule([g], res, verbs) for g, res in table.items()]


def _user_roles() -> dict[str, list[Rule]]:
    view = _per_group(WORKLOADS, READ) + _per_group(READ_ONLY, READ)
    edit = (
        _per_group(WORKLOADS, ALL)
        + [_rule([""], ["secrets"], ALL), _rule([""], ["pods/exec"], ["create", "get"])]
        + _per_group(READ_ONLY, READ)
    )
    admin = edit + [_rule([RBAC_GROUP], ["roles", "rolebindings"], ALL)]
    return {"view": view, "edit": edit, "admin": admin}


EVENTS = [_rule(["", "events.k8s.io"], ["events"], ["create", "update", "patch"])]
LEADER_LEASES = [
    _rule(["coordination.k8s.io"], ["leases"], ["get", "list", "watch", "create", "update"])
]

CLUSTER_ROLES: dict[str, list[Rule]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"])],
    **_user_roles(),
    "system:kube-scheduler": [
        _rule([""], ["pods"], READ + ["delete"]),  # delete: preemption
        _rule([""], ["pods/binding"], ["create"]),
        _rule([""], ["pods/status"], ["update", "patch"]),
        _rule([""], ["nodes", "namespaces", "persistentvolumeclaims"], READ),
        _rule(["scheduling.k8s.io"], ["priorityclasses"], READ),
        *EVENTS,
        *LEADER_LEASES,
    ],
    "system:kube-controller-manager": [
        # The garbage collector and the namespace controller look at every kind and delete
        # what lost its owner or namespace (as Kubernetes' do); nothing here writes RBAC
        # objects, Secrets' contents excepted, or creates anything but what controllers make.
        _rule(STORE_GROUPS + [RBAC_GROUP], ["*"], READ + ["delete", "deletecollection"]),
        _rule(["", "apps", "batch", "autoscaling"], ["*"], ["update", "patch"]),
        _rule(
            [""],
            ["pods", "configmaps", "endpoints", "persistentvolumeclaims", "serviceaccounts"],
            ["create"],
        ),
        _rule(["apps"], ["replicasets"], ["create"]),
        _rule(["batch"], ["jobs"], ["create"]),
        *EVENTS,
        *LEADER_LEASES,
    ],
    # Nodes read every Node: each routes the others' podCIDRs to their addresses (host-gw),
    # as Kubernetes' system:node role lets nodes get, list and watch Nodes.
    "system:node": [*EVENTS, _rule([""], ["nodes"], READ)],
    # hakube proxy on every node: it reads Services and Endpoints (and Nodes, as kube-proxy
    # does), and writes nothing but events.
    "system:node-proxier": [_rule([""], ["services", "endpoints", "nodes"], READ), *EVENTS],
    # Cluster DNS reads the zone's sources and nothing else: no Secrets, no writes.
    "system:hakube-dns": [_rule([""], ["services", "endpoints"], ["list", "watch"])],
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": [
        _rule(["certificates.k8s.io"], ["certificatesigningrequests/selfnodeclient"], ["create"])
    ],
    "system:node-bootstrapper": [
        _rule(["certificates.k8s.io"], ["certificatesigningrequests"], ["create"])
    ],
}
"""ClusterRole name -> rules (PolicyRule fields)."""

CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "cluster-admin": ("cluster-admin", [("Group", names.ADMINS_GROUP)]),
    "system:kube-scheduler": ("system:kube-scheduler", [("User", names.SCHEDULER_USER)]),
    "system:kube-controller-manager": (
        "system:kube-controller-manager",
        [("User", names.CONTROLLER_MANAGER_USER)],
    ),
    "system:node": ("system:node", [("Group", names.NODES_GROUP)]),
    "system:node-proxier": ("system:node-proxier", [("User", names.PROXY_USER)]),
    "system:hakube-dns": ("system:hakube-dns", [("User", names.DNS_USER)]),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        [("Group", names.NODES_GROUP)],
    ),
    "system:node-bootstrapper": (
        "system:node-bootstrapper",
        [("Group", names.BOOTSTRAPPERS_GROUP)],
    ),
}
"""ClusterRoleBinding name -> (ClusterRole, [(subject kind, name)])."""

assert all(
    HAKUBE_GROUP not in r["api_groups"] for rules in CLUSTER_ROLES.values() for r in rules
), "the ops API belongs to cluster-admin alone"


def _meta(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {BOOTSTRAPPING: "rbac-defaults"},
        "annotations": {AUTOUPDATE: "true"},
    }


def default_objects() -> list[rbac_pb2.ClusterRole | rbac_pb2.ClusterRoleBinding]:
    """The defaults as the store should hold them."""
    out: list[rbac_pb2.ClusterRole | rbac_pb2.ClusterRoleBinding] = []
    for name, rules in CLUSTER_ROLES.items():
        out.append(
            rbac_pb2.ClusterRole(
                metadata=_meta(name), rules=[rbac_pb2.PolicyRule(**r) for r in rules]
            )
        )
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        out.append(
            rbac_pb2.ClusterRoleBinding(
                metadata=_meta(name),
                role_ref=rbac_pb2.RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=role),
                subjects=[
                    rbac_pb2.Subject(kind=k, name=n, api_group=RBAC_GROUP) for k, n in subjects
                ],
            )
        )
    return out


def _repair(want: Any, have: Any) -> Any | None:
    """The stored object with the defaults put back, None when nothing is missing, or
    ``want`` itself when it must be recreated (a binding's roleRef cannot change)."""
    if have.metadata.annotations.get(AUTOUPDATE) == "false":
        return None
    if isinstance(want, rbac_pb2.ClusterRole):
        if list(have.rules) == list(want.rules):
            return None
        fixed = rbac_pb2.ClusterRole()
        fixed.CopyFrom(have)
        del fixed.rules[:]
        fixed.rules.extend(want.rules)
        return fixed
    if have.role_ref != want.role_ref:
        return want
    present = {(s.kind, s.name) for s in have.subjects}
    missing = [s for s in want.subjects if (s.kind, s.name) not in present]
    if not missing:
        return None
    binding = rbac_pb2.ClusterRoleBinding()
    binding.CopyFrom(have)
    binding.subjects.extend(missing)
    return binding


async def reconcile(api: ObjectAPI) -> int:
    """Create missing defaults and repair changed ones; returns how many writes it made.
    Reads this master's replica (the caller makes sure it is current: a barrier, or the
    leader); writes are CAS, so racing another master only costs a retry."""
    changed = 0
    for want in default_objects():
        kind = kinds.BY_MESSAGE[type(want)]
        name = want.metadata.name
        rec = api.fsm.get(kind.name, "", name)
        try:
            if rec is None:
                await api.create(api_pb2.CreateRequest(object=kinds.wrap(want)))
                changed += 1
                continue
            have: Any = kind.message.FromString(rec.value)
            fixed = _repair(want, have)
            if fixed is None:
                continue
            if fixed is want:
                await api.delete(
                    api_pb2.DeleteRequest(
                        kind=kind.name,
                        name=name,
                        preconditions=api_pb2.Preconditions(uid=have.metadata.uid),
                    )
                )
                await api.create(api_pb2.CreateRequest(object=kinds.wrap(want)))
            else:
                fixed.metadata.resource_version = str(rec.mod_rev)
                await api.update(api_pb2.UpdateRequest(object=kinds.wrap(fixed)), status=False)
            log.info("default %s %s restored", kind.name, name)
            changed += 1
        except (AlreadyExists, NotFound, Conflict):
            continue  # another master got there first; the next round looks again
    return changed
