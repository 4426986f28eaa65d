"""The encryption config and the sealing itself, without a cluster: bad configs are one line
naming the field, sealed values are bound to their object, and the identity rules hold."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from hakube.apiserver.encryption import (
    DecryptError,
    EncryptionConfigError,
    load_config,
    new_config,
    parse_config,
)
from hakube.store import ops

KEY = base64.b64encode(os.urandom(32)).decode()
HEAD = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"


@pytest.mark.parametrize(
    "body,message",
    [
        ("resources: []\n", "resources: required"),
        (
            "resources:\n- resources: [pods]\n  providers: [{identity: {}}]\n",
            r"resources\[0\]\.resources\[0\]: \"pods\" cannot be encrypted",
        ),
        (
            "resources:\n- resources: [secrets]\n  providers: [{kms: {}}]\n",
            r"providers\[0\]: provider \"kms\" is not supported",
        ),
        (
            "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: k, "
            "secret: c2hvcnQ=}]}\n",
            r"keys\[0\]\.secret: must decode to 16, 24 or 32 bytes, not 5",
        ),
        (
            "resources:\n- resources: [secrets]\n  providers:\n  - aesgcm: {keys: [{name: 'a:b', "
            f"secret: {KEY}}}]}}\n",
            r"keys\[0\]\.name: required, without ':'",
        ),
    ],
)
def test_a_bad_config_is_one_line_naming_the_field(body: str, message: str) -> None:
    with pytest.raises(EncryptionConfigError, match=message):
        parse_config(HEAD + body, "enc.yaml")


def test_a_sealed_value_opens_only_under_its_own_object_and_key(tmp_path: Any) -> None:
    t = parse_config(new_config(), "a.yaml")
    sealed = t.write("Secret", "default", "db", b"plain bytes")
    assert sealed.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"plain bytes" not in sealed
    assert t.read("Secret", "default", "db", sealed) == b"plain bytes"
    with pytest.raises(DecryptError):  # copied onto another Secret's key
        t.read("Secret", "default", "other", sealed)
    other = parse_config(new_config(), "b.yaml")  # same key name, another secret
    with pytest.raises(DecryptError, match="key's secret differs"):
        other.read("Secret", "default", "db", sealed)
    assert t.read("Secret", "default", "old", b"\n\x06legacy") == b"\n\x06legacy"  # identity
    assert t.read("ConfigMap", "default", "cm", b"x") == b"x"  # not configured: clear
    no_identity = parse_config(
        HEAD + "resources:\n- resources: [secrets]\n  providers:\n"
        f"  - aesgcm: {{keys: [{{name: k, secret: {KEY}}}]}}\n",
        "c",
    )
    with pytest.raises(DecryptError, match="stored with identity"):
        no_identity.read("Secret", "default", "old", b"\n\x06legacy")


def test_a_key_file_others_can_read_is_refused(tmp_path: Any) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(new_config())
    os.chmod(path, 0o640)
    with pytest.raises(EncryptionConfigError, match=f"run `chmod 600 {path}`"):
        load_config(str(path))
    os.chmod(path, 0o600)
    assert load_config(str(path)).enabled


def test_bootstrap_tokens_are_read_from_sealed_secrets() -> None:
    from hakube.api.v1 import core_pb2
    from hakube.apiserver.join import BootstrapTokens
    from hakube.pki import bootstrap
    from hakube.store.fsm import StoreFSM

    t = parse_config(new_config(), "a.yaml")
    token = bootstrap.generate()
    secret = core_pb2.Secret(type=bootstrap.SECRET_TYPE)
    secret.data.update(bootstrap.secret_data(token, None))
    sealed = t.write(
        "Secret", bootstrap.SECRET_NAMESPACE, token.secret_name, secret.SerializeToString()
    )
    fsm = StoreFSM()
    fsm.apply_batch(
        [
            ops.wire(
                ops.Create(
                    "", "Secret", bootstrap.SECRET_NAMESPACE, token.secret_name, sealed, {}, {}, 0
                )
            )
        ],
        _doApply=True,
    )
    assert set(BootstrapTokens(fsm, transformer=t).tokens()) == {token.id}
    # A master without the key sees no token (and its start-up check stops it).
    assert BootstrapTokens(fsm).tokens() == {}
