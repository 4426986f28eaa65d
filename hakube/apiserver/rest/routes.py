"""Kubernetes URL paths to hakube kinds, and the discovery documents that list them.

``/api/v1/namespaces/NS/pods/NAME/log`` names the group ("" for core), version, namespace,
resource, name and subresource; the kind comes from hakube's kind registry
(hakube.api.kinds), so a kind added there is served here without further code. Discovery is
Kubernetes' legacy (unaggregated) form, which every client understands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hakube.api.kinds import KINDS, Kind

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-hakube",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "python",
    "compiler": "hakube",
    "platform": "linux/amd64",
}
"""What ``/version`` answers: the Kubernetes API level hakube speaks (kubectl warns when the
server is more than one minor version away from it)."""

SUBRESOURCES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Pod": (
        ("status", ("get", "patch", "update")),
        ("binding", ("create",)),
        ("log", ("get",)),
        ("exec", ("create", "get")),
    ),
    "Deployment": (("status", ("get", "patch", "update")), ("scale", ("get", "patch", "update"))),
    "ReplicaSet": (("status", ("get", "patch", "update")), ("scale", ("get", "patch", "update"))),
    "StatefulSet": (("status", ("get", "patch", "update")), ("scale", ("get", "patch", "update"))),
    "ServiceAccount": (("token", ("create",)),),
}
"""Subresources served beyond ``status`` (which every kind with a status has)."""

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

REVIEW_GROUP = "authorization.k8s.io"


@dataclass(frozen=True)
class Route:
    """What a request path names."""

    group: str
    version: str
    resource: str
    kind: Kind | None
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def group_versions() -> dict[str, list[Kind]]:
    """apiVersion ("v1", "apps/v1", ...) -> the kinds served in it."""
    out: dict[str, list[Kind]] = {}
    for k in KINDS:
        out.setdefault(k.api_version, []).append(k)
    return out


_BY_RESOURCE: dict[tuple[str, str], Kind] = {(k.group, k.plural): k for k in KINDS}


def kind_of(group: str, resource: str) -> Kind | None:
    return _BY_RESOURCE.get((group, resource))


def parse(path: str) -> Route | None:
    """The route of a resource path, or None when the path is not one."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = ""
    # /namespaces/NS/RESOURCE... is inside a namespace; /namespaces/NAME[/status] is the
    # Namespace object itself.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return Route(group, version, resource, kind_of(group, resource), ns, name, sub)


def _resource_doc(k: Kind) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": k.plural,
            "singularName": k.name.lower(),
            "namespaced": k.namespaced,
            "kind": k.name,
            "verbs": VERBS,
            "shortNames": list(k.short_names),
            **({"categories": ["all"]} if k.name in _ALL else {}),
        }
    ]
    subs = list(SUBRESOURCES.get(k.name, ()))
    if k.has_status and not any(s == "status" for s, _ in subs):
        subs.insert(0, ("status", ("get", "patch", "update")))
    for sub, verbs in subs:
        kind = {"scale": "Scale", "binding": "Binding", "token": "TokenRequest"}.get(sub, k.name)
        out.append(
            {
                "name": f"{k.plural}/{sub}",
                "singularName": "",
                "namespaced": k.namespaced,
                "kind": kind,
                "verbs": list(verbs),
                **({"group": "autoscaling", "version": "v1"} if sub == "scale" else {}),
                **({"group": "authentication.k8s.io", "version": "v1"} if sub == "token" else {}),
            }
        )
    return out


_ALL = {"Pod", "Service", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"}
"""The kinds ``kubectl get all`` lists (Kubernetes' ``all`` category)."""


def resource_list(api_version: str) -> dict[str, Any] | None:
    """The APIResourceList of one group version (None: not served)."""
    if api_version == f"{REVIEW_GROUP}/v1":
        resources = [
            {
                "name": name,
                "singularName": "",
                "namespaced": False,
                "kind": kind,
                "verbs": ["create"],
            }
            for name, kind in (
                ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
                ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
            )
        ]
    else:
        kinds = group_versions().get(api_version)
        if kinds is None:
            return None
        resources = [doc for k in kinds for doc in _resource_doc(k)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": api_version,
        "resources": resources,
    }


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def group_list() -> dict[str, Any]:
    """The APIGroupList of every named group (the core group is under /api)."""
    groups: dict[str, list[str]] = {}
    for gv in group_versions():
        if "/" in gv:
            g, _, v = gv.partition("/")
            groups.setdefault(g, []).append(v)
    groups.setdefault(REVIEW_GROUP, []).append("v1")
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_doc(g, vs) for g, vs in groups.items()],
    }


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def group_doc(group: str) -> dict[str, Any] | None:
    for g in group_list()["groups"]:
        if g["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **g}
    return None
