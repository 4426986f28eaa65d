"""JoinService: how a node gets, and keeps, its certificate (kubeadm join's TLS bootstrap).

A joiner holds a bootstrap token; ``hakube.pki.bootstrap`` turns it into a client certificate
signed with a key derived from the token. ``BootstrapTokens`` makes the masters trust exactly
the live tokens: it gives the API's TLS handshake one issuer certificate per live token (extra
trusted client roots, re-read for every new connection) and tells the Authenticator, on every
request, whether the token behind an issuer still exists and has not expired. Both read the
token Secrets from this master's replica of the store, so every master agrees without any
further state.

``JoinServicer``: ``ClusterInfo`` (the CA, which the joiner checks against its
``--ca-cert-hash``) and ``Join`` (sign the node's request) for bootstrap identities, ``Renew``
for a node's own certificate. Every master holds the CA key, so any master can sign.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from cryptography import x509

from hakube.api.v1 import core_pb2, join_pb2
from hakube.apiserver import authn
from hakube.apiserver.encryption import DecryptError, Transformer
from hakube.apiserver.errors import Forbidden, Invalid, Unavailable
from hakube.pki import bootstrap, certs, names
from hakube.pki.layout import Pki, PkiError, node_identity
from hakube.store.fsm import StoreFSM

JOIN_SERVICE = "hakube.api.v1.JoinService"
BOOTSTRAP_METHODS = ("ClusterInfo", "Join")
"""The only methods a bootstrap identity may call."""
MAX_SANS = 16
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class BootstrapTokens:
    """The live bootstrap tokens of one master's store replica (any thread)."""

    def __init__(
        self,
        fsm: StoreFSM,
        clock: Callable[[], datetime.datetime] | None = None,
        *,
        transformer: Transformer | None = None,
    ) -> None:
        self.fsm = fsm
        self.transformer = transformer or Transformer()
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._lock = threading.Lock()
        self._rev = -1
        self._tokens: dict[str, bootstrap.StoredToken] = {}
        self._issuers: dict[bootstrap.StoredToken, bytes] = {}

    def tokens(self) -> dict[str, bootstrap.StoredToken]:
        """Token id -> token, re-read from the store when its revision moved."""
        rev = self.fsm.revision
        with self._lock:
            if rev != self._rev:
                _, records = self.fsm.snapshot("Secret", bootstrap.SECRET_NAMESPACE)
                found = {}
                for (_, name), rec in records:
                    if not name.startswith(bootstrap.SECRET_PREFIX):
                        continue
                    try:
                        value = self.transformer.read(
                            "Secret", bootstrap.SECRET_NAMESPACE, name, rec.value
                        )
                    except DecryptError:
                        continue  # not a usable token; the start-up key check reports it
                    secret = core_pb2.Secret.FromString(value)
                    stored = bootstrap.from_secret(name, secret.type, dict(secret.data))
                    if stored is not None:
                        found[stored.token.id] = stored
                self._tokens, self._rev = found, rev
            return self._tokens

    def live(self, token_id: str) -> bootstrap.StoredToken | None:
        stored = self.tokens().get(token_id)
        return stored if stored is not None and stored.live(self.clock()) else None

    def identity(self, issuer: str) -> certs.Identity | None:
        """The Authenticator's check: the bootstrap identity of a live token's issuer."""
        named = bootstrap.parse_issuer(issuer)
        if named is None:
            return None
        stored = self.live(named[0])
        if stored is None or bootstrap.issuer_cn(stored.token) != issuer:
            return None  # unknown, expired, or re-created with another secret
        return bootstrap.bootstrap_identity(named[0])

    def roots(self) -> bytes:
        """Issuer certificates (PEM) of the live tokens, for the TLS handshake. Each is made
        once per token, so the bytes stay equal while the set of tokens does."""
        now = self.clock()
        out = []
        for stored in self.tokens().values():
            if not stored.live(now):
                continue
            pem = self._issuers.get(stored)
            if pem is None:
                pem = self._issuers[stored] = certs.cert_pem(
                    bootstrap.issuer_cert(stored.token, not_after=stored.expiration)
                )
            out.append(pem)
        return b"".join(sorted(out))


