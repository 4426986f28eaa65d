"""``ClusterDns``: the informers, the zone and the server of one ``hakube dns`` instance.

Leader-less: every instance keeps its own full copy of the zone from its own Services and
Endpoints informers and answers on its own; two or more instances behind the kube-dns Service
(or listed as nameservers) are the HA. An instance needs nothing from another, and losing the
masters only freezes its zone (informers resume and catch up when they come back).
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry

from hakube.api import resolvconf
from hakube.api.v1 import core_pb2
from hakube.client.client import Client
from hakube.client.informer import Informer
from hakube.dns.config import DnsSettings, split_hostport
from hakube.dns.metrics import DnsMetrics
from hakube.dns.resolver import Resolver
from hakube.dns.server import DnsServer
from hakube.dns.zone import Zone

log = logging.getLogger("hakube.dns")


def upstreams(settings: DnsSettings) -> list[tuple[str, int]]:
    """The resolvers names outside the cluster zone go to: ``--upstream``, else the
    nameservers of ``--resolv-conf``; never one of our own listen addresses (a loop)."""
    given = settings.upstream
    if given is None:
        given = tuple(resolvconf.read(settings.resolv_conf).nameservers)
    own = {split_hostport(a, "--listen") for a in settings.listen}
    out = []
    for addr in given:
        try:
            hp = split_hostport(addr, "--upstream", default_port=53)
        except ValueError:
            log.warning("ignoring upstream %r: not an IP address", addr)
            continue
        if hp not in own:
            out.append(hp)
    return out


class ClusterDns:
    """A ``hakube.lifecycle.Service``: constructed with its dependencies; ``run()`` blocks,
    ``stop()`` is idempotent from any thread; ``ready`` once every address is bound."""

    def __init__(
        self,
        client: Client,
        settings: DnsSettings,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = DnsMetrics(self.registry)
        self.zone = Zone(settings.cluster_domain, ttl=settings.ttl)
        self.services: Informer[core_pb2.Service] = client.informer(core_pb2.Service)
        self.endpoints: Informer[core_pb2.Endpoints] = client.informer(core_pb2.Endpoints)
        z = self.zone
        self.services.add_handlers(z.set_service, lambda _o, n: z.set_service(n), z.delete_service)
        self.endpoints.add_handlers(
            z.set_endpoints, lambda _o, n: z.set_endpoints(n), z.delete_endpoints
        )
        self.upstreams = upstreams(settings)
        self.resolver = Resolver(z, settings, self.upstreams, self.metrics, self.synced)
        self.server = DnsServer(settings, self.resolver, self.metrics)
        self.metrics.services.set_function(lambda: z.counts()[0])
        self.metrics.rrsets.set_function(lambda: z.counts()[1])
        self.metrics.updates.set_function(lambda: z.generation)
        self._stopped = threading.Event()
        self.ready = self.server.ready

    def synced(self) -> bool:
        return self.services.has_synced and self.endpoints.has_synced

    def run(self) -> None:
        """Serve until ``stop()``; ``hakube.dns.server.ListenError`` if a socket cannot be
        bound (before anything is served)."""
        if self._stopped.is_set():
            return
        self.services.start()
        self.endpoints.start()
        log.info(
            "cluster domain %s, upstreams %s",
            self.zone.domain,
            ", ".join(f"{h}:{p}" for h, p in self.upstreams) or "none (SERVFAIL)",
        )
        try:
            self.server.run()
        finally:
            self.services.stop()
            self.endpoints.stop()

    def stop(self) -> None:
        self._stopped.set()
        self.server.stop()
