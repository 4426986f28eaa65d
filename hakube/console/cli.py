"""``hakube console``: serve the web console on loopback, acting as the user of a client
config (``~/.hakube/config`` by default, as hakubectl)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hakube.client import Client
from hakube.client.config import ConfigError, load_client_config
from hakube.console.server import Console
from hakube.settings import add_flags, setting


@dataclass(frozen=True)
class ConsoleSettings:
    """``hakube console``."""

    listen: str = "127.0.0.1:8001"
    """Loopback HOST:PORT to serve on (port 0 picks one)."""
    client_config: str = setting("", metavar="FILE")
    """Client config whose user the console acts as (empty: ~/.hakube/config)."""
    server: str = setting("", aliases=("-s",), metavar="HOST:PORT")
    """Masters HOST:PORT[,...], overriding the client config's."""


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[ConsoleSettings], int]]:
    p = sub.add_parser(
        "console",
        help="serve the web console on loopback, acting with a client config's credentials",
    )
    add_flags(p, ConsoleSettings)
    return {"console": run}


def run(args: ConsoleSettings) -> int:
    try:
        cfg = load_client_config(args.client_config or None, server=args.server or None)
        creds = cfg.credentials()
    except ConfigError as exc:
        print(f"hakube console: {exc}", file=sys.stderr)
        return 2
    with Client(cfg.servers, credentials=creds, timeout=cfg.timeout) as client:
        console = Console(client, args.listen)
        print(f"hakube console: open {console.url}", flush=True)
        stop = threading.Event()

        def on_signal(signum: int, _frame: object) -> None:
            stop.set()
            threading.Thread(target=console.stop, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        console.serve()
    return 0
