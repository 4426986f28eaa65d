"""Test clusters: ``hakube.local.cluster.LocalCluster`` signed by this process's shared test CA.

Sharing the CA (``hakube.testing.pki``) lets one client config reach every cluster a test
process starts; see that module. Tests about the PKI pass a CA of their own.
"""

from __future__ import annotations

from hakube.local import cluster as local
from hakube.pki.layout import Pki
from hakube.testing import pki as testpki


class LocalCluster(local.LocalCluster):
    """A local cluster whose CA defaults to the shared test CA."""

    def __init__(
        self,
        base_dir: str,
        n: int = 3,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        ca: Pki | None = None,
    ) -> None:
        super().__init__(base_dir, n, extra_args=extra_args, env=env, ca=ca or testpki.shared())
