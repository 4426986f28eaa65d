"""Whether a master should get traffic: quorum proven through the log, and no stalled thread.

A readiness barrier is committed through the Raft log every ``ready_interval``: a master cut off
from the majority cannot commit it and reports not-ready even if its TCP connections linger.
After ``watch_quorum_grace`` without quorum its watch streams end, so that watchers move to a
master that still sees changes. The event loop and the Raft thread beat ``heartbeats``; /readyz
(answered from the HTTP thread, which a wedged loop does not stop) is false while one is silent,
so keepalived moves the VIP away from a wedged master.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from hakube.apiserver.errors import ApiError
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.server import ApiServer
from hakube.apiserver.watch import WatchHub
from hakube.httpendpoint import Heartbeats
from hakube.master.settings import MasterSettings

log = logging.getLogger("hakube.master")


class Readiness:
    """The readiness state of one master and the loops that keep it."""

    def __init__(self, settings: MasterSettings) -> None:
        self.s = settings
        self.quorum_ok = False
        """A barrier committed recently: in a quorum with a leader."""
        self.bootstrapped = False
        """The default namespaces and roles exist and the encryption keys fit (bootstrap)."""
        self.readyz = False
        """What /readyz and gRPC health report: quorum_ok and bootstrapped."""
        self.first_ready = threading.Event()
        """Set the first time ``readyz`` turns true (the master's ``ready``)."""
        self.heartbeats = Heartbeats(settings.stall_after)

    def serving_ready(self) -> bool:
        """/readyz: ready, and neither the event loop nor the Raft thread silent."""
        stalled = self.heartbeats.stalled()
        if stalled:
            log.warning(
                "master %s: %s silent for %s; /readyz reports not ready",
                self.s.name,
                " and ".join(stalled),
                " and ".join(f"{v:.1f} s" for v in stalled.values()),
            )
        return self.readyz and not stalled

    async def wait_quorum(self) -> None:
        while not self.quorum_ok:
            await asyncio.sleep(0.05)

    async def heartbeat_loop(self) -> None:
        while True:
            self.heartbeats.beat("event loop")
            await asyncio.sleep(self.s.stall_after / 8)

    async def barrier_loop(self, api: ObjectAPI, server: ApiServer, hub: WatchHub) -> None:
        s = self.s
        lost_since: float | None = None
        while True:
            try:
                await asyncio.wait_for(api.barrier(), timeout=s.ready_timeout)
                ready = True
            except (ApiError, TimeoutError):
                ready = False
            self.quorum_ok = ready
            now = time.monotonic()
            if ready:
                if lost_since is not None and hub.refusing is not None:
                    log.info("master %s: quorum regained; serving watches again", s.name)
                lost_since = None
                hub.refuse(None)
            else:
                lost_since = now if lost_since is None else lost_since
                if now - lost_since >= s.watch_quorum_grace and hub.refusing is None:
                    log.warning(
                        "master %s: no quorum for %.1f s; ending watch streams",
                        s.name,
                        now - lost_since,
                    )
                    hub.refuse(
                        f"master {s.name} is cut off from the majority; watch another master"
                    )
            ready = ready and self.bootstrapped
            if ready != self.readyz:
                log.info("master %s is %s", s.name, "ready" if ready else "NOT ready")
                self.readyz = ready
                await server.set_serving(ready)
                if ready:
                    self.first_ready.set()
            await asyncio.sleep(s.ready_interval)
