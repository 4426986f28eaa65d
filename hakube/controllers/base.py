"""What every controller shares: informers, a work queue, workers, metrics, events.

A controller is level-triggered: informer handlers only put keys on its queue; ``sync(key)``
reads the *current* state from the informer caches and makes the world match, so it does not
matter how many changes a key stood for or whether some were missed. Raising from ``sync``
retries the key with back-off; returning normally forgets its failures.

Controllers live only while their process leads (see hakube.leaderelection): the manager builds
fresh informers and controllers on every term, so everything is reconciled once at the start of
a term -- whatever changed during a failover is picked up. ``ctx.leading`` is set when the term
ends; workers check it before every sync, and a controller's long operations should too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hakube.api.clock import SYSTEM_CLOCK, Clock
from hakube.client.base import KindLike, resolve_kind
from hakube.client.batch import BatchWriter
from hakube.client.client import Client
from hakube.client.events import EventRecorder
from hakube.client.informer import Informer, Key
from hakube.client.workqueue import ShutDown, WorkQueue
from hakube.controllers.ownerindex import OwnerIndex
from hakube.controllers.settings import ControllerSettings
from hakube.controllers.writes import Writes

log = logging.getLogger("hakube.controllers")
Ix = TypeVar("Ix")


class SharedInformers:
    """One informer per kind, shared by every controller of a term."""

    def __init__(self, client: Client, resync_period: float = 0.0) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[str, Informer[Any]] = {}
        self._indexes: dict[str, NamespaceIndex] = {}
        self._owner_indexes: dict[str, OwnerIndex] = {}
        self._lock = threading.Lock()

    def get(self, kind: KindLike) -> Informer[Any]:
        k = resolve_kind(kind)
        with self._lock:
            inf = self._informers.get(k.name)
            if inf is None:
                inf = self.client.informer(k, resync_period=self.resync_period)
                self._informers[k.name] = inf
            return inf

    def by_namespace(self, kind: KindLike) -> NamespaceIndex:
        """A shared per-namespace index of ``kind``'s informer (call from ``setup``, before the
        informers start, so the index sees every object before later handlers do)."""
        return self._shared(kind, self._indexes, NamespaceIndex)

    def by_owner(self, kind: KindLike) -> OwnerIndex:
        """A shared index of ``kind``'s informer by controller uid (orphans by namespace), so
        a workload's sync reads its own objects rather than every object of the kind."""
        return self._shared(kind, self._owner_indexes, OwnerIndex)

    def _shared(
        self, kind: KindLike, made: dict[str, Ix], make: Callable[[Informer[Any]], Ix]
    ) -> Ix:
        """The index ``make`` builds on ``kind``'s informer, built once per term."""
        inf = self.get(kind)
        with self._lock:
            idx = made.get(inf.kind.name)
            if idx is None:
                idx = made[inf.kind.name] = make(inf)
            return idx

    def start(self) -> None:
        with self._lock:
            for inf in self._informers.values():
                inf.start()  # idempotent

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            informers = list(self._informers.values())
        return all(inf.wait_for_sync(max(0.0, deadline - time.monotonic())) for inf in informers)

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        for inf in informers:
            inf.stop()


class NamespaceIndex:
    """The objects of one informer grouped by namespace (an index inside the informer, kept
    with its cache), so a controller looking for "pods in namespace X" does not scan every pod
    in the cluster."""

    INDEX = "namespace"

    def __init__(self, informer: Informer[Any]) -> None:
        self.informer = informer
        informer.add_index(self.INDEX, _namespace_of)

    def list(self, namespace: str) -> list[Any]:
        return self.informer.by_index(self.INDEX, namespace)


