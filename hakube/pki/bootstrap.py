"""Bootstrap tokens (kubeadm's ``abcdef.0123456789abcdef``) and the certificates made from them.

A joining node has a token but no certificate, and the API requires a client certificate in the
TLS handshake (gRPC cannot ask for an optional one). So the token becomes a certificate issuer:
both sides derive the same ECDSA P-256 key from the token (HKDF-SHA256 of the secret, the id as
context), the masters trust a self-signed issuer certificate with that key for every live token,
and the joiner signs its own short-lived client certificate with it. The secret never crosses the
wire, and a wrong secret gives a key the masters do not trust: the handshake fails.

Tokens are stored as Kubernetes stores them: a Secret ``bootstrap-token-<id>`` in
``kube-system`` of type ``bootstrap.kubernetes.io/token`` (keys token-id, token-secret,
expiration, usage-bootstrap-authentication, description).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hakube.pki import certs, names

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_NAMESPACE = "kube-system"
SECRET_PREFIX = "bootstrap-token-"
ISSUER_PREFIX = "hakube-bootstrap-token:"
"""Subject CN of a token's issuer certificate; the masters look the token up by it."""
CLIENT_DAYS = 1
"""A joiner's bootstrap client certificate is only needed for the join itself."""
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
# The order of P-256, for mapping derived bytes to a valid private scalar in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class TokenError(ValueError):
    """A token that is malformed, unknown or expired; the message says which."""


@dataclass(frozen=True)
class Token:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return SECRET_PREFIX + self.id


def generate() -> Token:
    return Token(
        "".join(secrets.choice(_ALPHABET) for _ in range(6)),
        "".join(secrets.choice(_ALPHABET) for _ in range(16)),
    )


def parse(text: str) -> Token:
    m = TOKEN_RE.match(text.strip())
    if not m:
        raise TokenError(
            "token: expected the form [a-z0-9]{6}.[a-z0-9]{16} (`hakube token create` prints one)"
        )
    return Token(m.group(1), m.group(2))


@functools.lru_cache(maxsize=256)
def issuer_cn(token: Token) -> str:
    """``hakube-bootstrap-token:<id>.<key fingerprint>``: the fingerprint (of the derived
    public key) makes a token deleted and re-created under the same id with a new secret a
    different issuer, so certificates made with the old secret stop authenticating."""
    spki = (
        derive_key(token)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return f"{ISSUER_PREFIX}{token.id}.{hashlib.sha256(spki).hexdigest()[:16]}"


def parse_issuer(cn: str) -> tuple[str, str] | None:
    """(token id, key fingerprint) an issuer CN names, or None if it is not a bootstrap
    issuer."""
    m = re.fullmatch(re.escape(ISSUER_PREFIX) + r"([a-z0-9]{6})\.([0-9a-f]{16})", cn)
    return (m.group(1), m.group(2)) if m else None


def bootstrap_identity(token_id: str) -> certs.Identity:
    return certs.Identity(names.BOOTSTRAP_PREFIX + token_id, (names.BOOTSTRAPPERS_GROUP,))


def derive_key(token: Token) -> ec.EllipticCurvePrivateKey:
    """The token's issuer key: the same on every machine that knows the token."""
    k = HKDF(
        algorithm=hashes.SHA256(),
        length=48,
        salt=None,
        info=b"hakube-bootstrap:" + token.id.encode(),
    ).derive(token.secret.encode())
    return ec.derive_private_key(int.from_bytes(k, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def issuer_cert(
    token: Token,
    *,
    not_after: datetime.datetime | None = None,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A self-signed issuer certificate for the token's derived key (CN names the token).
    Masters make one per live token (valid until its expiration); a joiner makes its own."""
    now = now or datetime.datetime.now(datetime.UTC)
    return certs.self_signed_ca(
        derive_key(token),
        issuer_cn(token),
        now=now,
        not_after=not_after or now + datetime.timedelta(days=certs.CA_DAYS),
    )


def client_pair(token: Token, *, now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """The joiner's client certificate (``system:bootstrap:<id>`` in system:bootstrappers),
    signed with the token's derived key: (certificate PEM, key PEM)."""
    issuer = issuer_cert(token, now=now)
    ca = certs.CA(issuer, derive_key(token))
    key = certs.new_key()
    cert = ca.issue(
        bootstrap_identity(token.id), key.public_key(), client=True, days=CLIENT_DAYS, now=now
    )
    return certs.cert_pem(cert), certs.key_pem(key)


def format_time(t: datetime.datetime) -> str:
    """RFC 3339 in UTC, as Kubernetes writes a token's expiration."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TokenError(f"expiration {text!r} is not an RFC 3339 time") from exc
    return t if t.tzinfo else t.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class StoredToken:
    """A token as its Secret holds it."""

    token: Token
    expiration: datetime.datetime | None
    description: str = ""
    authentication: bool = True

    def live(self, now: datetime.datetime | None = None) -> bool:
        """Usable for authentication now."""
        now = now or datetime.datetime.now(datetime.UTC)
        return self.authentication and (self.expiration is None or now < self.expiration)


def secret_data(
    token: Token, expiration: datetime.datetime | None, description: str = ""
) -> dict[str, bytes]:
    """The data of the token's Secret, with Kubernetes' keys."""
    data = {
        "token-id": token.id.encode(),
        "token-secret": token.secret.encode(),
        "usage-bootstrap-authentication": b"true",
    }
    if expiration is not None:
        data["expiration"] = format_time(expiration).encode()
    if description:
        data["description"] = description.encode()
    return data


def from_secret(name: str, secret_type: str, data: dict[str, bytes]) -> StoredToken | None:
    """The token a Secret holds, or None if it is not a well-formed bootstrap token Secret."""
    if secret_type != SECRET_TYPE or not name.startswith(SECRET_PREFIX):
        return None
    try:
        token = parse(f"{data['token-id'].decode()}.{data['token-secret'].decode()}")
        expiration = parse_time(data["expiration"].decode()) if data.get("expiration") else None
    except (KeyError, UnicodeDecodeError, TokenError):
        return None
    if name != token.secret_name:
        return None
    return StoredToken(
        token,
        expiration,
        data.get("description", b"").decode(errors="replace"),
        data.get("usage-bootstrap-authentication", b"") == b"true",
    )


def parse_ttl(text: str) -> datetime.timedelta | None:
    """``24h``, ``90m``, ``30s``, ``2h30m``, ``1d``; ``0``: never expires (None)."""
    text = text.strip()
    if text in ("0", "0s"):
        return None
    parts = re.findall(r"(\d+(?:\.\d+)?)([dhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise TokenError(f"{text!r} is not a duration like 24h, 90m, 30s (0: no expiry)")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return datetime.timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))
