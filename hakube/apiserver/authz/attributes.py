"""What a request asks to do, in RBAC's words: verb, API group, resource/subresource, namespace,
name. ``METHODS`` maps every API method the masters serve to a function reading these from its
request message; a method missing from the table is refused (tests keep the table complete).

hakube's methods and the Kubernetes requests they stand for:

============================  ===============================================================
Create / Get / List / Watch   create / get / list / watch on the object's resource
Update / Delete               update / delete
Patch / PatchStatus           patch on the resource / ``<resource>/status`` (REST API only)
UpdateScale / PatchScale      update / patch on ``<resource>/scale`` (REST API only)
UpdateStatus                  update on ``<resource>/status``
Bind                          create on ``pods/binding`` (the pod's name)
Logs / Exec (node proxy)      get ``pods/log`` / create ``pods/exec`` (the pod's name)
Stats (node proxy)            get ``nodes/stats`` (the node's name)
CreateToken (TokenService)    create ``serviceaccounts/token`` (the account's name)
Join / Renew                  create ``certificatesigningrequests`` (/``selfnodeclient``),
                              group certificates.k8s.io
ops API                       group ``hakube.io``, cluster-scoped: SaveSnapshot get
                              ``snapshots``; ListMembers list, AddMember create, RemoveMember
                              delete ``members``; TransferLeader update ``leadership``
LeaseService (TTL leases)     create / update / delete ``ttlleases`` (group hakube.io)
Status, ClusterInfo,          no attributes: every authenticated caller may (cluster health,
AccessReview, WhoAmI          the CA certificate, questions about itself)
============================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from hakube.api import kinds as kinds_mod
from hakube.api.kinds import Kind
from hakube.apiserver.errors import Invalid

HAKUBE_GROUP = "hakube.io"
"""The API group of hakube's own cluster-scoped resources (members, snapshots, ...)."""


@dataclass(slots=True)
class Attributes:
    """One request's attributes. ``namespace`` is "" for cluster-scoped resources and for
    requests across all namespaces; ``obj`` is the written object (node restriction reads it);
    ``field_selector`` is a list's or watch's (the node authorizer reads it)."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    obj: Any = None
    field_selector: str = ""
    # Not frozen: a frozen dataclass costs several microseconds more to build, on every request.

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def key(self, with_name: bool) -> tuple[str, ...]:
        """What an RBAC decision depends on (the name only when some rule names names)."""
        return (
            self.verb,
            self.group,
            self.resource,
            self.subresource,
            self.namespace,
            self.name if with_name else "",
        )


PUBLIC = None
"""A method any authenticated caller may call."""

AttributesOf = Callable[[Any], Attributes] | None


@lru_cache(maxsize=256)
def kind_for(word: str) -> Kind:
    kind = kinds_mod.lookup(word)
    if kind is None:
        raise Invalid(f'unknown kind "{word}"')
    return kind


def _ns(kind: Kind, ns: str, *, default: bool = True) -> str:
    if not kind.namespaced:
        return ""
    return ns or ("default" if default else "")


_BY_ONEOF = {k.oneof: (k.group, k.plural, k.namespaced) for k in kinds_mod.KINDS}
"""What the write path needs of a kind, by its field in ``Object`` (looked up per request)."""


def _object(verb: str, sub: str = "") -> Callable[[Any], Attributes]:
    def of(req: Any) -> Attributes:
        obj = req.object
        which = obj.WhichOneof("kind")
        if which is None:
            raise Invalid("object is empty: set exactly one kind")
        group, plural, namespaced = _BY_ONEOF[which]
        msg = getattr(obj, which)
        meta = msg.metadata
        ns = (meta.namespace or "default") if namespaced else ""
        return Attributes(verb, group, plural, sub, ns, meta.name, msg)

    return of


def _named(verb: str) -> Callable[[Any], Attributes]:
    def of(req: Any) -> Attributes:
        kind = kind_for(req.kind)
        return Attributes(verb, kind.group, kind.plural, "", _ns(kind, req.namespace), req.name)

    return of


def _collection(verb: str) -> Callable[[Any], Attributes]:
    def of(req: Any) -> Attributes:
        kind = kind_for(req.kind)
        return Attributes(
            verb,
            kind.group,
            kind.plural,
            "",
            _ns(kind, req.namespace, default=False),
            field_selector=req.field_selector,
        )

    return of


def _pod_sub(verb: str, sub: str) -> Callable[[Any], Attributes]:
    def of(req: Any) -> Attributes:
        return Attributes(verb, "", "pods", sub, req.namespace or "default", req.pod)

    return of


def _fixed(
    verb: str, resource: str, group: str = HAKUBE_GROUP, sub: str = ""
) -> Callable[[Any], Attributes]:
    attrs = Attributes(verb, group, resource, sub)
    return lambda req: attrs


def _bind(req: Any) -> Attributes:
    return Attributes("create", "", "pods", "binding", req.namespace or "default", req.name)


def _token(req: Any) -> Attributes:
    return Attributes(
        "create", "", "serviceaccounts", "token", req.namespace or "default", req.name
    )


def _node_stats(req: Any) -> Attributes:
    return Attributes("get", "", "nodes", "stats", "", req.node)


METHODS: dict[str, AttributesOf] = {
    "Create": _object("create"),
    "Update": _object("update"),
    "UpdateStatus": _object("update", "status"),
    "Get": _named("get"),
    "Delete": _named("delete"),
    "List": _collection("list"),
    "Watch": _collection("watch"),
    "Bind": _bind,
    "Batch": PUBLIC,  # each item is authorized as its own unary method (apiserver/batch.py)
    "Patch": _object("patch"),
    "PatchStatus": _object("patch", "status"),
    "UpdateScale": _object("update", "scale"),
    "PatchScale": _object("patch", "scale"),
    "Status": PUBLIC,
    "LeaseGrant": _fixed("create", "ttlleases"),
    "LeaseKeepAlive": _fixed("update", "ttlleases"),
    "LeaseRevoke": _fixed("delete", "ttlleases"),
    "SaveSnapshot": _fixed("get", "snapshots"),
    "ListMembers": _fixed("list", "members"),
    "AddMember": _fixed("create", "members"),
    "RemoveMember": _fixed("delete", "members"),
    "TransferLeader": _fixed("update", "leadership"),
    "ClusterInfo": PUBLIC,
    "Join": _fixed("create", "certificatesigningrequests", "certificates.k8s.io"),
    "Renew": _fixed(
        "create", "certificatesigningrequests", "certificates.k8s.io", "selfnodeclient"
    ),
    "Logs": _pod_sub("get", "log"),
    "ProxyExec": _pod_sub("create", "exec"),
    "ProxyStats": _node_stats,
    "AccessReview": PUBLIC,
    "WhoAmI": PUBLIC,
    "CreateToken": _token,
}
