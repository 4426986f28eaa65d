"""``hakube dns``: flags, their checks, and signal handling around ``ClusterDns.run()``.

Every flag is also a ``HAKUBE_<FLAG>`` environment variable or a key of the ``--config`` file.
The API credentials come from the client config (``$HAKUBE_CONFIG``): ``hakube up`` and the
deployment give it the ``system:hakube-dns`` certificate, whose default ClusterRole may only
list and watch Services and Endpoints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.dns.config import DEFAULT_LISTEN, DnsSettings
from hakube.httpendpoint import add_metrics_flags, serve_from_flags

WHAT = "hakube dns"


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = DnsSettings()
    p = sub.add_parser(
        "dns",
        help="serve cluster DNS (the cluster zone from Services and Endpoints)",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    p.add_argument(
        "--servers", default="", help="master API endpoints HOST:PORT,... (default: client config)"
    )
    p.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        help=f"HOST:PORT,... to answer on, UDP and TCP (default {DEFAULT_LISTEN}: loopback "
        "only; pods need an address they reach, e.g. the node's, behind the kube-dns Service)",
    )
    p.add_argument(
        "--identity", default="", help="this instance's name in its logs (default: none)"
    )
    p.add_argument("--cluster-domain", default=d.cluster_domain, help="the cluster zone")
    p.add_argument(
        "--upstream",
        default=None,
        help="resolvers for other names, IP[:PORT],... ('none': answer them SERVFAIL; "
        "default: the nameservers of --resolv-conf)",
    )
    p.add_argument("--resolv-conf", default=d.resolv_conf, help="the node's resolv.conf")
    p.add_argument(
        "--forward-timeout",
        type=float,
        default=d.forward_timeout,
        help="seconds for all upstream attempts of one query, then SERVFAIL",
    )
    p.add_argument("--ttl", type=int, default=d.ttl, help="TTL of cluster answers, seconds")
    p.add_argument(
        "--cache-size", type=int, default=d.cache_size, help="answers kept ready (0: none)"
    )
    add_metrics_flags(p)
    return {"dns": run}


def settings_from(args: argparse.Namespace) -> DnsSettings:
    upstream: tuple[str, ...] | None = None
    if args.upstream is not None:
        words = [u.strip() for u in args.upstream.split(",") if u.strip()]
        upstream = () if words in ([], ["none"]) else tuple(words)
    return DnsSettings(
        listen=tuple(a.strip() for a in args.listen.split(",") if a.strip()),
        cluster_domain=args.cluster_domain,
        upstream=upstream,
        resolv_conf=args.resolv_conf,
        forward_timeout=args.forward_timeout,
        ttl=args.ttl,
        cache_size=args.cache_size,
    )


def run(args: argparse.Namespace) -> int:
    from hakube.client.client import Client
    from hakube.dns.component import ClusterDns
    from hakube.dns.server import ListenError
    from hakube.lifecycle import run_until_signal

    try:
        settings = settings_from(args)
        settings.validate()
        client = Client.from_config(server=args.servers or None)
    except (ValueError, OSError) as e:
        print(f"{WHAT}: {e}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    dns = ClusterDns(client, settings, registry=registry)
    serve_from_flags(args, registry, WHAT, ready=dns.synced, not_ready=b"informers not synced\n")
    gctune.install()
    # A query waits for the GIL whenever another thread (an informer applying a change, the
    # metrics endpoint) holds it; a short switch interval bounds that wait well under the 5 ms
    # latency target (Python's default is 5 ms).
    sys.setswitchinterval(0.0005)

    if args.identity:
        logging.getLogger("hakube.dns").info("instance %s", args.identity)
    try:
        run_until_signal(dns, what=WHAT)
    except ListenError as e:
        print(f"{WHAT}: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        client.close()
    return 0
