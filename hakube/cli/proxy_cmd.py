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

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.client.client import Client
from hakube.httpendpoint import add_metrics_flags, serve_from_flags
from hakube.lifecycle import run_until_signal
from hakube.proxy import Proxier, ProxyConfig

NAME = "proxy"
log = logging.getLogger("hakube.proxy")


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(NAME, help="run a node's service proxy (nftables)")
    d = ProxyConfig()
    p.add_argument(
        "--servers",
        default="",
        help="master API endpoints HOST:PORT,... (default: the client config)",
    )
    p.add_argument("--table", default=d.table, help="name of the proxy's nftables table (ip)")
    p.add_argument(
        "--cluster-cidr",
        default=d.cluster_cidr,
        help="pod network; traffic to ClusterIPs from outside it is masqueraded (empty: off)",
    )
    p.add_argument(
        "--min-sync-interval",
        type=float,
        default=d.min_sync_interval,
        help="seconds between two syncs at least (changes within it share one transaction)",
    )
    p.add_argument(
        "--retry-interval",
        type=float,
        default=d.retry_interval,
        help="seconds before a failed sync is retried",
    )
    p.add_argument(
        "--check-interval",
        type=float,
        default=d.check_interval,
        help="seconds between checks that the table exists (a deleted one is rebuilt)",
    )
    p.add_argument("--nft", default=d.nft, help="the nft binary")
    add_metrics_flags(p, "/metrics, /healthz, /readyz")
    return {NAME: run}


def run(args: argparse.Namespace) -> int:
    what = f"hakube {NAME}"
    config = ProxyConfig(
        table=args.table,
        cluster_cidr=args.cluster_cidr,
        min_sync_interval=args.min_sync_interval,
        retry_interval=args.retry_interval,
        check_interval=args.check_interval,
        nft=args.nft,
    )
    try:
        config.validate()
        client = Client.from_config(server=args.servers or None)
    except (ValueError, OSError) as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    gctune.install()
    proxier = Proxier(client, config, registry=registry)
    serve_from_flags(args, registry, what, ready=proxier.ready.is_set)
    log.info("%s: programming table ip %s via %s", what, config.table, ",".join(client.servers))
    try:
        # A stop leaves the table in force: services keep working while the proxy restarts.
        run_until_signal(proxier, what=what)
    finally:
        client.close()
    return 0
