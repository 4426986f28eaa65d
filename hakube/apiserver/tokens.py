"""ServiceAccount tokens: issued by TokenRequest (``serviceaccounts/token``), accepted as bearer
tokens by the Kubernetes REST door.

A token is an ES256 JWT (``hakube.pki.jwt``) with the claims of Kubernetes' bound tokens:
``iss``, ``sub`` ``system:serviceaccount:<ns>:<name>``, ``aud``, ``exp``/``iat``/``nbf``, ``jti``
and ``kubernetes.io`` (namespace, the account's name and uid, and for a pod-bound token the
pod's and its node's name and uid). It authenticates only while all of this holds: the
signature verifies with the cluster's token key, ``nbf <= now < exp``, one of its audiences is
the API's (``--api-audiences``, default the issuer), and the account -- and the bound pod --
still exist with the uids in the token. The caller is then the user
``system:serviceaccount:<ns>:<name>`` in ``system:serviceaccounts``,
``system:serviceaccounts:<ns>`` and ``system:authenticated``, and RBAC decides as for anyone.

Who may ask: RBAC ``create`` on ``serviceaccounts/token``; a node (node authorizer) only for
an account used by a pod bound to it, and then only a token bound to such a pod (as Kubernetes'
NodeRestriction): a node cannot mint a token for an account none of its pods runs as.

The gRPC API requires a client certificate in its TLS handshake and takes no bearer tokens; a
process in a pod calls the REST door (docs/kubernetes-api.md).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from hakube.api import podpaths
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import core_pb2, pod_pb2, token_pb2
from hakube.apiserver import authn
from hakube.apiserver.errors import Forbidden, Invalid, NotFound, Unauthenticated
from hakube.pki import jwt, names
from hakube.pki.certs import Identity
from hakube.store.fsm import StoreFSM

TOKEN_SERVICE = "hakube.api.v1.TokenService"
DEFAULT_ISSUER = "https://kubernetes.default.svc"
DEFAULT_SECONDS = 3600
USER_PREFIX = "system:serviceaccount:"
ALL_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"


def identity_of(namespace: str, name: str) -> Identity:
    """The user and groups a ServiceAccount authenticates as."""
    return Identity(
        f"{USER_PREFIX}{namespace}:{name}",
        (ALL_GROUP, f"{ALL_GROUP}:{namespace}", AUTHENTICATED_GROUP),
    )


class Tokens:
    """Signs and checks ServiceAccount tokens over one master's store replica."""

    def __init__(
        self,
        fsm: StoreFSM,
        key: ec.EllipticCurvePrivateKey,
        *,
        issuer: str = DEFAULT_ISSUER,
        audiences: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fsm = fsm
        self.key = key
        self.public = key.public_key()
        self.issuer = issuer
        self.audiences = audiences or (issuer,)
        """The API's own audiences: a token for none of them does not authenticate here."""
        self.clock = clock
        self._verified = functools.lru_cache(maxsize=4096)(self._verify)
        """Claims of tokens whose signature verified, by the token's exact text: a client sends
        the same token with every request, and the signature check is the costly part. Times,
        audience and the objects' existence are checked on every request all the same."""

    def _get(self, kind: str, ns: str, name: str, msg: Any) -> Any:
        rec = self.fsm.get(kind, ns, name)
        return None if rec is None else msg.FromString(rec.value)

    # -- issuing ------------------------------------------------------------------------------

    async def create(self, req: token_pb2.CreateTokenRequest) -> token_pb2.TokenRequest:
        """Sign a token for ServiceAccount ``req.name``; NotFound, Invalid or Forbidden (one
        line naming the field) when it cannot be given."""
        ns, name = req.namespace or "default", req.name
        tr = req.token_request
        what = f'serviceaccounts "{name}"'
        sa = self._get("ServiceAccount", ns, name, core_pb2.ServiceAccount)
        if sa is None:
            raise NotFound(f'{what} not found in namespace "{ns}"')
        seconds = tr.spec.expiration_seconds if tr.spec.HasField("expiration_seconds") else 0
        seconds = seconds or DEFAULT_SECONDS
        if why := podpaths.token_seconds_problem(seconds):
            raise Invalid(f"TokenRequest {what} is invalid: spec.expirationSeconds: {why}")
        ref = tr.spec.bound_object_ref
        pod = None
        if ref.kind or ref.name:
            pod = self._bound_pod(what, ns, name, ref)
        caller = authn.current.get()
        node = names.node_name(caller.user) if caller is not None else None
        if node is not None:
            if pod is None or pod.spec.node_name != node:
                raise Forbidden(
                    f'{what}: node "{node}" may only request tokens bound to a pod on it'
                )
        now = int(self.clock())
        audiences = list(tr.spec.audiences) or list(self.audiences)
        private: dict[str, Any] = {
            "namespace": ns,
            "serviceaccount": {"name": name, "uid": sa.metadata.uid},
        }
        if pod is not None:
            private["pod"] = {"name": pod.metadata.name, "uid": pod.metadata.uid}
            node_rec = self.fsm.get("Node", "", pod.spec.node_name) if pod.spec.node_name else None
            if node_rec is not None:
                node_uid = core_pb2.Node.FromString(node_rec.value).metadata.uid
                private["node"] = {"name": pod.spec.node_name, "uid": node_uid}
        claims = {
            "iss": self.issuer,
            "sub": f"{USER_PREFIX}{ns}:{name}",
            "aud": audiences,
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
        }
        out = token_pb2.TokenRequest(api_version="authentication.k8s.io/v1", kind="TokenRequest")
        out.metadata.CopyFrom(tr.metadata)
        out.metadata.name, out.metadata.namespace = name, ns
        out.spec.CopyFrom(tr.spec)
        out.spec.audiences[:] = audiences
        out.spec.expiration_seconds = seconds
        out.status.token = jwt.sign(claims, self.key)
        out.status.expiration_timestamp = rfc3339(now + seconds)
        return out

    def _bound_pod(
        self, what: str, ns: str, name: str, ref: token_pb2.BoundObjectReference
    ) -> pod_pb2.Pod:
        if ref.kind != "Pod":
            raise Invalid(
                f'TokenRequest {what} is invalid: spec.boundObjectRef.kind: "{ref.kind}": '
                "only Pod is supported"
            )
        pod = self._get("Pod", ns, ref.name, pod_pb2.Pod)
        if pod is None or (ref.uid and pod.metadata.uid != ref.uid):
            raise NotFound(f'pods "{ref.name}" not found (spec.boundObjectRef)')
        if (pod.spec.service_account_name or "default") != name:
            raise Invalid(
                f"TokenRequest {what} is invalid: spec.boundObjectRef: pod "
                f'"{ref.name}" runs as serviceaccount "{pod.spec.service_account_name}"'
            )
        return pod

    # -- authenticating -----------------------------------------------------------------------

    def _verify(self, token: str) -> dict[str, Any]:
        return jwt.verify(token, self.public)

    def authenticate(self, token: str) -> Identity:
        """The ServiceAccount identity of a bearer token; Unauthenticated saying why not."""
        try:
            claims = self._verified(token)
        except jwt.TokenError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from exc
        now = self.clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int) or now >= exp:
            raise Unauthenticated("invalid bearer token: token has expired")
        if not isinstance(nbf, int) or now < nbf:
            raise Unauthenticated("invalid bearer token: token is not valid yet")
        if claims.get("iss") != self.issuer:
            raise Unauthenticated("invalid bearer token: not issued by this API server")
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(auds) & set(self.audiences):
            raise Unauthenticated("invalid bearer token: token audiences do not include this API")
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise Unauthenticated("invalid bearer token: no kubernetes.io claim")
        ns = str(private.get("namespace", ""))
        sa_claim = private.get("serviceaccount") or {}
        name = str(sa_claim.get("name", ""))
        if claims.get("sub") != f"{USER_PREFIX}{ns}:{name}":
            raise Unauthenticated("invalid bearer token: subject does not match its account")
        sa = self._get("ServiceAccount", ns, name, core_pb2.ServiceAccount)
        if sa is None or sa.metadata.uid != sa_claim.get("uid"):
            raise Unauthenticated(
                f'invalid bearer token: serviceaccount "{ns}/{name}" was deleted (or recreated)'
            )
        pod_claim = private.get("pod")
        if pod_claim is not None:
            pod = self._get("Pod", ns, str(pod_claim.get("name", "")), pod_pb2.Pod)
            if pod is None or pod.metadata.uid != pod_claim.get("uid"):
                raise Unauthenticated(
                    f'invalid bearer token: pod "{ns}/{pod_claim.get("name")}" it is bound to '
                    "was deleted"
                )
        return identity_of(ns, name)

    # -- gRPC ---------------------------------------------------------------------------------

    def handlers(
        self, unary: Callable[[str, Callable[[Any], Awaitable[Any]], type], grpc.RpcMethodHandler]
    ) -> list[grpc.GenericRpcHandler]:
        methods = {"CreateToken": unary("CreateToken", self.create, token_pb2.CreateTokenRequest)}
        return [grpc.method_handlers_generic_handler(TOKEN_SERVICE, methods)]
