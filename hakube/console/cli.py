"""``hakube console``: serve the web console on loopback, acting as the user of a client
config (``~/.hakube/config`` by default, as hakubectl)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hakube.client import Client
from hakube.client.config import ConfigError, load_client_config
from hakube.console.alerts import PrometheusSettings, ssl_context
from hakube.console.server import Console
from hakube.lifecycle import run_until_signal
from hakube.settings import add_flags, group, setting


@dataclass(frozen=True)
class ConsoleSettings:
    """``hakube console``."""

    listen: str = "127.0.0.1:8001"
    """Loopback HOST:PORT to serve on (port 0 picks one)."""
    client_config: str = setting("", metavar="FILE")
    """Client config whose user the console acts as (empty: ~/.hakube/config)."""
    server: str = setting("", aliases=("-s",), metavar="HOST:PORT")
    """Masters HOST:PORT[,...], overriding the client config's."""
    prometheus: PrometheusSettings = group(PrometheusSettings)


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[ConsoleSettings], int]]:
    p = sub.add_parser(
        "console",
        help="serve the web console on loopback, acting with a client config's credentials",
    )
    add_flags(p, ConsoleSettings)
    return {"console": run}


def run(args: ConsoleSettings) -> int:
    prometheus = args.prometheus
    if prometheus.url:
        ssl_context(prometheus)  # settings that cannot work fail before anything connects
    try:
        cfg = load_client_config(args.client_config or None, server=args.server or None)
        creds = cfg.credentials()
    except ConfigError as exc:
        print(f"hakube console: {exc}", file=sys.stderr)
        return 2
    with Client(cfg.servers, credentials=creds, timeout=cfg.timeout) as client:
        console = Console(client, args.listen, prometheus)
        print(f"hakube console: open {console.url}", flush=True)
        run_until_signal(console, what="hakube console")
    return 0
