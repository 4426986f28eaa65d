"""What may I do, and who am I: the masters' AuthorizationService from the client.

The answers are the servers' own decisions (the authorizer that guards every request), so they
never drift from what a request would meet. Both calls only read, so they fail over between
masters like any read.
"""

from __future__ import annotations

from hakube.api.v1 import authz_pb2, authz_pb2_grpc
from hakube.client.base import ObjectClient
from hakube.client.transport import Stubs


def access_review(
    client: ObjectClient,
    verb: str,
    resource: str,
    *,
    name: str = "",
    namespace: str = "",
    subresource: str = "",
    group: str = "",
    user: str = "",
    groups: tuple[str, ...] = (),
    timeout: float | None = None,
) -> authz_pb2.AccessReviewResponse:
    """Whether the caller (or ``user``/``groups``, which needs the impersonate verb) may make
    the request. ``resource`` may be a plural, kind or short name."""
    req = authz_pb2.AccessReviewRequest(
        attributes=authz_pb2.ResourceAttributes(
            verb=verb,
            group=group,
            resource=resource,
            subresource=subresource,
            namespace=namespace,
            name=name,
        ),
        user=user,
        groups=list(groups),
    )

    def call(s: Stubs, t: float) -> authz_pb2.AccessReviewResponse:
        stub = authz_pb2_grpc.AuthorizationServiceStub(s.channel)
        return stub.AccessReview(req, timeout=t)  # type: ignore[no-any-return]

    return client.transport.call(call, what=f"can-i {verb} {resource}", timeout=timeout)


def who_am_i(client: ObjectClient, *, timeout: float | None = None) -> authz_pb2.WhoAmIResponse:
    """The caller's user and groups as the masters see them."""

    def call(s: Stubs, t: float) -> authz_pb2.WhoAmIResponse:
        stub = authz_pb2_grpc.AuthorizationServiceStub(s.channel)
        return stub.WhoAmI(authz_pb2.WhoAmIRequest(), timeout=t)  # type: ignore[no-any-return]

    return client.transport.call(call, what="whoami", timeout=timeout)
