"""The controller-manager: every enabled controller, for as long as this process leads.

Controllers register in ``REGISTRY`` (name -> class) by importing their module in
``hakube.controllers.all``. Each leadership term builds fresh shared informers and fresh
controllers, waits for the caches, runs the workers, and tears everything down when the term
ends, so a new term starts from a full, current view and reconciles everything.
"""

from __future__ import annotations

import logging
import socket
import threading

from prometheus_client import CollectorRegistry

from hakube.api.clock import SYSTEM_CLOCK, Clock
from hakube.client.batch import BatchWriter
from hakube.client.client import Client
from hakube.client.events import EventRecorder
from hakube.controllers.base import Context, Controller, ControllerMetrics, SharedInformers
from hakube.controllers.settings import ControllerSettings

log = logging.getLogger("hakube.controllers.manager")

REGISTRY: dict[str, type[Controller]] = {}


def register(cls: type[Controller]) -> type[Controller]:
    """Class decorator: make a controller available to the manager under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"controller name {cls.name!r} is empty or taken")
    REGISTRY[cls.name] = cls
    return cls


def select(spec: str) -> list[str]:
    """Controllers to run from a kube-style list: ``*`` all, ``name`` one, ``-name`` not it."""
    words = [w.strip() for w in spec.split(",") if w.strip()] or ["*"]
    unknown = [w.lstrip("-") for w in words if w != "*" and w.lstrip("-") not in REGISTRY]
    if unknown:
        raise ValueError(
            f"unknown controller {unknown[0]!r} (known: {', '.join(sorted(REGISTRY))})"
        )
    on = set(REGISTRY) if "*" in words else set()
    on |= {w for w in words if w != "*" and not w.startswith("-")}
    on -= {w[1:] for w in words if w.startswith("-")}
    return sorted(on)


class ControllerManager:
    """``work(client, leading)`` for hakube.leaderelection.Component."""

    def __init__(
        self,
        names: list[str],
        settings: ControllerSettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        sync_timeout: float = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.names = names
        self.settings = settings or ControllerSettings()
        self.metrics = ControllerMetrics(registry if registry is not None else CollectorRegistry())
        for name in names:
            self.metrics.declare(name)
        self.sync_timeout = sync_timeout
        self.clock = clock

    def __call__(self, client: Client, leading: threading.Event) -> None:
        informers = SharedInformers(client)
        writer = BatchWriter(client.transport, fence=leading.is_set)
        events = EventRecorder(
            client, "controller-manager", host=socket.gethostname(), writer=writer
        )
        ctx = Context(
            client=client,
            informers=informers,
            leading=leading,
            events=events,
            settings=self.settings,
            metrics=self.metrics,
            clock=self.clock,
            writer=writer,
        )
        controllers = [REGISTRY[n](ctx) for n in self.names]
        try:
            for c in controllers:
                c.setup()
            informers.start()
            if not informers.wait_synced(self.sync_timeout):
                raise RuntimeError("informer caches did not sync")
            log.info("controllers running: %s", ", ".join(self.names))
            threads = [t for c in controllers for t in c.run()]
            leading.wait()
        finally:
            for c in controllers:
                c.stop()
            informers.stop()
            events.close()
            writer.close()
        for t in threads:
            t.join(10)