def _requested_hosts(csr_pem: bytes) -> tuple[str, ...]:
    """The DNS names and IP addresses a request asks for, checked: no wildcards, no
    unspecified or multicast addresses, at most MAX_SANS."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise Invalid(f"csr_pem: not a PEM certificate signing request: {exc}") from exc
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    hosts: list[str] = []
    for dns in san.get_values_for_type(x509.DNSName):
        if len(dns) > 253 or not _DNS_NAME.match(dns):
            raise Invalid(f'csr_pem: DNS name "{dns}" is not a valid host name')
        hosts.append(dns)
    for ip in san.get_values_for_type(x509.IPAddress):
        if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and (
            ip.is_unspecified or ip.is_multicast
        ):
            raise Invalid(f"csr_pem: address {ip} cannot name a node")
        hosts.append(str(ip))
    if len(hosts) > MAX_SANS:
        raise Invalid(f"csr_pem: {len(hosts)} subject alternative names (at most {MAX_SANS})")
    return tuple(hosts)


class JoinServicer:
    """Handlers of JoinService for one master, signing with the CA in its PKI directory."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki

    def _ca(self, with_key: bool = True) -> certs.CA:
        try:
            return self.pki.load_ca(with_key=with_key)
        except PkiError as exc:
            raise Unavailable(f"this master cannot sign: {exc}") from exc

    def _sign(self, node: str, csr_pem: bytes) -> join_pb2.JoinResponse:
        if not node or len(node) > 253 or not _DNS_NAME.match(node):
            raise Invalid(f'node_name "{node}" is not a valid DNS-1123 subdomain')
        hosts = tuple(dict.fromkeys([node, *_requested_hosts(csr_pem)]))
        ca = self._ca()
        try:
            cert = ca.sign_request(csr_pem, expect=node_identity(node), server=True, hosts=hosts)
        except certs.CertError as exc:
            raise Invalid(f"csr_pem: {exc}") from exc
        return join_pb2.JoinResponse(certificate_pem=cert, ca_pem=ca.pem)

    async def cluster_info(self, req: join_pb2.ClusterInfoRequest) -> Any:
        return join_pb2.ClusterInfoResponse(ca_pem=self._ca(with_key=False).pem)

    async def join(self, req: join_pb2.JoinRequest) -> Any:
        identity = authn.current.get()
        if identity is None or not authn.is_bootstrap(identity):
            raise Forbidden("Join is for bootstrap tokens; a node renews with Renew")
        # A name that belongs to a running node is not refused: a token holder is trusted to
        # name nodes (kubeadm's default too), and a re-installed node keeps its name.
        return self._sign(req.node_name, req.csr_pem)

    async def renew(self, req: join_pb2.RenewRequest) -> Any:
        identity = authn.current.get()
        node = names.node_name(identity.user) if identity is not None else None
        if identity is None or node is None or names.NODES_GROUP not in identity.groups:
            raise Forbidden("Renew is for nodes, with their own certificate")
        return self._sign(node, req.csr_pem)

    def handlers(
        self, unary: Callable[[str, Callable[[Any], Awaitable[Any]], type], grpc.RpcMethodHandler]
    ) -> list[grpc.GenericRpcHandler]:
        """``unary`` is ApiServer.unary (authentication, decoding, error mapping, metrics)."""
        methods = {
            "ClusterInfo": unary("ClusterInfo", self.cluster_info, join_pb2.ClusterInfoRequest),
            "Join": unary("Join", self.join, join_pb2.JoinRequest),
            "Renew": unary("Renew", self.renew, join_pb2.RenewRequest),
        }
        return [grpc.method_handlers_generic_handler(JOIN_SERVICE, methods)]
