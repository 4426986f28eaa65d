"""Node certificates for agents that test harnesses and ``hakube up`` start.

A node agent serves its API only with a node certificate (``<root-dir>/pki``, see
hakube.pki.layout.NodePki). Until nodes join with bootstrap tokens, whatever starts an agent
issues that certificate directly from the cluster's CA here, before the agent starts; this one
helper is what the token join replaces.
"""

from __future__ import annotations

import os
from typing import Protocol

from hakube.pki.layout import NodePki, Pki


class HasPki(Protocol):
    """A LocalCluster, or anything else with the cluster's PKI directory as ``pki``."""

    @property
    def pki(self) -> Pki: ...


def provision_node(source: Pki | HasPki, root_dir: str, name: str,
                   hosts: list[str]) -> NodePki:
    """Issue node ``name``'s certificate for ``hosts`` (its InternalIP at least) from the CA of
    ``source`` into ``<root_dir>/pki``; returns that NodePki."""
    pki = source if isinstance(source, Pki) else source.pki
    node = NodePki(os.path.join(root_dir, "pki"))
    node.provision(pki.load_ca(), name, hosts)
    return node
