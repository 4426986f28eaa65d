"""AuthorizationService: ``hakubectl auth can-i`` and ``auth whoami``, answered by the masters.

``AccessReview`` runs the very authorizer that guards requests, so its answer is the server's
decision, not a client-side guess. Asking about oneself is open to every caller (as Kubernetes'
SelfSubjectAccessReview); asking about another user or groups is impersonation and needs the
``impersonate`` verb on ``users`` (and on ``groups`` for each group asked about), which
cluster-admin has. ``WhoAmI`` returns the caller's identity as the server sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from hakube.api.v1 import authz_pb2
from hakube.apiserver import authn
from hakube.apiserver.authz.attributes import Attributes, kind_for
from hakube.apiserver.authz.authorizer import Authorizer
from hakube.apiserver.errors import Forbidden, Invalid
from hakube.pki.certs import Identity

AUTHORIZATION_SERVICE = "hakube.api.v1.AuthorizationService"


def _caller() -> Identity:
    identity = authn.current.get()
    assert identity is not None  # ApiServer.unary authenticated the request
    return identity


def attributes_of(ra: authz_pb2.ResourceAttributes) -> Attributes:
    """The request attributes asked about; kind names and short names become resources."""
    if not ra.verb:
        raise Invalid("attributes.verb: required value")
    if not ra.resource:
        raise Invalid("attributes.resource: required value")
    resource, group, ns = ra.resource, ra.group, ra.namespace
    if ra.resource != "*":
        try:
            kind = kind_for(ra.resource)
        except Invalid:
            kind = None  # a resource hakube does not store (members, snapshots, ...)
        if kind is not None:
            resource, group = kind.plural, ra.group or kind.group
            if not kind.namespaced:
                ns = ""
    return Attributes(ra.verb, group, resource, ra.subresource, ns, ra.name)


class ReviewServicer:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def access_review(self, req: authz_pb2.AccessReviewRequest) -> Any:
        caller = _caller()
        a = attributes_of(req.attributes)
        user, groups = caller.user, tuple(caller.groups)
        if req.user or req.groups:
            user, groups = req.user or caller.user, tuple(req.groups)
            for resource, name in [("users", user), *(("groups", g) for g in groups)]:
                check = Attributes("impersonate", "", resource, name=name)
                if not self.authorizer.decide(caller.user, tuple(caller.groups), check).allowed:
                    raise Forbidden(
                        f'user "{caller.user}" cannot impersonate {resource[:-1]} "{name}"'
                    )
        verdict = self.authorizer.decide(user, groups, a)
        return authz_pb2.AccessReviewResponse(
            allowed=verdict.allowed, reason=verdict.reason, user=user, groups=list(groups)
        )

    async def who_am_i(self, req: authz_pb2.WhoAmIRequest) -> Any:
        caller = _caller()
        return authz_pb2.WhoAmIResponse(user=caller.user, groups=list(caller.groups))

    def handlers(
        self, unary: Callable[[str, Callable[[Any], Awaitable[Any]], type], grpc.RpcMethodHandler]
    ) -> list[grpc.GenericRpcHandler]:
        methods = {
            "AccessReview": unary(
                "AccessReview", self.access_review, authz_pb2.AccessReviewRequest
            ),
            "WhoAmI": unary("WhoAmI", self.who_am_i, authz_pb2.WhoAmIRequest),
        }
        return [grpc.method_handlers_generic_handler(AUTHORIZATION_SERVICE, methods)]
