"""Compact JSON Web Tokens signed with ES256 (RFC 7515/7519), and the ServiceAccount signing key.

Only what ServiceAccount tokens need: one algorithm (ES256, ECDSA P-256 with SHA-256), a
``kid`` header naming the key, and strict parsing (any other ``alg`` -- ``none`` included -- is
refused before the signature is looked at).

The signing key is derived from the cluster CA's private key (HKDF-SHA256 with a label of its
own), so every master -- each holds ``ca.key`` to sign joins -- signs with the same key and
verifies the others' tokens without a further file to make, copy and protect. Replacing the CA
replaces the token key (every token then fails to verify, as it should). The derived key is
used for nothing else, and nothing signed with it can pass for something the CA signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALGORITHM = "ES256"
_LABEL = b"hakube service account token signing key v1"
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


class TokenError(Exception):
    """The token is malformed or its signature does not verify (message: why, one line)."""


def derive_signing_key(ca_key: ec.EllipticCurvePrivateKey) -> ec.EllipticCurvePrivateKey:
    """The ServiceAccount token key of a cluster, from its CA key (the same on every master)."""
    secret = ca_key.private_numbers().private_value.to_bytes(66, "big")
    okm = HKDF(algorithm=hashes.SHA256(), length=40, salt=None, info=_LABEL).derive(secret)
    d = int.from_bytes(okm, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(d, ec.SECP256R1())


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """The ``kid`` of a key: a hash of its public key."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(hashlib.sha256(der).digest())[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise TokenError("malformed token: bad base64url") from exc


def sign(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """``claims`` as a compact ES256 JWT."""
    header = {"alg": ALGORITHM, "kid": key_id(key.public_key())}
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":"), sort_keys=True).encode())
        for part in (header, claims)
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def verify(token: str, public: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The claims of ``token`` once its ES256 signature verifies with ``public``; TokenError
    otherwise. Times and audiences are the caller's to check."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("malformed token: not three dot-separated parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
    except ValueError as exc:
        raise TokenError("malformed token: header or claims are not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
        raise TokenError(f"token algorithm must be {ALGORITHM}")
    if not isinstance(claims, dict):
        raise TokenError("malformed token: claims are not an object")
    raw = _unb64(parts[2])
    if len(raw) != 64:
        raise TokenError("malformed token: bad signature length")
    signature = encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    try:
        public.verify(signature, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise TokenError("token signature does not verify (not signed by this cluster)") from exc
    return claims
