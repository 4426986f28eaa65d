"""``hakube secrets new-config|reencrypt``: keys for encryption at rest and key rotation.

``new-config FILE`` writes an EncryptionConfiguration with one fresh random AES-GCM key (0600)
for ``--encryption-provider-config``. ``reencrypt`` rewrites every Secret through the API so that
each is sealed with the first key of the masters' current config: it reads each Secret and
updates it unchanged with its resourceVersion as precondition. The API server writes an
unchanged object only when its stored value is not sealed with the current key, so Secrets that
are already current cost no write, and a concurrent change (Conflict) is never overwritten:
the Secret is read again and retried.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.apiserver.encryption import new_config
from hakube.cli.admin import AdminSettings
from hakube.client import ConfigError, Conflict, HakubeError, NotFound
from hakube.settings import add_actions, setting
from hakube.store.datadir import write_private


@dataclass(frozen=True)
class NewConfig:
    """``hakube secrets new-config``."""

    file: str = setting("", operand=True, required=True)
    """Where to write the encryption config (refused if it exists)."""
    key_name: str = "key1"
    """The key's name."""


@dataclass(frozen=True)
class Reencrypt(AdminSettings):
    """``hakube secrets reencrypt``."""


ACTIONS: dict[str, tuple[type, str]] = {
    "new-config": (NewConfig, "write an encryption config with a new key (0600)"),
    "reencrypt": (Reencrypt, "rewrite every Secret with the masters' current first key"),
}


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[Any], int]]:
    add_actions(sub, "secrets", "encryption at rest: key files and re-encryption", ACTIONS)
    return {"secrets": run}


def reencrypt(client: Any, attempts: int = 10) -> int:
    """Update every Secret unchanged (CAS on its resourceVersion); returns how many were
    visited. Raises HakubeError if one keeps conflicting."""
    count = 0
    for item in client.list(core_pb2.Secret).items:
        ns, name = item.metadata.namespace, item.metadata.name
        secret = item
        for _ in range(attempts):
            try:
                client.update(secret)
                break
            except Conflict:
                try:
                    secret = client.get(core_pb2.Secret, name, namespace=ns)
                except NotFound:
                    break
            except NotFound:
                break
        else:
            raise HakubeError(f'secret "{ns}/{name}" kept changing; run reencrypt again')
        count += 1
    return count


def run(s: NewConfig | Reencrypt) -> int:
    if isinstance(s, NewConfig):
        return _new_config(s)
    try:
        _, conn = s.connect()
        with conn as client:
            n = reencrypt(client)
    except (ConfigError, HakubeError) as exc:
        print(f"hakube secrets reencrypt: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted: {n} secrets checked; every one is sealed with the current key")
    return 0


def _new_config(s: NewConfig) -> int:
    if os.path.exists(s.file):
        print(
            f"hakube secrets new-config: {s.file} exists; not overwriting a key file",
            file=sys.stderr,
        )
        return 1
    try:
        write_private(s.file, new_config(s.key_name).encode())
    except OSError as exc:
        print(f"hakube secrets new-config: {s.file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {s.file} (key {s.key_name!r}); copy it to every master (0600)")
    return 0
