"""TLS material for the sockets hakube opens: gRPC credentials and ``ssl`` contexts for Raft.

Files are re-read when they change (mtime or size), so ``hakube certs renew`` and an agent's own
renewal take effect for new connections without a restart; connections already open keep the
certificate they were made with until they reconnect.

Every context verifies its peer against the cluster CA: servers require a client certificate,
clients require the server's. Who the peer *is* comes from its certificate
(``hakube.pki.certs.identity_of``); what it may do is decided by the caller.
"""

from __future__ import annotations

import datetime
import functools
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from hakube.pki import certs, files, names


@dataclass(frozen=True)
class Credentials:
    """PEM bytes: the CA to trust, and our own certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True)
class TlsFiles:
    """Where a process's TLS material lives; ``load()`` reads it fresh."""

    ca: str
    cert: str
    key: str

    def load(self) -> Credentials:
        try:
            return Credentials(files.read(self.ca), files.read(self.cert), files.read(self.key))
        except OSError as exc:
            raise certs.CertError(f"{exc.filename}: {exc.strerror}") from exc

    def load_ca_cert(self) -> x509.Certificate:
        try:
            return certs.load_cert(files.read(self.ca))
        except OSError as exc:
            raise certs.CertError(f"{exc.filename}: {exc.strerror}") from exc

    def stamp(self) -> tuple[tuple[int, int], ...]:
        """Changes whenever one of the files does."""
        out = []
        for p in (self.ca, self.cert, self.key):
            try:
                st = os.stat(p)
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((0, 0))
        return tuple(out)

    def check(self) -> None:
        """Raise CertError naming the file if the material is missing or does not parse, or
        the key does not belong to the certificate."""
        c = self.load()
        certs.load_cert(c.ca)
        cert = certs.load_cert(c.cert)
        key = certs.load_key(c.key)
        if cert.public_key() != key.public_key():
            raise certs.CertError(f"{self.key} is not the key of {self.cert}")


class Reloading:
    """A value built from TlsFiles (e.g. an ``ssl`` context), rebuilt on use when the files
    changed (a stat of each, no read)."""

    def __init__(self, source: TlsFiles, build: Callable[[TlsFiles], object]) -> None:
        self.source = source
        self._build = build
        self._lock = threading.Lock()
        self._stamp = source.stamp()
        self.value = build(source)

    def get(self) -> object:
        stamp = self.source.stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self.value = self._build(self.source)
                        self._stamp = stamp
                    except (certs.CertError, OSError, ValueError):  # ssl.SSLError is an OSError
                        pass  # a half-written renewal: keep the old material, retry next time
        return self.value


def check_client(creds: Credentials, *, now: datetime.datetime | None = None) -> None:
    """What a client can find wrong with its own credentials before any connection, each as a
    CertError with one line: a certificate that expired or is not yet valid, one that the CA
    it trusts did not issue (the masters would close the connection without a reason), a key
    that is not the certificate's."""
    cert = certs.load_cert(creds.cert)
    ca = certs.load_cert(creds.ca)
    user = certs.identity_of(cert).user
    now = now or datetime.datetime.now(datetime.UTC)
    if now > cert.not_valid_after_utc:
        raise certs.CertError(
            f'client certificate of "{user}" expired at '
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z: renew it "
            "(hakube certs renew)"
        )
    if now < cert.not_valid_before_utc:
        raise certs.CertError(
            f'client certificate of "{user}" is not valid before '
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z (check the clock)"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise certs.CertError(
            f'client certificate of "{user}" was not issued by the cluster '
            "CA named in the client config"
        ) from exc
    if cert.public_key() != certs.load_key(creds.key).public_key():
        raise certs.CertError(f'the client key is not the key of "{user}"\'s certificate')


def _context(files: TlsFiles, purpose: ssl.Purpose) -> ssl.SSLContext:
    server = purpose is ssl.Purpose.CLIENT_AUTH
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    # Members are named by their certificates, not by the address that was dialled (addresses
    # may be IPs shared by a VIP): the caller checks the peer's identity after the handshake.
    ctx.check_hostname = False
    # Straight from the files (0600 in 0700 dirs): the key is never copied anywhere else.
    ctx.load_verify_locations(cafile=files.ca)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """Accepting side: presents our certificate, requires a client certificate from the CA."""
    return _context(files, ssl.Purpose.CLIENT_AUTH)


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """Dialling side: presents our certificate, requires the server's from the CA."""
    return _context(files, ssl.Purpose.SERVER_AUTH)


def channel_credentials(creds: Credentials) -> grpc.ChannelCredentials:
    """gRPC client credentials: verify the server against the CA, present our certificate."""
    return grpc.ssl_channel_credentials(
        root_certificates=creds.ca, private_key=creds.key, certificate_chain=creds.cert
    )


def server_credentials(
    source: TlsFiles, extra_roots: Callable[[], bytes] | None = None
) -> grpc.ServerCredentials:
    """gRPC server credentials requiring a client certificate. The files (and the extra
    trusted client roots, e.g. bootstrap-token issuers) are looked at again for every new
    connection and reloaded when they changed."""
    # What the current configuration was built from: the files' stamps (stat only) and the
    # extra roots. A new connection rebuilds it only when one of them changed, so the common
    # case reads no file.
    built: list[object] = [None]

    def config(key: tuple[object, bytes]) -> object:
        c = source.load()
        built[0] = key
        return grpc.ssl_server_certificate_configuration(
            [(c.key, c.cert)], root_certificates=c.ca + key[1]
        )

    def current() -> tuple[object, bytes]:
        return source.stamp(), extra_roots() if extra_roots else b""

    initial = config(current())

    def fetch() -> object | None:
        try:
            key = current()
            return None if key == built[0] else config(key)
        except Exception:  # noqa: BLE001 - never break new handshakes; keep the old config
            return None

    return grpc.dynamic_ssl_server_credentials(
        initial,
        fetch,  # type: ignore[arg-type]
        require_client_authentication=True,
    )


@functools.lru_cache(maxsize=4096)
def identity_of_pem(pem: bytes) -> tuple[certs.Identity, str]:
    """(identity, issuer CN) of a peer certificate as gRPC's auth context gives it; cached
    because every request of a connection presents the same bytes."""
    cert = x509.load_pem_x509_certificate(pem)
    issuer = cert.issuer.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return certs.identity_of(cert), str(issuer[0].value) if issuer else ""


@functools.lru_cache(maxsize=1024)
def identity_of_der(der: bytes) -> certs.Identity:
    """Identity of a peer certificate as ``ssl.SSLSocket.getpeercert(True)`` gives it."""
    return certs.identity_of(x509.load_der_x509_certificate(der))


SCRAPE_GROUPS = (names.MONITORING_GROUP, names.ADMINS_GROUP, names.MASTERS_GROUP)
"""Groups whose certificates may read an HTTPS metrics endpoint."""


def scrape_refusal(der: bytes) -> str | None:
    """Why the client certificate ``der`` (already verified against the cluster CA) may not
    read /metrics, /healthz or /readyz over HTTPS, or None if it may."""
    identity = identity_of_der(der)
    if set(identity.groups) & set(SCRAPE_GROUPS):
        return None
    return (
        f'"{identity.user}" may not read metrics: a scraper needs a certificate in group '
        f"{names.MONITORING_GROUP} (users/prometheus in the cluster's PKI)"
    )
