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
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.apiserver.encryption import new_config
from hakube.client import Client, Conflict, HakubeError, NotFound
from hakube.client.config import ConfigError, load_client_config
from hakube.store.datadir import write_private


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    top = sub.add_parser("secrets", help="encryption at rest: key files and re-encryption")
    actions = top.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    p = actions.add_parser("new-config", help="write an encryption config with a new key (0600)")
    p.add_argument("file")
    p.add_argument("--key-name", default="key1", help="the key's name (key1)")
    p = actions.add_parser(
        "reencrypt", help="rewrite every Secret with the masters' current first key"
    )
    p.add_argument(
        "-s",
        "--server",
        help="master API address(es), HOST:PORT[,...] (default: the client config's)",
    )
    p.add_argument(
        "--client-config",
        default=None,
        help="client config with the admin's credentials (default: $HAKUBE_CONFIG "
        "or ~/.hakube/config)",
    )
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


def run(args: argparse.Namespace) -> int:
    if args.secrets_command == "new-config":
        if os.path.exists(args.file):
            print(
                f"hakube secrets new-config: {args.file} exists; not overwriting a key file",
                file=sys.stderr,
            )
            return 1
        try:
            write_private(args.file, new_config(args.key_name).encode())
        except OSError as exc:
            print(f"hakube secrets new-config: {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {args.file} (key {args.key_name!r}); copy it to every master (0600)")
        return 0
    try:
        cfg = load_client_config(args.client_config, server=args.server)
        with Client(cfg.servers, credentials=cfg.credentials(), timeout=cfg.timeout) as client:
            n = reencrypt(client)
    except (ConfigError, HakubeError) as exc:
        print(f"hakube secrets reencrypt: {exc}", file=sys.stderr)
        return 1
    print(f"re-encrypted: {n} secrets checked; every one is sealed with the current key")
    return 0
