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
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.dns.config import DnsSettings
from hakube.httpendpoint import MetricsSettings
from hakube.settings import add_flags, group

WHAT = "hakube dns"


@dataclass(frozen=True)
class DnsCommandSettings:
    """``hakube dns``: where the API is, the server's settings, the metrics endpoint."""

    servers: str = ""
    """Master API endpoints HOST:PORT,... (empty: the client config's)."""
    identity: str = ""
    """This instance's name in its logs (empty: none)."""
    dns: DnsSettings = group(DnsSettings)
    metrics: MetricsSettings = group(MetricsSettings)


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[DnsCommandSettings], int]]:
    p = sub.add_parser(
        "dns",
        help="serve cluster DNS (the cluster zone from Services and Endpoints)",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    add_flags(p, DnsCommandSettings)
    return {"dns": run}


def run(args: DnsCommandSettings) -> int:
    from hakube.client.client import Client
    from hakube.dns.component import ClusterDns
    from hakube.dns.server import ListenError
    from hakube.lifecycle import run_until_signal

    try:
        settings = args.dns
        client = Client.from_config(server=args.servers or None)
    except (ValueError, OSError) as e:
        print(f"{WHAT}: {e}", file=sys.stderr)
        return 2
    registry = CollectorRegistry()
    dns = ClusterDns(client, settings, registry=registry)
    args.metrics.serve(registry, WHAT, ready=dns.synced, not_ready=b"informers not synced\n")
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