def _namespace_of(obj: Any) -> str:
    return str(obj.metadata.namespace)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.syncs = Counter(
            "hakube_controller_syncs",
            "Reconciles by controller and result.",
            ["controller", "result"],
            registry=r,
        )
        self.sync_seconds = Histogram(
            "hakube_controller_sync_duration_seconds",
            "Time per reconcile.",
            ["controller"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5),
        )
        self.retries = Counter(
            "hakube_controller_retries",
            "Keys put back on the queue after a failed reconcile.",
            ["controller"],
            registry=r,
        )
        self.queue_seconds = Histogram(
            "hakube_controller_queue_wait_seconds",
            "Time a key waited in the work queue before a worker took it.",
            ["controller"],
            registry=r,
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
        )
        self.depth = Gauge(
            "hakube_controller_queue_depth",
            "Keys waiting (read from the queue at scrape time).",
            ["controller"],
            registry=r,
        )
        self.adds = Counter(
            "hakube_controller_queue_adds",
            "Keys put on the work queue (a key already waiting is not counted again).",
            ["controller"],
            registry=r,
        )

    def declare(self, controller: str) -> None:
        """Create ``controller``'s series at 0, so rates and alerts see them before the first
        error (a series that appears only on the first error hides that error from rate())."""
        for result in ("ok", "error"):
            self.syncs.labels(controller, result)
        self.retries.labels(controller)
        self.adds.labels(controller)
        self.sync_seconds.labels(controller)
        self.queue_seconds.labels(controller)
        self.depth.labels(controller).set(0)


@dataclass
class Context:
    """What a controller gets from the manager for one leadership term."""

    client: Client
    informers: SharedInformers
    leading: threading.Event
    """Set when the term ends: stop acting."""
    events: EventRecorder
    settings: ControllerSettings = field(default_factory=ControllerSettings)
    """Controller knobs (settings of ``hakube controller-manager``)."""
    metrics: ControllerMetrics | None = None
    clock: Clock = SYSTEM_CLOCK
    """Wall-clock time for decisions that follow the calendar (CronJob schedules)."""
    writer: BatchWriter | None = None
    """Coalesces the many writes of one term (pod creates and deletes, events) into Batch calls,
    fenced by ``leading``; None: write one call at a time through ``client``."""


class Controller:
    """Base class; subclasses set ``name`` and implement ``setup`` and ``sync``."""

    name: ClassVar[str] = ""
    workers: int = 1
    """Worker threads; a controller may set it per instance from a setting."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.events = ctx.events
        self.writes = Writes(ctx.client, ctx.writer)
        """Pod creates and deletes, coalesced with the other workers' (writes.py)."""
        self.queue: WorkQueue[Any] = WorkQueue()
        if ctx.metrics is not None:
            self.queue.on_wait = ctx.metrics.queue_seconds.labels(self.name).observe
            self.queue.on_add = ctx.metrics.adds.labels(self.name).inc
            queue = self.queue
            ctx.metrics.depth.labels(self.name).set_function(lambda: len(queue))

    def setup(self) -> None:
        """Get informers from ``ctx.informers`` and add handlers that enqueue keys."""
        raise NotImplementedError

    def sync(self, key: Any) -> None:
        """Reconcile one key; raise to retry it with back-off."""
        raise NotImplementedError

    def enqueue(self, obj: Any) -> None:
        """Handler helper: queue the object's (namespace, name)."""
        self.queue.add(key_of(obj))

    def run(self) -> list[threading.Thread]:
        """Start the workers; they end when the term ends."""
        threads = [
            threading.Thread(target=self._worker, name=f"{self.name}-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for t in threads:
            t.start()
        return threads

    def stop(self) -> None:
        self.queue.shutdown()

    def _worker(self) -> None:
        m = self.ctx.metrics
        while not self.ctx.leading.is_set():
            try:
                key = self.queue.get(timeout=0.5)
            except ShutDown:
                return
            if key is None:
                continue
            if self.ctx.leading.is_set():
                self.queue.done(key)
                return
            started = time.monotonic()
            result = "ok"
            try:
                self.sync(key)
                self.queue.forget(key)
            except Exception as exc:  # noqa: BLE001 - any failure is retried, never fatal
                result = "error"
                delay = self.queue.retry(key)
                if m is not None:
                    m.retries.labels(self.name).inc()
                level = logging.INFO if self.queue.failures(key) <= 3 else logging.WARNING
                log.log(
                    level,
                    "%s: sync %s failed (retry in %.2f s): %s",
                    self.name,
                    key,
                    delay,
                    exc,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
            finally:
                self.queue.done(key)
                if m is not None:
                    m.syncs.labels(self.name, result).inc()
                    m.sync_seconds.labels(self.name).observe(time.monotonic() - started)


def key_of(obj: Any) -> Key:
    return (obj.metadata.namespace, obj.metadata.name)
