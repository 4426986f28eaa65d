"""Who is calling: the identity behind every API request, from its TLS client certificate or
(on the Kubernetes REST door only) a ServiceAccount bearer token.

The gRPC server requires a client certificate in the TLS handshake (hakube.pki.tls), so a
caller without one never gets a request through. The Kubernetes REST door asks for one
optionally and takes a ServiceAccount bearer token instead (``identify_bearer``, checked by
hakube.apiserver.tokens); a request with neither is refused, never anonymous. This module turns
the verified certificate into a user and groups (Kubernetes' convention: subject CN and O) and
refuses what the handshake alone cannot: a certificate from a trusted issuer that is not the
cluster CA itself. Bootstrap-token issuers (hakube.apiserver.join) are trusted by the handshake
so that a joining node can connect, but their certificates name the token only; they may call
nothing but the join service.

The identity of the request being served is in ``current`` (a context variable: each gRPC
request runs in its own task), for authorization, admission and audit further in.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

import grpc

from hakube.apiserver.errors import Unauthenticated
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.pki.tls import identity_of_pem

current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "hakube_identity", default=None
)
"""The caller of the request this task serves (None outside a request)."""


BootstrapCheck = Callable[[str], Identity | None]
"""Given a bootstrap issuer's common name, the identity of its live token (None: unknown or
expired)."""


class Authenticator:
    """Maps a request's TLS peer to an Identity."""

    def __init__(
        self,
        ca_name: str,
        bootstrap: BootstrapCheck | None = None,
        tokens: Callable[[str], Identity] | None = None,
    ) -> None:
        self.ca_name = ca_name
        """The cluster CA's subject CN: the issuer of every full identity."""
        self.bootstrap = bootstrap
        self.tokens = tokens
        """Checks a ServiceAccount bearer token (None: bearer tokens are not accepted)."""

    def identify_bearer(self, authorization: str) -> Identity:
        """The identity of an ``Authorization: Bearer <token>`` header value, or
        Unauthenticated (no token, another scheme, or a token that does not check)."""
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "no client certificate and no bearer token: the API requires a certificate "
                "from the cluster CA or a ServiceAccount token (see docs/security.md)"
            )
        if self.tokens is None:
            raise Unauthenticated("bearer tokens are not accepted by this server")
        return self.tokens(token.strip())

    def identify(self, ctx: grpc.aio.ServicerContext) -> Identity:
        """The caller, or Unauthenticated with one line saying what is missing."""
        auth = ctx.auth_context()
        pem = auth.get("x509_pem_cert")
        if not pem:
            raise Unauthenticated(
                "no client certificate: the API requires a certificate "
                "from the cluster CA (see docs/security.md)"
            )
        return self.identify_certificate(pem[0])

    def identify_certificate(self, pem: bytes) -> Identity:
        """The identity of a verified client certificate (PEM), or Unauthenticated when its
        issuer is neither the cluster CA nor a live bootstrap token's."""
        identity, issuer = identity_of_pem(pem)
        if issuer == self.ca_name:
            return identity
        if self.bootstrap is not None:
            found = self.bootstrap(issuer)
            if found is not None:
                return found
        raise Unauthenticated(
            f'client certificate for "{identity.user}" is not from the '
            "cluster CA, or its bootstrap token expired"
        )


def is_bootstrap(identity: Identity) -> bool:
    return names.BOOTSTRAPPERS_GROUP in identity.groups
