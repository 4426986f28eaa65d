"""``hakube token create|list|delete``: bootstrap tokens for joining nodes (kubeadm's).

A token is a Secret ``bootstrap-token-<id>`` in kube-system (hakube.pki.bootstrap), so these
commands are plain API calls with the admin's client config; the masters trust a token as soon
as its Secret exists and stop as soon as it is deleted or expires. ``create`` prints the token,
the CA's hash and the ``hakube agent`` line that joins a node with them (``-o json``: the same
as one JSON object, for scripts).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.cli.admin import AdminSettings
from hakube.cli.printers import human_duration
from hakube.client import Client, ConfigError, HakubeError
from hakube.pki import bootstrap, certs
from hakube.settings import add_actions, setting


def create_token(
    client: Any, ttl: datetime.timedelta | None, description: str = ""
) -> tuple[bootstrap.Token, datetime.datetime | None]:
    """Store a new token through ``client``; (token, expiration or None)."""
    token = bootstrap.generate()
    expiration = datetime.datetime.now(datetime.UTC) + ttl if ttl is not None else None
    secret = core_pb2.Secret(type=bootstrap.SECRET_TYPE)
    secret.metadata.name = token.secret_name
    secret.metadata.namespace = bootstrap.SECRET_NAMESPACE
    for key, value in bootstrap.secret_data(token, expiration, description).items():
        secret.data[key] = value
    client.secrets.create(secret)
    return token, expiration


def list_tokens(client: Any) -> list[bootstrap.StoredToken]:
    out = []
    for s in client.secrets.list(namespace=bootstrap.SECRET_NAMESPACE).items:
        stored = bootstrap.from_secret(s.metadata.name, s.type, dict(s.data))
        if stored is not None:
            out.append(stored)
    return sorted(out, key=lambda t: t.token.id)


def join_command(servers: list[str], token: bootstrap.Token, ca_pem: bytes) -> str:
    return (
        f"hakube agent --server {','.join(servers)} --token {token} "
        f"--ca-cert-hash {certs.ca_hash(ca_pem)} --node-name <NAME>"
    )


@dataclass(frozen=True)
class TokenCreate(AdminSettings):
    """``hakube token create``."""

    ttl: str = setting("24h", check=bootstrap.parse_ttl, metavar="DURATION")
    """How long the token may be used: 24h, 90m, 2h30m; 0: forever."""
    description: str = ""
    """What the token is for."""
    output: str = setting("text", aliases=("-o",), choices=("text", "json"))
    """json: one object with token, caCertHash, expires, joinCommand (for scripts and the
    Ansible playbook)."""


@dataclass(frozen=True)
class TokenList(AdminSettings):
    """``hakube token list``."""

    output: str = setting("table", aliases=("-o",), choices=("table", "json"))
    """table: for people; json: one object per token."""


@dataclass(frozen=True)
class TokenDelete(AdminSettings):
    """``hakube token delete``."""

    tokens: list[str] = setting([], operand=True, required=True, metavar="ID")
    """The tokens to delete, by id or whole token."""


ACTIONS: dict[str, tuple[type, str]] = {
    "create": (TokenCreate, "create a token; prints it and the join command"),
    "list": (TokenList, "the bootstrap tokens and when they expire"),
    "delete": (TokenDelete, "delete tokens (by id or whole token)"),
}


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[AdminSettings], int]]:
    add_actions(sub, "token", "bootstrap tokens that let nodes join", ACTIONS)
    return {"token": run}


def run(s: AdminSettings) -> int:
    try:
        cfg, conn = s.connect()
        with conn as client:
            if isinstance(s, TokenCreate):
                _create(client, cfg.servers, cfg.credentials().ca, s)
            elif isinstance(s, TokenList):
                _print_list(list_tokens(client), s.output)
            else:
                assert isinstance(s, TokenDelete)
                for text in s.tokens:
                    token_id = text.partition(".")[0]
                    client.secrets.delete(
                        bootstrap.SECRET_PREFIX + token_id, namespace=bootstrap.SECRET_NAMESPACE
                    )
                    print(f"bootstrap token {token_id!r} deleted")
    except (ConfigError, HakubeError, bootstrap.TokenError, certs.CertError) as exc:
        print(f"hakube token: {exc}", file=sys.stderr)
        return 1
    return 0


def _create(client: Client, servers: list[str], ca: bytes, s: TokenCreate) -> None:
    token, expiration = create_token(client, bootstrap.parse_ttl(s.ttl), s.description)
    expires = bootstrap.format_time(expiration) if expiration else None
    if s.output == "json":
        print(
            json.dumps(
                {
                    "token": str(token),
                    "caCertHash": certs.ca_hash(ca),
                    "expires": expires,
                    "joinCommand": join_command(servers, token, ca),
                },
                indent=2,
            )
        )
        return
    print(token)
    print(f"ca-cert-hash: {certs.ca_hash(ca)}")
    print(f"expires: {expires or 'never'}")
    print(f"join a node: {join_command(servers, token, ca)}")


def _print_list(tokens: list[bootstrap.StoredToken], output: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if output == "json":
        print(
            json.dumps(
                [
                    {
                        "token": str(t.token),
                        "expires": bootstrap.format_time(t.expiration) if t.expiration else None,
                        "description": t.description,
                        "live": t.live(now),
                    }
                    for t in tokens
                ],
                indent=2,
            )
        )
        return
    rows = [("TOKEN", "TTL", "EXPIRES", "DESCRIPTION")]
    for t in tokens:
        if t.expiration is None:
            ttl, expires = "<forever>", "<never>"
        else:
            left = (t.expiration - now).total_seconds()
            ttl = human_duration(left) if left > 0 else "<expired>"
            expires = bootstrap.format_time(t.expiration)
        rows.append((str(t.token), ttl, expires, t.description or "<none>"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "   " + r[3])
