"""The proxy's control loop: Services + Endpoints in, one nftables table out.

Two informers (snapshot, then watch) keep Services and Endpoints current; their handlers only
mark the proxy dirty. One sync thread turns the caches into a :class:`~hakube.proxy.rules.Ruleset`
and hands the kernel one transaction:

* the first sync (and any sync after a failed one) replaces the whole table atomically, so a
  restarted proxy ends with exactly the rules it would have built incrementally, and picks up
  whatever changed while it was down;
* later syncs send only the difference to the ruleset last applied;
* syncs are at least ``min_sync_interval`` apart: changes arriving close together (a rollout's
  Endpoints churn) go out as one transaction.

The proxy never deletes its table on exit: rules stay in force while it is down or restarting.

Threading: informer threads (handlers only set an event), the sync thread (``run()``), and
whoever calls ``stop()`` (idempotent, any thread).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hakube.api.v1 import core_pb2
from hakube.lifecycle import StartupError
from hakube.proxy import nft
from hakube.proxy.bpf import BpfError
from hakube.proxy.fastpath import FastPath, clsact_devices
from hakube.proxy.rules import Builder, Ruleset, ServicePort, service_ports

log = logging.getLogger("hakube.proxy")


@dataclass(frozen=True)
class ProxyConfig:
    """How ``hakube proxy`` programs its node (each field is a flag of ``hakube proxy``)."""

    table: str = "hakube-proxy"
    """Name of the proxy's own table (family ip). Nothing else in nftables is touched."""
    cluster_cidr: str = ""
    """The pod network (e.g. 10.244.0.0/16). When set, traffic to a ClusterIP from outside it
    (the node itself, other hosts) is masqueraded so replies return through this node; empty:
    only NodePort and hairpin traffic is."""
    untrack_pod_traffic: bool = False
    """With ``--cluster-cidr``: TCP and UDP between two pod addresses skip conntrack on this
    node (a ``notrack`` rule in the proxy's table), except the replies of connections this
    node translated (Services, hostPorts), which it learns. Off by default: on the quiet
    benchmark machine it saved no measurable CPU or throughput (docs/benchmarks.md), and on
    its first start a reply on a translated connection opened before it can leave
    untranslated (docs/networking.md). For nodes where conntrack's table or its cost matters."""
    fast_path_device: str = ""
    """With ``--cluster-cidr``: the node's uplink (e.g. eth0), on whose ingress a tc program
    hands packets for this node's pods straight to them, skipping the node's IP forwarding
    and netfilter -- except replies from addresses the proxy translates to, which still meet
    conntrack (docs/networking.md, "Pod fast path"). Needs the routed pod network. Empty (the
    default): off, and a program a previous run left is removed."""
    min_sync_interval: float = 0.1
    """Seconds between two syncs at least: changes arriving within it share one transaction.
    Kubernetes' kube-proxy defaults to 1 s; 0.1 s keeps endpoint changes well under a second."""
    retry_interval: float = 1.0
    """Seconds before a failed sync (nft refused, or could not run) is retried as a full one."""
    check_interval: float = 30.0
    """Seconds between checks that the table is still there (``nft list tables``, cheap); one
    that someone deleted is rebuilt by a full sync. kube-proxy re-syncs every 30 s too."""
    nft: str = "nft"
    """The nft binary (Debian's nftables package)."""

    def validate(self) -> None:
        if not self.table or len(self.table) > 64 or not self.table.replace("-", "").isalnum():
            raise ValueError(f"--table {self.table!r}: 1..64 of letters, digits and '-'")
        if self.cluster_cidr:
            try:
                net = ipaddress.ip_network(self.cluster_cidr)
            except ValueError as exc:
                raise ValueError(f"--cluster-cidr {self.cluster_cidr!r}: {exc}") from None
            if net.version != 4:
                raise ValueError(f"--cluster-cidr {self.cluster_cidr}: IPv4 only")
        if self.fast_path_device and not self.cluster_cidr:
            raise ValueError("--fast-path-device needs --cluster-cidr (the pods it may shortcut)")
        if self.min_sync_interval < 0 or self.retry_interval <= 0 or self.check_interval <= 0:
            raise ValueError(
                "--min-sync-interval must be >= 0, --retry-interval and --check-interval > 0"
            )


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sync_duration = Histogram(
            "hakube_proxy_sync_duration_seconds",
            "Time to build and apply one nftables transaction, by mode (full or partial)",
            ["mode"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.sync_errors = Counter(
            "hakube_proxy_sync_errors_total",
            "Syncs that failed (nft refused the transaction or could not run)",
            registry=registry,
        )
        self.last_sync = Gauge(
            "hakube_proxy_last_sync_timestamp_seconds",
            "Unix time of the last successful sync",
            registry=registry,
        )
        self.service_ports = Gauge(
            "hakube_proxy_service_ports", "Service ports programmed", registry=registry
        )
        self.endpoints = Gauge(
            "hakube_proxy_endpoints", "Ready endpoints programmed", registry=registry
        )
        self.rules = Gauge(
            "hakube_proxy_rules", "Rules in the per-service chains programmed", registry=registry
        )


class Proxier:
    """One node's service proxy, a ``hakube.lifecycle.Service``: ``run()`` blocks until
    ``stop()``; ``ready`` once the first sync has programmed the table."""

    def __init__(
        self,
        client: Any,
        config: ProxyConfig,
        *,
        registry: CollectorRegistry | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config.validate()
        self.client = client
        self.config = config
        self.metrics = ProxyMetrics(registry if registry is not None else CollectorRegistry())
        self._wall = wall
        self._clock = clock
        self._builder = Builder(cluster_cidr=config.cluster_cidr)
        self._fast: FastPath | None = None
        self._applied: Ruleset | None = None  # None: the next sync is a full one
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set after the first successful sync (/readyz)."""
        self.services = client.informer(core_pb2.Service)
        self.endpoints = client.informer(core_pb2.Endpoints)
        for inf in (self.services, self.endpoints):
            inf.add_handlers(
                on_add=lambda _o: self._dirty.set(),
                on_update=lambda _a, _b: self._dirty.set(),
                on_delete=lambda _o: self._dirty.set(),
            )

    def run(self) -> None:
        if self._stop.is_set():
            return
        self._start_fast_path()
        self.services.start()
        self.endpoints.start()
        try:
            while not self._stop.is_set():
                if self.services.wait_for_sync(0.5) and self.endpoints.wait_for_sync(0.5):
                    break
            last = -float("inf")
            checked = self._clock()
            self._dirty.set()
            while not self._stop.is_set():
                if self._clock() - checked >= self.config.check_interval:
                    checked = self._clock()
                    self._check_table()
                if not self._dirty.wait(0.5):
                    continue
                wait = last + self.config.min_sync_interval - self._clock()
                if wait > 0 and self._stop.wait(wait):
                    break
                self._dirty.clear()
                last = self._clock()
                if not self.sync_once():
                    self._dirty.set()
                    self._stop.wait(self.config.retry_interval)
        finally:
            self.services.stop()
            self.endpoints.stop()
            if self._fast is not None:
                self._fast.close()

    def _start_fast_path(self) -> None:
        """Attach the fast path (seeded with every backend programmed so far), or remove one a
        previous run left when it is off."""
        device = self.config.fast_path_device
        if not device:
            for dev in clsact_devices():
                if FastPath.remove(dev):
                    log.info("proxy: removed the pod fast path from %s", dev)
            return
        fast = FastPath(device, self.config.cluster_cidr)
        try:
            fast.start()
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        except BpfError as exc:
            raise StartupError(f"--fast-path-device {device}: {exc}") from None
        self._fast = fast

    def stop(self) -> None:
        self._stop.set()

    def _check_table(self) -> None:
        """Rebuild the table (a full sync) if it is gone, e.g. after ``nft flush ruleset``."""
        if self._applied is None:
            return
        try:
            present = nft.has_table(self.config.table, nft=self.config.nft)
        except nft.NftError as exc:
            log.warning("proxy: cannot list the tables: %s", exc)
            return
        if not present:
            log.warning("proxy: table ip %s is gone; rebuilding it", self.config.table)
            self._applied = None
            self._dirty.set()

    def desired(self) -> Ruleset:
        ports: list[ServicePort] = []
        for svc in self.services.list():
            ep = self.endpoints.get(svc.metadata.name, svc.metadata.namespace)
            ports.extend(service_ports(svc, ep))
        return self._builder.build(ports)

    def _exempt_backends(self, want: Ruleset) -> None:
        assert self._fast is not None
        try:
            self._fast.add(want.backends)
        except BpfError:  # FastPath.add took it down: everything takes the stack
            self._fast.close()
            self._fast = None

    def sync_once(self) -> bool:
        """Build the ruleset from the caches and apply it; False (and counted) on failure."""
        start = self._clock()
        want = self.desired()
        mode = "full" if self._applied is None else "partial"
        try:
            if self._applied is None:
                existing = nft.list_table(self.config.table, nft=self.config.nft)
                untracked = self.config.cluster_cidr if self.config.untrack_pod_traffic else ""
                text = nft.full(self.config.table, want, existing, untracked=untracked)
            else:
                text = nft.diff(self.config.table, self._applied, want)
            if self._fast is not None:  # before the rules that translate to them
                self._exempt_backends(want)
            if text:
                nft.apply(text, nft=self.config.nft)
        except nft.NftError as exc:
            self.metrics.sync_errors.inc()
            self._applied = None
            log.error("proxy: sync failed (%s); retrying with a full sync", exc)
            return False
        self._applied = want
        m = self.metrics
        m.sync_duration.labels(mode).observe(self._clock() - start)
        m.last_sync.set(self._wall())
        m.service_ports.set(want.service_ports)
        m.endpoints.set(want.endpoints)
        m.rules.set(want.rule_count())
        if mode == "full":
            log.info(
                "proxy: table ip %s programmed: %d service ports, %d endpoints",
                self.config.table,
                want.service_ports,
                want.endpoints,
            )
        self.ready.set()
        return True
