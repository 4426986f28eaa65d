"""Running a leader-elected component (scheduler, controller-manager): settings, metrics, signals.

A component is a function ``work(client, leading)`` that does its job until the ``leading``
event is set. :class:`Component` wraps it in a :class:`LeaderElector` on a thread, so the same
component runs as its own process (``hakube scheduler``) or inside another one (``hakube up``,
``hakube master --with-controllers``). The process form adds an HTTP endpoint with /metrics
and /healthz, and stops cleanly on SIGTERM/SIGINT (``hakube.lifecycle.run_until_signal``),
releasing the lease for a fast handover.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.client.client import Client
from hakube.httpendpoint import MetricsSettings, new_registry
from hakube.leaderelection.elector import ElectionConfig, ElectionMetrics, LeaderElector
from hakube.lifecycle import run_until_signal
from hakube.settings import group, setting

log = logging.getLogger("hakube.component")

ComponentWork = Callable[[Client, threading.Event], None]


def default_identity() -> str:
    """Host name plus a random suffix: a restarted process must not pass for its predecessor."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ComponentSettings:
    """What every leader-elected component shares: where the API is, the lease, the timing
    (seconds) and the metrics endpoint. Each command sets its own ``lease_name`` default."""

    servers: str = ""
    """Master API endpoints HOST:PORT,... (empty: the client config's)."""
    identity: str = ""
    """Holder identity written into the Lease (empty: host name plus a random suffix)."""
    lease_name: str = "hakube-component"
    """Name of the Lease object the candidates compete for."""
    lease_namespace: str = "kube-system"
    """Namespace of that Lease."""
    lease_duration: int = setting(4, minimum=1)
    """Seconds a candidate waits after the last renewal it saw before taking over."""
    renew_deadline: float = 3.0
    """Seconds after which a holder that could not renew stops acting (fencing)."""
    retry_period: float = 0.5
    """Seconds between attempts to acquire or renew."""
    metrics: MetricsSettings = group(MetricsSettings)

    def validate(self) -> None:
        if not 0 < self.renew_deadline < self.lease_duration:
            raise ValueError(
                f"--renew-deadline {self.renew_deadline}: must be > 0 and shorter than "
                f"--lease-duration {self.lease_duration}"
            )
        if not 0 < self.retry_period < self.renew_deadline:
            raise ValueError(
                f"--retry-period {self.retry_period}: must be > 0 and shorter than "
                f"--renew-deadline {self.renew_deadline}"
            )

    def election_config(self) -> ElectionConfig:
        return ElectionConfig(
            name=self.lease_name,
            namespace=self.lease_namespace,
            identity=self.identity or default_identity(),
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
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
        # The lease is renewed on connections of its own: on the work's shared client the
        # renewals queued behind the controller-manager's watches and batched writes at 30,000
        # pods, missed the renew deadline and cost the lease twice in the scale run.
        self.election_client = client.with_own_connection()
        self.elector = LeaderElector(
            self.election_client,
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
        try:
            self.elector.run(self._stop)
        finally:
            self.election_client.close()

    def stop(self) -> None:
        self._stop.set()


def run_component(
    what: str,
    settings: ComponentSettings,
    work: ComponentWork,
    registry: CollectorRegistry | None = None,
) -> int:
    """The body of ``hakube scheduler`` / ``hakube controller-manager``: returns an exit code."""
    try:
        config = settings.election_config()
        client = Client.from_config(server=settings.servers or None)
    except (ValueError, OSError) as exc:
        print(f"{what}: {exc}", file=sys.stderr)
        return 2
    registry = registry if registry is not None else new_registry()
    gctune.install()
    settings.metrics.serve(registry, what)
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
