"""Validation of the RBAC kinds (Role, ClusterRole, RoleBinding, ClusterRoleBinding).

The rules are Kubernetes': a resource rule needs verbs, apiGroups and resources; a rule with
nonResourceURLs may have nothing else and is only valid in a ClusterRole (hakube accepts such
rules and grants nothing with them); a binding's roleRef names a Role or ClusterRole of the
rbac.authorization.k8s.io group; subjects are User, Group or ServiceAccount. Names may be any
path segment (``system:kube-scheduler``), not just DNS names.
"""

from __future__ import annotations

from typing import Any, Protocol

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


class _Problems(Protocol):
    def add(self, path: str, message: str) -> None: ...


def check_path_segment_name(value: str, path: str, probs: _Problems) -> None:
    """RBAC object names: non-empty, no "/" or "%", not "." or ".." (Kubernetes' rule)."""
    if not value:
        probs.add(path, "required value")
    elif value in (".", "..") or "/" in value or "%" in value or len(value) > 253:
        probs.add(
            path,
            f'"{value}" is not a valid name (no "/" or "%", not "." or "..", at '
            "most 253 characters)",
        )


def _rules(rules: Any, probs: _Problems, *, namespaced: bool) -> None:
    for i, r in enumerate(rules):
        path = f"rules[{i}]"
        if not r.verbs or any(not v for v in r.verbs):
            probs.add(f"{path}.verbs", "required value (at least one verb)")
        if r.non_resource_urls:
            if namespaced:
                probs.add(
                    f"{path}.nonResourceURLs", "namespaced rules cannot apply to non-resource URLs"
                )
            if r.api_groups or r.resources or r.resource_names:
                probs.add(
                    f"{path}.nonResourceURLs",
                    "rules cannot apply to both resources and non-resource URLs",
                )
            continue
        if not r.api_groups:
            probs.add(f"{path}.apiGroups", 'required value (use "" for the core group)')
        if not r.resources:
            probs.add(f"{path}.resources", "required value")
        for j, res in enumerate(r.resources):
            if not res or res.count("/") > 1 or res.startswith("/") or res.endswith("/"):
                probs.add(
                    f"{path}.resources[{j}]",
                    f'"{res}" must be a resource, resource/subresource, "*" or "*/sub"',
                )
        for j, name in enumerate(r.resource_names):
            if not name:
                probs.add(f"{path}.resourceNames[{j}]", "must not be empty")


def role(m: Any, probs: _Problems) -> None:
    _rules(m.rules, probs, namespaced=True)


def cluster_role(m: Any, probs: _Problems) -> None:
    _rules(m.rules, probs, namespaced=False)


def _binding(m: Any, probs: _Problems, *, cluster: bool) -> None:
    ref = m.role_ref
    if not ref.api_group:
        ref.api_group = RBAC_GROUP
    if ref.api_group != RBAC_GROUP:
        probs.add("roleRef.apiGroup", f'unsupported value "{ref.api_group}" (use "{RBAC_GROUP}")')
    allowed = ("ClusterRole",) if cluster else ("Role", "ClusterRole")
    if ref.kind not in allowed:
        probs.add("roleRef.kind", f'unsupported value "{ref.kind}" (use {" or ".join(allowed)})')
    check_path_segment_name(ref.name, "roleRef.name", probs)
    for i, s in enumerate(m.subjects):
        path = f"subjects[{i}]"
        if s.kind not in SUBJECT_KINDS:
            probs.add(
                f"{path}.kind", f'unsupported value "{s.kind}" (use User, Group or ServiceAccount)'
            )
            continue
        if not s.name:
            probs.add(f"{path}.name", "required value")
        if s.kind == "ServiceAccount":
            if s.api_group:
                probs.add(f"{path}.apiGroup", 'must be "" for a ServiceAccount')
            if cluster and not s.namespace:
                probs.add(f"{path}.namespace", "required value")
        else:
            if not s.api_group:
                s.api_group = RBAC_GROUP
            if s.api_group != RBAC_GROUP:
                probs.add(
                    f"{path}.apiGroup", f'unsupported value "{s.api_group}" (use "{RBAC_GROUP}")'
                )


def role_binding(m: Any, probs: _Problems) -> None:
    _binding(m, probs, cluster=False)


def cluster_role_binding(m: Any, probs: _Problems) -> None:
    _binding(m, probs, cluster=True)


CHECKS = {
    "Role": role,
    "ClusterRole": cluster_role,
    "RoleBinding": role_binding,
    "ClusterRoleBinding": cluster_role_binding,
}
