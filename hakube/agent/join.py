"""A node's certificate: joining with a bootstrap token, and renewing before it expires.

Joining is kubeadm's ``join --token --discovery-token-ca-cert-hash`` over hakube's TLS-only API.
The token is turned into a client certificate (``hakube.pki.bootstrap``), then:

1. a plain TLS handshake reads the master's serving certificate (not yet trusted);
2. a gRPC channel that trusts exactly that certificate asks for the cluster CA
   (``ClusterInfo``); the CA must match ``--ca-cert-hash`` and must have issued the master's
   certificate, so a man in the middle gains nothing from holding the token;
3. a channel that trusts the CA sends the node's signing request (``Join``); the key never
   leaves the node.

Only then is ``<root-dir>/pki`` written (0700; key 0600; each file atomically). Any failure is
one line (JoinError) and leaves the directory as it was. Afterwards the node certificate is the
agent's identity; ``CertRenewer`` replaces it through ``Renew`` when it nears its expiry.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from hakube.api.v1 import join_pb2, join_pb2_grpc
from hakube.pki import bootstrap, certs, files
from hakube.pki.layout import NodePki, node_identity, normalize_host
from hakube.pki.tls import Credentials, channel_credentials

log = logging.getLogger("hakube.agent.join")
TIMEOUT = 15.0
"""Seconds each step of a join may take on one master."""


class JoinError(Exception):
    """The node cannot get its certificate; the message is one line for the operator."""


def signing_request(node: str, hosts: list[str]) -> tuple[bytes, bytes]:
    """A new node key and a request for ``system:node:<node>`` naming ``hosts``:
    (request PEM, key PEM)."""
    names = tuple(normalize_host(h) for h in dict.fromkeys([node, *hosts]) if h)
    return certs.make_request(node_identity(node), names)


def _server_leaf(server: str, cert: bytes, key: bytes) -> x509.Certificate:
    """The master's serving certificate, read without trusting it (step 1)."""
    host, _, port = server.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with tempfile.TemporaryDirectory() as d:
        cpath, kpath = os.path.join(d, "c"), os.path.join(d, "k")
        files.write_atomic(cpath, cert)
        files.write_atomic(kpath, key)
        ctx.load_cert_chain(cpath, kpath)
    with (
        socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT) as sock,
        ctx.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise JoinError(f"the master at {server} presented no certificate")
    return x509.load_der_x509_certificate(der)


def _rpc_failure(server: str, exc: grpc.RpcError) -> str:
    details = (exc.details() or "").split("\n")[0]
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return (
            f"the master at {server} refused the connection with the bootstrap token "
            "(a wrong, deleted or expired token, or an address its certificate does not "
            f"name): {details}"
        )
    return f"the master at {server} refused the join: {exc.code().name}: {details}"


def discover_ca(
    server: str, token: bootstrap.Token, ca_hash: str, client: tuple[bytes, bytes]
) -> bytes:
    """Steps 1 and 2: the cluster CA, proven by ``ca_hash`` and by having issued the
    certificate of the master we talk to."""
    leaf = _server_leaf(server, *client)
    pinned = grpc.ssl_channel_credentials(
        root_certificates=certs.cert_pem(leaf), private_key=client[1], certificate_chain=client[0]
    )
    with grpc.secure_channel(server, pinned) as ch:
        try:
            info = join_pb2_grpc.JoinServiceStub(ch).ClusterInfo(
                join_pb2.ClusterInfoRequest(), timeout=TIMEOUT
            )
        except grpc.RpcError as exc:
            raise JoinError(_rpc_failure(server, exc)) from exc
    try:
        got = certs.ca_hash(info.ca_pem)
    except certs.CertError as exc:
        raise JoinError(f"the master at {server} sent an unreadable CA: {exc}") from exc
    if got != ca_hash.lower():
        raise JoinError(
            f"--ca-cert-hash {ca_hash} does not match the cluster CA at {server} "
            f"({got}): check the hash `hakube token create` printed"
        )
    try:
        leaf.verify_directly_issued_by(certs.load_cert(info.ca_pem))
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise JoinError(
            f"the master at {server} presents a certificate the cluster CA did not issue"
        ) from exc
    return bytes(info.ca_pem)


