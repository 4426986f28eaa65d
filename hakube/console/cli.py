"""``hakube console``: serve the web console on loopback, acting as the user of a client
config (``~/.hakube/config`` by default, as hakubectl)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hakube.client import Client
from hakube.client.config import ConfigError, load_client_config
from hakube.console.alerts import PrometheusSettings, ssl_context
from hakube.console.server import Console
from hakube.lifecycle import run_until_signal


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser(
        "console",
        help="serve the web console on loopback, acting with a client config's credentials",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8001",
        help="loopback HOST:PORT to serve on (port 0 picks one; default 127.0.0.1:8001)",
    )
    p.add_argument(
        "--client-config",
        default=None,
        help="client config whose user the console acts as (default: ~/.hakube/config)",
    )
    p.add_argument("-s", "--server", default=None, help="masters HOST:PORT[,...] (overrides)")
    p.add_argument(
        "--prometheus-url",
        default="",
        help="Prometheus to show firing and pending alerts from on the overview, "
        "http(s)://HOST:PORT (default: none)",
    )
    p.add_argument(
        "--prometheus-ca-file",
        default="",
        help="CA bundle for an https Prometheus (default: the system's trust store)",
    )
    p.add_argument(
        "--prometheus-cert-file",
        default="",
        help="client certificate for a Prometheus that asks for one (with --prometheus-key-file)",
    )
    p.add_argument("--prometheus-key-file", default="", help="key of --prometheus-cert-file")
    p.add_argument(
        "--prometheus-interval",
        type=float,
        default=5.0,
        help="seconds between two asks for alerts while a page is open (default 5)",
    )
    return {"console": run}


def run(args: argparse.Namespace) -> int:
    prometheus = PrometheusSettings(
        url=args.prometheus_url,
        ca_file=args.prometheus_ca_file,
        cert_file=args.prometheus_cert_file,
        key_file=args.prometheus_key_file,
        interval=args.prometheus_interval,
    )
    if prometheus.url:
        ssl_context(prometheus)  # settings that cannot work fail before anything connects
    try:
        cfg = load_client_config(args.client_config, server=args.server)
        creds = cfg.credentials()
    except ConfigError as exc:
        print(f"hakube console: {exc}", file=sys.stderr)
        return 2
    with Client(cfg.servers, credentials=creds, timeout=cfg.timeout) as client:
        console = Console(client, args.listen, prometheus)
        print(f"hakube console: open {console.url}", flush=True)
        run_until_signal(console, what="hakube console")
    return 0
