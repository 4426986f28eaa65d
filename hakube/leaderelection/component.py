"""Running a leader-elected component (scheduler, controller-manager): flags, metrics, signals.

A component is a function ``work(client, leading)`` that does its job until the ``leading``
event is set. :class:`Component` wraps it in a :class:`LeaderElector` on a thread, so the same
component runs as its own process (``hakube scheduler``) or inside another one (``hakube up``,
``hakube master --with-controllers``). The process form adds an HTTP endpoint with /metrics
and /healthz, and stops cleanly on SIGTERM/SIGINT (``hakube.lifecycle.run_until_signal``),
releasing the lease for a fast handover.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.client.client import Client
from hakube.httpendpoint import add_metrics_flags, new_registry, serve_from_flags
from hakube.leaderelection.elector import ElectionConfig, ElectionMetrics, LeaderElector
from hakube.lifecycle import run_until_signal

log = logging.getLogger("hakube.component")

ComponentWork = Callable[[Client, threading.Event], None]


def default_identity() -> str:
    """Host name plus a random suffix: a restarted process must not pass for its predecessor."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def add_component_flags(p: argparse.ArgumentParser, *, lease: str) -> None:
    """Flags every leader-elected component shares (each also HAKUBE_* env / config file)."""
    p.add_argument(
        "--servers",
        default="",
        help="master API endpoints HOST:PORT,... (default: the client config)",
    )
    p.add_argument("--identity", default="", help="holder identity (default: host_random)")
    p.add_argument("--lease-name", default=lease, help="name of the Lease object")
    p.add_argument("--lease-namespace", default="kube-system")
    p.add_argument(
        "--lease-duration",
        type=int,
        default=4,
        help="seconds a candidate waits after the last renewal it saw",
    )
    p.add_argument(
        "--renew-deadline",
        type=float,
        default=3.0,
        help="seconds after which a holder that could not renew stops acting",
    )
    p.add_argument(
        "--retry-period",
        type=float,
        default=0.5,
        help="seconds between attempts to acquire or renew",
    )
    add_metrics_flags(p)


def election_config(args: argparse.Namespace) -> ElectionConfig:
    return ElectionConfig(
        name=args.lease_name,
        namespace=args.lease_namespace,
        identity=args.identity or default_identity(),
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
    )


class Component:
    """One leader-elected component, a ``hakube.lifecycle.Service``: ``run()`` campaigns for
    the lease and does the work while leading, until ``stop()``, which releases the lease (a
    fast handover). Run it with ``hakube.lifecycle.Running.start`` in-process."""

    def __init__(
        self,
        client: Client,
        config: ElectionConfig,
        work: ComponentWork,
        *,
        registry: CollectorRegistry | None = None,
        election_metrics: ElectionMetrics | None = None,
    ) -> None:
        """``election_metrics``: shared by the components of one process (one registry holds
        each metric once; the ``lease`` label tells them apart)."""
        self.client = client
        self.config = config
        self.registry = registry if registry is not None else new_registry()
        self.elector = LeaderElector(
            client,
            config,
            lambda leading: work(client, leading),
            metrics=election_metrics or ElectionMetrics(self.registry),
        )
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once the component campaigns (a candidate serves by standing by)."""

    def run(self) -> None:
        if self._stop.is_set():
            return
        self.ready.set()
        self.elector.run(self._stop)

    def stop(self) -> None:
        self._stop.set()


def run_component(
    what: str,
    args: argparse.Namespace,
    work: ComponentWork,
    registry: CollectorRegistry | None = None,
) -> int:
    """The body of ``hakube scheduler`` / ``hakube controller-manager``: returns an exit code."""
    try:
        config = election_config(args)
        client = Client.from_config(server=args.servers or None)
    except (ValueError, OSError) as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return 2
    registry = registry if registry is not None else new_registry()
    gctune.install()
    serve_from_flags(args, registry, what)
    comp = Component(client, config, work, registry=registry)
    log.info(
        "%s: %s campaigning for lease %s/%s via %s",
        what,
        config.identity,
        config.namespace,
        config.name,
        ",".join(client.servers),
    )
    try:
        run_until_signal(comp, what=what)
    finally:
        client.close()
    return 0
