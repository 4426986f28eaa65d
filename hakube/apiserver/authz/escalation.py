"""Escalation prevention: nobody grants through RBAC objects what they do not hold themselves.

As Kubernetes: creating or updating a Role or ClusterRole needs every permission it grants (in
the Role's namespace; cluster-wide for a ClusterRole), unless the writer has the ``escalate``
verb on roles/clusterroles; creating or updating a RoleBinding or ClusterRoleBinding needs every
permission of the role it references (where the binding applies), unless the writer has the
``bind`` verb on that role. So the ``admin`` role of a namespace can hand out its own rights
there, but no more. A rule that grants ``*`` is covered only by a rule that grants ``*``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hakube.api.v1 import rbac_pb2
from hakube.apiserver.authz.attributes import Attributes
from hakube.apiserver.authz.rbac import RbacIndex
from hakube.store.fsm import StoreFSM

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_RESOURCES = {"roles": "Role", "clusterroles": "ClusterRole"}
BINDING_RESOURCES = {"rolebindings", "clusterrolebindings"}


def _atoms(rules: Iterable[rbac_pb2.PolicyRule], ns: str) -> Iterable[Attributes]:
    """Every (verb, group, resource, name) a set of rules grants, as request attributes."""
    for r in rules:
        if r.non_resource_urls:
            continue  # grants nothing in hakube
        for verb in r.verbs:
            for group in r.api_groups:
                for res in r.resources:
                    resource, _, sub = res.partition("/")
                    for name in r.resource_names or [""]:
                        yield Attributes(verb, group, resource, sub, ns, name)


def _missing(
    index: RbacIndex,
    user: str,
    groups: tuple[str, ...],
    rules: Iterable[rbac_pb2.PolicyRule],
    ns: str,
) -> Attributes | None:
    for atom in _atoms(rules, ns):
        if index.why_allowed(user, groups, atom) is None:
            return atom
    return None


def _role_rules(fsm: StoreFSM, ref: Any, ns: str) -> list[rbac_pb2.PolicyRule] | None:
    if ref.kind == "ClusterRole":
        rec = fsm.get("ClusterRole", "", ref.name)
        return None if rec is None else list(rbac_pb2.ClusterRole.FromString(rec.value).rules)
    rec = fsm.get("Role", ns, ref.name)
    return None if rec is None else list(rbac_pb2.Role.FromString(rec.value).rules)


def refusal(
    index: RbacIndex, fsm: StoreFSM, user: str, groups: tuple[str, ...], a: Attributes
) -> str | None:
    """Why this write of an RBAC object would escalate the writer's rights (None: it does not,
    or it is no such write)."""
    if (
        a.group != RBAC_GROUP
        or a.verb not in ("create", "update")
        or a.obj is None
        or a.subresource
    ):
        return None
    ns = a.namespace
    if a.resource in ROLE_RESOURCES:
        if index.why_allowed(
            user, groups, Attributes("escalate", RBAC_GROUP, a.resource, namespace=ns, name=a.name)
        ):
            return None
        gap = _missing(index, user, groups, a.obj.rules, ns)
        if gap is None:
            return None
        return (
            f'user "{user}" may not {a.verb} {ROLE_RESOURCES[a.resource]} "{a.name}": it '
            f"grants {gap.verb} {gap.full_resource}{_group(gap)}, which the user does not "
            "hold (needs the escalate verb)"
        )
    if a.resource in BINDING_RESOURCES:
        ref = a.obj.role_ref
        ref_resource = "clusterroles" if ref.kind == "ClusterRole" else "roles"
        if index.why_allowed(
            user, groups, Attributes("bind", RBAC_GROUP, ref_resource, namespace=ns, name=ref.name)
        ):
            return None
        rules = _role_rules(fsm, ref, ns)
        if rules is None:
            return (
                f'user "{user}" may not bind {ref.kind} "{ref.name}": it does not exist '
                "(needs the bind verb on it)"
            )
        gap = _missing(index, user, groups, rules, ns)
        if gap is None:
            return None
        return (
            f'user "{user}" may not bind {ref.kind} "{ref.name}": it grants {gap.verb} '
            f"{gap.full_resource}{_group(gap)}, which the user does not hold (needs the "
            "bind verb on it)"
        )
    return None


def _group(a: Attributes) -> str:
    return f" (group {a.group})" if a.group else ""
