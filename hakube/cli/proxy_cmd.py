"""``hakube proxy``: the service proxy of one node, as its own process.

It runs on every node (not leader-elected: each node programs its own kernel), as the identity
``system:kube-proxy`` (ClusterRole ``system:node-proxier``: read Services, Endpoints and Nodes),
and needs root (CAP_NET_ADMIN) for nftables. Every flag is also a ``HAKUBE_<FLAG>`` variable
or a ``--config`` key.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.client.client import Client
from hakube.httpendpoint import MetricsSettings
from hakube.lifecycle import run_until_signal
from hakube.proxy import Proxier, ProxyConfig
from hakube.settings import add_flags, group

NAME = "proxy"
log = logging.getLogger("hakube.proxy")


@dataclass(frozen=True)
class ProxySettings:
    """``hakube proxy``: where the API is, how the table is programmed, the metrics endpoint."""

    servers: str = ""
    """Master API endpoints HOST:PORT,... (empty: the client config's)."""
    proxy: ProxyConfig = group(ProxyConfig)
    metrics: MetricsSettings = group(MetricsSettings)


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[ProxySettings], int]]:
    p = sub.add_parser(NAME, help="run a node's service proxy (nftables)")
    add_flags(p, ProxySettings)
    return {NAME: run}


def run(settings: ProxySettings) -> int:
    what = f"hakube {NAME}"
    config = settings.proxy
    try:
        client = Client.from_config(server=settings.servers or None)
    except (ValueError, OSError) as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    gctune.install()
    proxier = Proxier(client, config, registry=registry)
    settings.metrics.serve(registry, what, ready=proxier.ready.is_set)
    log.info("%s: programming table ip %s via %s", what, config.table, ",".join(client.servers))
    try:
        # A stop leaves the table in force: services keep working while the proxy restarts.
        run_until_signal(proxier, what=what)
    finally:
        client.close()
    return 0
