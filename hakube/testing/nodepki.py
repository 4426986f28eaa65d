"""Node certificates issued straight from a cluster's CA, for tests.

Agents get theirs by joining with a bootstrap token (hakube.agent.join). Tests that need a
node's identity without an agent -- a caller posing as another node, say -- issue one here, as
a pre-provisioned node would have it (``<root-dir>/pki``, hakube.pki.layout.NodePki).
"""

from __future__ import annotations

import os
from typing import Protocol

from hakube.pki.layout import NodePki, Pki


class HasPki(Protocol):
    """A LocalCluster, or anything else with the cluster's PKI directory as ``pki``."""

    @property
    def pki(self) -> Pki: ...


def provision_node(source: Pki | HasPki, root_dir: str, name: str, hosts: list[str]) -> NodePki:
    """Issue node ``name``'s certificate for ``hosts`` (its InternalIP at least) from the CA of
    ``source`` into ``<root_dir>/pki``; returns that NodePki."""
    pki = source if isinstance(source, Pki) else source.pki
    node = NodePki(os.path.join(root_dir, "pki"))
    node.provision(pki.load_ca(), name, hosts)
    return node
