"""Bootstrap tokens for test nodes: agents in tests join a cluster the way real nodes do.

One token per set of masters is created (through the admin client config the tests use) and
reused by every agent of the process, as one kubeadm token may join many nodes.
"""

from __future__ import annotations

import datetime
import functools

from hakube.client import Client
from hakube.client.config import load_client_config
from hakube.pki import certs

TTL = datetime.timedelta(hours=12)


@functools.lru_cache(maxsize=32)
def _token(servers: tuple[str, ...]) -> tuple[str, str]:
    from hakube.cli.token_cmd import create_token

    cfg = load_client_config(None, server=",".join(servers))
    creds = cfg.credentials()
    with Client(list(servers), credentials=creds, timeout=30) as client:
        token, _ = create_token(client, TTL, "test nodes")
    return str(token), certs.ca_hash(creds.ca)


def token_for(servers: list[str]) -> tuple[str, str]:
    """(token, CA hash) for joining the cluster at ``servers``."""
    return _token(tuple(servers))


def agent_args(servers: list[str]) -> list[str]:
    """``hakube agent`` flags that join the cluster at ``servers``."""
    token, ca_hash = token_for(servers)
    return ["--token", token, "--ca-cert-hash", ca_hash]
