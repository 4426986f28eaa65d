"""``hakube master --with-controllers``: the scheduler and the controllers inside a master.

Each master then also campaigns for the scheduler and controller-manager leases, so exactly one
master's copy of each is active and another master's takes over when it dies. The components
talk to their own master's API only: if that master loses its quorum they cannot renew their
leases, stop acting (fencing), and a master that still has a quorum takes over.
"""

from __future__ import annotations

import os
import uuid

from prometheus_client import CollectorRegistry

from hakube import lifecycle
from hakube.client.client import Client
from hakube.controllers import all as _all  # noqa: F401 - registers the controllers
from hakube.controllers.manager import ControllerManager, select
from hakube.controllers.settings import ControllerSettings
from hakube.leaderelection import Component, ElectionConfig, ElectionMetrics
from hakube.lifecycle import Running
from hakube.pki.layout import Pki
from hakube.scheduler import Scheduler


def start_in_process(
    name: str,
    api: str,
    pki: Pki,
    *,
    registry: CollectorRegistry | None = None,
    settings: ControllerSettings | None = None,
) -> list[Running[Component]]:
    """Start both components against ``api`` on threads of their own, each with its own
    identity from ``pki`` (issued from the CA there if missing); stop them with ``stop_all``.
    Their metrics go into ``registry`` (the master's, so its /metrics serves them too);
    ``settings``: the controllers' knobs (``hakube master``'s flags of
    ``hakube controller-manager``: --cluster-cidr and the rest)."""
    registry = registry if registry is not None else CollectorRegistry()
    election = ElectionMetrics(registry)
    host, _, port = api.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):
        api = f"127.0.0.1:{port}"
    suffix = uuid.uuid4().hex[:8]
    comps = []
    for user, work, lease in (
        ("scheduler", Scheduler(registry=registry), "hakube-scheduler"),
        (
            "controller-manager",
            ControllerManager(select("*"), settings, registry=registry),
            "hakube-controller-manager",
        ),
    ):
        if not os.path.exists(pki.user_cert(user)):
            pki.issue_user(pki.load_ca(), user)
        client = Client([api], credentials=pki.user_tls(user).load(), timeout=10)
        comps.append(
            Component(
                client,
                ElectionConfig(name=lease, namespace="kube-system", identity=f"{name}_{suffix}"),
                work,
                election_metrics=election,
            )
        )
    return [Running.start(c, name=c.config.name) for c in comps]


def stop_all(running: list[Running[Component]]) -> None:
    """Stop the components (each releases its lease), then close their clients."""
    lifecycle.stop_all(running)
    for r in running:
        r.service.client.close()
