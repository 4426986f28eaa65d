"""Key material for test clusters: one CA per test process, shared by its clusters.

Every cluster a test starts runs with TLS like a real one; sharing the CA (and the admin,
scheduler and controller-manager certificates) across the clusters of one process lets one
client config (``$HAKUBE_CONFIG``, set by the test suite's conftest) reach any of them, the way
one kubeconfig user works against several clusters signed by one CA. Tests about the PKI itself
make their own CAs.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
from typing import Any

import grpc

from hakube.client.config import ENV_CONFIG, read_config_file
from hakube.pki.layout import Pki
from hakube.pki.tls import Credentials, channel_credentials

_lock = threading.Lock()
_shared: Pki | None = None


def shared() -> Pki:
    """This process's test PKI (CA and user certificates), made on first use."""
    global _shared
    with _lock:
        if _shared is None:
            root = tempfile.mkdtemp(prefix="hakube-test-pki-")
            atexit.register(shutil.rmtree, root, True)
            pki = Pki(os.path.join(root, "pki"))
            pki.init({})
            _shared = pki
        return _shared


def credentials(pki: Pki | None = None, user: str = "admin") -> Credentials:
    pki = pki or shared()
    return pki.user_tls(user).load()


def channel(
    endpoint: str,
    *,
    options: list[tuple[str, Any]] | None = None,
    credentials: Credentials | None = None,
) -> grpc.Channel:
    """A gRPC channel to a master of a test cluster, as the admin of the shared test CA."""
    return grpc.secure_channel(
        endpoint, channel_credentials(credentials or _admin()), options=options or []
    )


@functools.lru_cache(maxsize=1)
def _admin() -> Credentials:
    # A process started by a test finds the suite's credentials through $HAKUBE_CONFIG.
    if os.environ.get(ENV_CONFIG):
        return read_config_file(os.environ[ENV_CONFIG]).credentials()
    return credentials()
