"""The node agent's side of the Container Runtime Interface (CRI).

``hakube.cri.v1`` holds the generated ``runtime.v1`` stubs; ``client`` is the typed client the
agent drives containerd with, ``errors`` its exception tree, ``specs`` builders for the request
messages, ``logs`` a reader for CRI log files; ``simulated`` is an in-process CRI server for
tests that need many nodes but no real containers.

The names below are the public surface; tests/cri/test_cri_client.py keeps it from drifting.
"""

from hakube.cri.client import CRI_VERSION, DEFAULT_ENDPOINT, CriClient, ExecResult, Timeouts
from hakube.cri.errors import (
    CallTimeout,
    CriError,
    ImagePullFailed,
    NotFound,
    RuntimeUnavailable,
)

__all__ = [
    "CRI_VERSION",
    "DEFAULT_ENDPOINT",
    "CallTimeout",
    "CriClient",
    "CriError",
    "ExecResult",
    "ImagePullFailed",
    "NotFound",
    "RuntimeUnavailable",
    "Timeouts",
]
