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
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.cli.printers import human_duration
from hakube.client import Client, HakubeError
from hakube.client.config import ConfigError, load_client_config
from hakube.pki import bootstrap, certs


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


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    top = sub.add_parser("token", help="bootstrap tokens that let nodes join")
    actions = top.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-s",
            "--server",
            help="master API address(es), HOST:PORT[,...] (default: the client config's)",
        )
        p.add_argument(
            "--client-config",
            default=None,
            help="client config with the admin's credentials (default: "
            "$HAKUBE_CONFIG or ~/.hakube/config)",
        )

    p = actions.add_parser("create", help="create a token; prints it and the join command")
    common(p)
    p.add_argument(
        "--ttl",
        default="24h",
        help="how long the token may be used: 24h, 90m, 2h30m; 0: forever (24h)",
    )
    p.add_argument("--description", default="", help="what the token is for")
    p.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help="json: one object with token, caCertHash, expires, joinCommand "
        "(for scripts and the Ansible playbook)",
    )
    p = actions.add_parser("list", help="the bootstrap tokens and when they expire")
    common(p)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = actions.add_parser("delete", help="delete tokens (by id or whole token)")
    common(p)
    p.add_argument("tokens", nargs="+", metavar="ID")
    return {"token": run}


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_client_config(args.client_config, server=args.server)
        ca = cfg.credentials().ca
        with Client(cfg.servers, credentials=cfg.credentials(), timeout=cfg.timeout) as client:
            if args.token_command == "create":
                ttl = bootstrap.parse_ttl(args.ttl)
                token, expiration = create_token(client, ttl, args.description)
                expires = bootstrap.format_time(expiration) if expiration else None
                if args.output == "json":
                    print(
                        json.dumps(
                            {
                                "token": str(token),
                                "caCertHash": certs.ca_hash(ca),
                                "expires": expires,
                                "joinCommand": join_command(cfg.servers, token, ca),
                            },
                            indent=2,
                        )
                    )
                else:
                    print(token)
                    print(f"ca-cert-hash: {certs.ca_hash(ca)}")
                    print(f"expires: {expires or 'never'}")
                    print(f"join a node: {join_command(cfg.servers, token, ca)}")
            elif args.token_command == "list":
                _print_list(list_tokens(client), args.output)
            else:
                for text in args.tokens:
                    token_id = text.partition(".")[0]
                    client.secrets.delete(
                        bootstrap.SECRET_PREFIX + token_id, namespace=bootstrap.SECRET_NAMESPACE
                    )
                    print(f"bootstrap token {token_id!r} deleted")
    except (ConfigError, HakubeError, bootstrap.TokenError, certs.CertError) as exc:
        print(f"hakube token: {exc}", file=sys.stderr)
        return 1
    return 0


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
