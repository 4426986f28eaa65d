"""kubeconfig files for the Kubernetes REST API, so real ``kubectl`` and client libraries
reach a hakube cluster.

The file embeds the cluster CA (the client verifies the master's certificate against it) and
a user's client certificate and key (the identity the masters authenticate, exactly as for
hakubectl), so it is written owner-only, like the client config beside it.
"""

from __future__ import annotations

import base64

import yaml

from hakube.pki import files
from hakube.pki.tls import Credentials


def kubeconfig(
    server: str, creds: Credentials, *, cluster: str = "hakube", user: str = "admin"
) -> str:
    """The text of a kubeconfig naming ``server`` (HOST:PORT of a master's REST API)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": f"https://{server}",
                    "certificate-authority-data": b64(creds.ca),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(creds.cert),
                    "client-key-data": b64(creds.key),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def write_kubeconfig(path: str, server: str, creds: Credentials, **kw: str) -> str:
    """Write a kubeconfig (0600) and return its path."""
    files.write_atomic(path, kubeconfig(server, creds, **kw).encode())
    return path
