"""Bootstrap tokens: the issuer key both sides derive, the certificates made from it, and the
token's Secret."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives import serialization

from hakube.pki import bootstrap, certs


def _public(token: bootstrap.Token) -> bytes:
    return (
        bootstrap.derive_key(token)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def test_the_same_token_derives_the_same_issuer_key_on_both_sides() -> None:
    token = bootstrap.generate()
    again = bootstrap.parse(str(token))
    assert _public(token) == _public(again)
    master = bootstrap.issuer_cert(token)
    joiner = bootstrap.issuer_cert(again)
    assert master.public_key() == joiner.public_key()
    assert master.subject == joiner.subject


def test_a_different_secret_or_id_derives_a_different_key() -> None:
    token = bootstrap.parse("abcdef.0123456789abcdef")
    assert _public(token) != _public(bootstrap.parse("abcdef.0123456789abcdeg"))
    assert _public(token) != _public(bootstrap.parse("abcdeg.0123456789abcdef"))


def test_a_joiners_client_certificate_verifies_against_the_masters_issuer_copy() -> None:
    token = bootstrap.generate()
    cert_pem, key_pem = bootstrap.client_pair(token)
    leaf = certs.load_cert(cert_pem)
    leaf.verify_directly_issued_by(bootstrap.issuer_cert(token))
    assert certs.identity_of(leaf) == certs.Identity(
        f"system:bootstrap:{token.id}", ("system:bootstrappers",)
    )
    assert leaf.public_key() == certs.load_key(key_pem).public_key()
    with pytest.raises(Exception):  # noqa: B017 - any signature failure
        leaf.verify_directly_issued_by(bootstrap.issuer_cert(bootstrap.generate()))


def test_generated_tokens_have_kubeadms_form_and_malformed_ones_are_refused() -> None:
    assert bootstrap.TOKEN_RE.match(str(bootstrap.generate()))
    for bad in ("abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abc.def", ""):
        with pytest.raises(bootstrap.TokenError):
            bootstrap.parse(bad)


def test_a_tokens_secret_round_trips_with_kubernetes_keys() -> None:
    token = bootstrap.generate()
    exp = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    data = bootstrap.secret_data(token, exp, "for node-7")
    assert data["expiration"] == b"2030-01-02T03:04:05Z"
    assert data["usage-bootstrap-authentication"] == b"true"
    stored = bootstrap.from_secret(token.secret_name, bootstrap.SECRET_TYPE, data)
    assert stored == bootstrap.StoredToken(token, exp, "for node-7", True)
    assert stored.live(exp - datetime.timedelta(seconds=1))
    assert not stored.live(exp)
    assert bootstrap.from_secret(token.secret_name, "Opaque", data) is None
    assert bootstrap.from_secret("bootstrap-token-zzzzzz", bootstrap.SECRET_TYPE, data) is None


def test_ttls_read_like_kubeadms() -> None:
    assert bootstrap.parse_ttl("24h") == datetime.timedelta(hours=24)
    assert bootstrap.parse_ttl("1h30m") == datetime.timedelta(minutes=90)
    assert bootstrap.parse_ttl("0") is None
    with pytest.raises(bootstrap.TokenError):
        bootstrap.parse_ttl("tomorrow")


def test_a_token_recreated_with_the_same_id_and_a_new_secret_is_another_issuer() -> None:
    """Certificates made with a deleted token's secret stop authenticating even when a new
    token reuses its id: the issuer name carries the derived key's fingerprint."""
    import datetime

    from hakube.apiserver.join import BootstrapTokens

    old, new = (
        bootstrap.Token("abcdef", "0123456789abcdef"),
        bootstrap.Token("abcdef", "fedcba9876543210"),
    )
    assert bootstrap.issuer_cn(old) != bootstrap.issuer_cn(new)
    assert bootstrap.parse_issuer(bootstrap.issuer_cn(new)) == (
        "abcdef",
        bootstrap.issuer_cn(new).rsplit(".", 1)[1],
    )
    assert bootstrap.parse_issuer("hakube-bootstrap-token:abcdef") is None

    class Live(BootstrapTokens):
        def tokens(self) -> dict[str, bootstrap.StoredToken]:
            later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
            return {"abcdef": bootstrap.StoredToken(new, later, "")}

    tokens = Live(None)  # type: ignore[arg-type]
    assert tokens.identity(bootstrap.issuer_cn(new)) is not None
    assert tokens.identity(bootstrap.issuer_cn(old)) is None
