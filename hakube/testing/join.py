"""Bootstrap tokens for test nodes: agents in tests join a cluster the way real nodes do.

One token per set of masters is created (through the admin client config the tests use) and
reused by every agent of the process, as one kubeadm token may join many nodes; it is checked
to still exist first, since a later cluster may reuse the ports of an earlier one.
"""

from __future__ import annotations

import datetime
import threading

from hakube.client import Client, NotFound
from hakube.client.config import load_client_config
from hakube.pki import bootstrap, certs

TTL = datetime.timedelta(hours=12)
_lock = threading.Lock()
_tokens: dict[tuple[str, ...], tuple[str, str]] = {}


def token_for(servers: list[str]) -> tuple[str, str]:
    """(token, CA hash) for joining the cluster at ``servers``."""
    from hakube.cli.token_cmd import create_token

    key = tuple(servers)
    cfg = load_client_config(None, server=",".join(servers))
    creds = cfg.credentials()
    with _lock, Client(list(servers), credentials=creds, timeout=30) as client:
        known = _tokens.get(key)
        if known is not None:
            try:
                client.secrets.get(
                    bootstrap.parse(known[0]).secret_name, namespace=bootstrap.SECRET_NAMESPACE
                )
                return known
            except NotFound:
                pass
        token, _ = create_token(client, TTL, "test nodes")
        _tokens[key] = (str(token), certs.ca_hash(creds.ca))
        return _tokens[key]


def agent_args(servers: list[str]) -> list[str]:
    """``hakube agent`` flags that join the cluster at ``servers``."""
    token, ca_hash = token_for(servers)
    return ["--token", token, "--ca-cert-hash", ca_hash]