def join(
    servers: list[str], token_text: str, ca_hash: str, node: str, hosts: list[str], pki: NodePki
) -> None:
    """Get this node's certificate with a bootstrap token and write it under ``pki``; the
    masters are tried in order until one answers."""
    try:
        token = bootstrap.parse(token_text)
    except bootstrap.TokenError as exc:
        raise JoinError(f"--{exc}") from exc
    if not ca_hash.lower().startswith("sha256:") or len(ca_hash) != len("sha256:") + 64:
        raise JoinError(
            "--ca-cert-hash: expected sha256:<64 hex digits> (`hakube token create` prints it)"
        )
    client = bootstrap.client_pair(token)
    problems = []
    for server in servers:
        try:
            ca = discover_ca(server, token, ca_hash, client)
        except OSError as exc:
            problems.append(f"{server}: {exc.strerror or exc}")
            continue
        csr, key = signing_request(node, hosts)
        creds = channel_credentials(Credentials(ca=ca, cert=client[0], key=client[1]))
        with grpc.secure_channel(server, creds) as ch:
            try:
                resp = join_pb2_grpc.JoinServiceStub(ch).Join(
                    join_pb2.JoinRequest(node_name=node, csr_pem=csr), timeout=TIMEOUT
                )
            except grpc.RpcError as exc:
                raise JoinError(_rpc_failure(server, exc)) from exc
        write(pki, ca, bytes(resp.certificate_pem), key)
        log.info("node %s joined through %s; its certificate is in %s", node, server, pki.root)
        return
    raise JoinError("cannot reach a master to join: " + "; ".join(problems))


def write(pki: NodePki, ca: bytes, cert: bytes, key: bytes) -> None:
    """The node's files, each atomically; the key before the certificate that needs it."""
    files.ensure_private_dir(pki.root)
    files.write_atomic(pki.ca_cert, ca, mode=files.PUBLIC_FILE_MODE)
    files.write_atomic(pki.key, key)
    files.write_atomic(pki.cert, cert, mode=files.PUBLIC_FILE_MODE)


def node_credentials(
    servers: list[str],
    pki: NodePki,
    node: str,
    hosts: list[str],
    *,
    token: str = "",
    ca_hash: str = "",
) -> Credentials:
    """The node's credentials: from ``pki`` (``<root-dir>/pki`` unless --pki-dir says
    otherwise), after joining with ``token`` if there is no certificate yet."""
    if not pki.exists():
        if not token or not ca_hash:
            raise JoinError(
                f"no node certificate in {pki.root} and no --token/--ca-cert-hash: "
                "run `hakube token create` on a master and pass the --token and "
                "--ca-cert-hash it prints"
            )
        join(servers, token, ca_hash, node, hosts, pki)
    try:
        return pki.tls_files().load()
    except certs.CertError as exc:
        raise JoinError(f"node certificate: {exc}") from exc


def expires(pki: NodePki) -> datetime.datetime:
    return certs.not_after(certs.load_cert(files.read(pki.cert)))


class CertRenewer:
    """Renews the node certificate through ``Renew`` once it is within ``renew_before`` of its
    expiry. ``renew`` sends a request and returns the new certificate; ``installed`` is told
    the new credentials (the agent's client switches to them)."""

    def __init__(
        self,
        pki: NodePki,
        node: str,
        hosts: list[str],
        renew: Callable[[bytes], bytes],
        installed: Callable[[Credentials], None],
        *,
        renew_before: datetime.timedelta,
    ) -> None:
        self.pki = pki
        self.node = node
        self.hosts = hosts
        self._renew = renew
        self._installed = installed
        self.renew_before = renew_before

    def due(self, now: datetime.datetime | None = None) -> bool:
        now = now or datetime.datetime.now(datetime.UTC)
        return expires(self.pki) - now <= self.renew_before

    def check(self) -> bool:
        """Renew if due; True if it renewed. Errors propagate (the caller retries later)."""
        if not self.due():
            return False
        csr, key = signing_request(self.node, self.hosts)
        cert = self._renew(csr)
        if certs.load_cert(cert).public_key() != certs.load_key(key).public_key():
            raise JoinError("the renewed certificate is not for the key that was sent")
        files.write_atomic(self.pki.key, key)
        files.write_atomic(self.pki.cert, cert, mode=files.PUBLIC_FILE_MODE)
        self._installed(self.pki.tls_files().load())
        log.info("node certificate renewed; it expires %s", expires(self.pki).isoformat())
        return True

    def run(self, stop: threading.Event, interval: float) -> None:
        """Check now and every ``interval`` seconds until ``stop``; failures are logged and
        retried at the next check (the old certificate stays valid meanwhile)."""
        while True:
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - masters away, disk full: try again later
                log.warning("node certificate renewal failed: %s", exc)
            if stop.wait(interval):
                return


def renew_through(client: Any, node: str) -> Callable[[bytes], bytes]:
    """``CertRenewer``'s ``renew`` over an agent's Client (its retries and failover)."""

    def renew(csr: bytes) -> bytes:
        req = join_pb2.RenewRequest(csr_pem=csr)
        resp = client.transport.call(
            lambda stubs, timeout: join_pb2_grpc.JoinServiceStub(stubs.channel).Renew(
                req, timeout=timeout
            ),
            what=f"renew the certificate of node {node}",
        )
        return bytes(resp.certificate_pem)

    return renew
