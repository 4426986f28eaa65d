"""``hakube master --with-controllers``: the scheduler and the controllers inside a master.

Each master then also campaigns for the scheduler and controller-manager leases, so exactly one
master's copy of each is active and another master's takes over when it dies. The components
talk to their own master's API only: if that master loses its quorum they cannot renew their
leases, stop acting (fencing), and a master that still has a quorum takes over.
"""

from __future__ import annotations

import argparse
import uuid

from hakube.client.client import Client
from hakube.controllers import all as _all  # noqa: F401 - registers the controllers
from hakube.controllers.manager import ControllerManager, select
from hakube.leaderelection import Component, ElectionConfig
from hakube.scheduler import Scheduler


def start_in_process(name: str, api: str) -> list[Component]:
    """Start both components against ``api``; stop them with ``stop_all``."""
    client = Client([api], timeout=10)
    suffix = uuid.uuid4().hex[:8]
    comps = [
        Component(
            client,
            ElectionConfig(
                name="hakube-scheduler", namespace="kube-system", identity=f"{name}_{suffix}"
            ),
            Scheduler(),
        ),
        Component(
            client,
            ElectionConfig(
                name="hakube-controller-manager",
                namespace="kube-system",
                identity=f"{name}_{suffix}",
            ),
            ControllerManager(select("*"), argparse.Namespace()),
        ),
    ]
    for c in comps:
        c.start()
    return comps


def stop_all(comps: list[Component]) -> None:
    for c in comps:
        c.stop()
    if comps:
        comps[0].client.close()
