"""Issuing and reading X.509 certificates with the cluster CA (ECDSA P-256).

Every certificate carries its identity Kubernetes' way (subject CN = user, O = groups) and the
usages it is for: a master's certificate is both a server certificate (the API, Raft's listening
side) and a client certificate (Raft's dialling side, calls to node agents); users and components
get client certificates; a node's certificate serves its agent API and authenticates it to the
API. Keys never leave the process that made them, except the CA's, which every master holds so
that any master can sign a joining node's request.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
"""The CA lives ten years, as kubeadm's."""
CERT_DAYS = 365
"""Issued certificates live a year; `hakube certs renew` and node agents renew them."""
CLOCK_SKEW = datetime.timedelta(minutes=5)
"""notBefore is set this far back so that a peer whose clock is a little behind accepts it."""


class CertError(ValueError):
    """A certificate, key or request that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Identity:
    """Who a certificate names: the user (CN) and the groups (O)."""

    user: str
    groups: tuple[str, ...] = ()


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"not a PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError("the key is not an ECDSA key")
    return key


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CertError(f"not a PEM certificate: {exc}") from exc


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(identity: Identity) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
    return x509.Name(attrs)


def identity_of(cert: x509.Certificate) -> Identity:
    """The user and groups a certificate names."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise CertError("the certificate has no common name (the user)")
    groups = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    return Identity(user=str(cns[0].value), groups=groups)


def self_signed_ca(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    not_after: datetime.datetime,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A self-signed CA certificate for ``key`` (the cluster CA, a bootstrap token's issuer)."""
    now = now or datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def create_ca(
    common_name: str = "hakube-ca", *, days: int = CA_DAYS, now: datetime.datetime | None = None
) -> tuple[bytes, bytes]:
    """A new self-signed CA: (certificate PEM, key PEM)."""
    key = new_key()
    now = now or datetime.datetime.now(datetime.UTC)
    cert = self_signed_ca(key, common_name, now=now, not_after=now + datetime.timedelta(days=days))
    return cert_pem(cert), key_pem(key)


@dataclass
class CA:
    """The cluster CA, loaded: signs certificates and requests."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None

    @classmethod
    def load(cls, cert: bytes, key: bytes | None) -> CA:
        return cls(load_cert(cert), load_key(key) if key is not None else None)

    @property
    def pem(self) -> bytes:
        return cert_pem(self.cert)

    def issue(
        self,
        identity: Identity,
        public_key: ec.EllipticCurvePublicKey,
        *,
        server: bool = False,
        client: bool = True,
        hosts: tuple[str, ...] = (),
        days: int = CERT_DAYS,
        now: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """Sign a certificate for ``identity``; ``hosts`` (DNS names or IP addresses) become
        subject alternative names, required for a server certificate."""
        if self.key is None:
            raise CertError("this CA was loaded without its key; it cannot sign")
        now = now or datetime.datetime.now(datetime.UTC)
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        )
        if not usages:
            raise CertError("a certificate must be for a server, a client, or both")
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(identity))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(
                min(now + datetime.timedelta(days=days), self.cert.not_valid_after_utc)
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.cert.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(h) for h in dict.fromkeys(hosts)]),
                critical=False,
            )
        elif server:
            raise CertError("a server certificate needs at least one host name or address")
        assert self.key is not None
        return builder.sign(self.key, hashes.SHA256())

    def issue_pair(self, identity: Identity, **kwargs: object) -> tuple[bytes, bytes]:
        """A new key and its certificate: (certificate PEM, key PEM)."""
        key = new_key()
        cert = self.issue(identity, key.public_key(), **kwargs)  # type: ignore[arg-type]
        return cert_pem(cert), key_pem(key)

    def sign_request(
        self,
        csr_pem: bytes,
        *,
        expect: Identity,
        server: bool = False,
        hosts: tuple[str, ...] = (),
        days: int = CERT_DAYS,
    ) -> bytes:
        """Sign a certificate signing request after checking it asks for ``expect`` exactly
        (the caller decides the identity; the request only proves key possession)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise CertError(f"not a PEM certificate signing request: {exc}") from exc
        if not csr.is_signature_valid:
            raise CertError("the certificate signing request's signature is invalid")
        asked = Identity(
            user=str(next(iter(csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME))).value)
            if csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            else "",
            groups=tuple(
                str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            ),
        )
        if asked.user != expect.user or set(asked.groups) != set(expect.groups):
            raise CertError(
                f"the request asks for user {asked.user!r} groups "
                f"{list(asked.groups)}, expected {expect.user!r} "
                f"groups {list(expect.groups)}"
            )
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise CertError("the request's key must be an ECDSA key")
        return cert_pem(
            self.issue(expect, public, server=server, client=True, hosts=hosts, days=days)
        )


def make_request(identity: Identity, hosts: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A new key and a signing request for it, asking for ``hosts`` as subject alternative
    names: (request PEM, key PEM)."""
    key = new_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(identity))
    if hosts:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in dict.fromkeys(hosts)]),
            critical=False,
        )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key_pem(key)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def ca_hash(ca_pem: bytes) -> str:
    """``sha256:<hex>`` of the CA's SubjectPublicKeyInfo, as kubeadm's --discovery-token-ca-cert-
    hash: it pins the key, so a re-issued CA certificate with the same key still matches."""
    spki = (
        load_cert(ca_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def hosts_of(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]
