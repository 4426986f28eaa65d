"""Settings the cluster tools share: which masters to ask, and as whom.

``-s/--server`` (``HAKUBE_SERVER``) and ``--client-config`` mean the same for ``hakube token``,
``secrets``, ``members`` and ``snapshot save`` as for hakubectl, so they are written once here
and grouped into each tool's settings (``hakube.settings``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hakube.client import Client
from hakube.client.config import ClientConfig, load_client_config
from hakube.settings import setting


@dataclass(frozen=True)
class MastersSettings:
    """Where the masters are."""

    server: str = setting("", aliases=("-s",), metavar="HOST:PORT,...")
    """Master API address(es) (empty: the client config's servers)."""


@dataclass(frozen=True)
class AdminSettings(MastersSettings):
    """Where the masters are, and the admin's credentials for them."""

    client_config: str = setting("", metavar="FILE")
    """Client config with the admin's credentials (empty: $HAKUBE_CONFIG, else
    ~/.hakube/config)."""

    def config(self) -> ClientConfig:
        """The client config these settings name (ConfigError if unusable)."""
        return load_client_config(self.client_config or None, server=self.server or None)

    def connect(self) -> tuple[ClientConfig, Client]:
        """The config and a client on it, to be closed by the caller (``with``)."""
        cfg = self.config()
        return cfg, Client(cfg.servers, credentials=cfg.credentials(), timeout=cfg.timeout)
