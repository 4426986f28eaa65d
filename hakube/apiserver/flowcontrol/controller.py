"""The API server's flow control: classify a request, give it a seat of its priority level (or
queue it fairly), refuse it when the level is full, and cap each client's watch streams.

    level = flow.admit(identity, attributes)      # may await a seat, or raise TooBusy
    try: ... handle ...
    finally: flow.done(level)

Classification reads what authorization already decided the request is (``Attributes``: verb,
resource, namespace) and the caller's user and groups; results are cached per (user, groups,
verb, resource), so a request costs one dict lookup. A refusal is RESOURCE_EXHAUSTED naming the
priority level, with ``retry-after-ms`` in the trailing metadata; the Python client waits that
long (with jitter) and retries on the same master (see hakube.client.transport).

Watches are long-running: they hold a seat only while they start (authorization, selector
compilation, registration with the hub), not while they stream, as Kubernetes counts only a
watch's initialisation. What bounds streams is the per-client cap (``max_streams_per_client``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from hakube.api import failures
from hakube.apiserver.errors import ApiError
from hakube.apiserver.flowcontrol.config import BY_NAMESPACE, PriorityLevel, Settings
from hakube.apiserver.flowcontrol.fairqueue import QueueSet, Rejected
from hakube.apiserver.flowcontrol.metrics import FlowMetrics
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.store import proposer

RETRY_AFTER_KEY = failures.RETRY_AFTER_KEY


class TooBusy(ApiError):
    """Refused by flow control: the caller should wait ``retry_after`` seconds and retry."""

    failure = failures.TOO_MANY_REQUESTS

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def trailers(self) -> tuple[tuple[str, str], ...]:
        return ((RETRY_AFTER_KEY, str(max(1, round(self.retry_after * 1000)))),)


class TooManyStreams(ApiError):
    """A client already holds as many watch streams on this master as it may."""

    failure = failures.TOO_MANY_REQUESTS


class Level:
    """A priority level as the server uses it: its queues (None when exempt) and whether its
    writes take the proposer's priority lane."""

    __slots__ = ("name", "queues", "urgent", "exempt", "executing", "dispatched")

    def __init__(self, spec: PriorityLevel, queues: QueueSet | None) -> None:
        self.name = spec.name
        self.queues = queues
        self.urgent = spec.urgent
        self.exempt = spec.exempt
        self.executing = 0
        """Requests of an exempt level running now (a QueueSet counts its own)."""
        self.dispatched = 0
        """Requests that got a seat (or ran, when exempt) since the start: a counter."""


def seats_of(settings: Settings) -> dict[str, int]:
    """Each non-exempt level's seats: its share of the total, at least one."""
    levels = [lv for lv in settings.levels if not lv.exempt]
    total = sum(lv.shares for lv in levels) or 1
    return {lv.name: max(1, settings.max_requests_inflight * lv.shares // total) for lv in levels}


class FlowControl:
    """See the module docstring. All methods run on the API server's event loop."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        settings.validate()
        self.settings = settings
        self.enabled = settings.max_requests_inflight > 0
        seats = seats_of(settings)
        self.levels: dict[str, Level] = {}
        for spec in settings.levels:
            qs = (
                None
                if spec.exempt or not self.enabled
                else QueueSet(spec, seats[spec.name], queue_length=settings.queue_length)
            )
            self.levels[spec.name] = Level(spec, qs)
        self.schemas = sorted(settings.schemas, key=lambda s: s.precedence)
        self._cache: dict[tuple[Any, ...], tuple[Level, bool]] = {}
        self.streams: dict[str, int] = {}
        """Open watch streams per user."""
        self.metrics = FlowMetrics(self, registry)

    # -- classification -----------------------------------------------------------------------

    def classify(self, identity: Identity, verb: str, resource: str) -> tuple[Level, bool]:
        """The level of a request and whether its flow includes the namespace."""
        key = (identity.user, identity.groups, verb, resource)
        found = self._cache.get(key)
        if found is None:
            # Every caller got here authenticated (a bootstrap token too, as in Kubernetes).
            groups = (*identity.groups, names.AUTHENTICATED_GROUP)
            for schema in self.schemas:
                if schema.matches(identity.user, groups, verb, resource):
                    found = (self.levels[schema.level], schema.distinguisher == BY_NAMESPACE)
                    break
            else:  # pragma: no cover - settings.validate() insists on a catch-all schema
                raise AssertionError("no flow schema matched")
            if len(self._cache) > 20000:
                self._cache.clear()
            self._cache[key] = found
        return found

    # -- seats --------------------------------------------------------------------------------

    async def admit(self, identity: Identity, attrs: Any) -> Level:
        """A seat for this request (``attrs``: its authorization Attributes, None for methods
        without any); TooBusy when its level refuses it. Call ``done`` with the result."""
        if attrs is None:
            level, by_ns = self.classify(identity, "", "")
        else:
            resource = attrs.resource
            if attrs.subresource:
                resource = f"{resource}/{attrs.subresource}"
            level, by_ns = self.classify(identity, attrs.verb, resource)
        if level.urgent:
            proposer.urgent.set(True)
        qs = level.queues
        if qs is None:
            level.dispatched += 1
            level.executing += 1
            return level
        if qs.try_seat():
            level.dispatched += 1
            return level  # no wait to observe: the hot path stays a few integer operations
        flow = (
            f"{identity.user}/{attrs.namespace}" if by_ns and attrs is not None else identity.user
        )
        try:
            waited = await qs.acquire(flow, self.settings.queue_wait)
        except Rejected as exc:
            self.metrics.rejected(level.name, exc.reason)
            raise self._too_busy(level.name, exc.reason) from None
        level.dispatched += 1
        self.metrics.waited(level.name, waited)
        return level

    @staticmethod
    def done(level: Level) -> None:
        qs = level.queues
        if qs is None:
            level.executing -= 1
        else:
            qs.release()

    def _too_busy(self, level: str, reason: str) -> TooBusy:
        why = (
            "its queue is full"
            if reason == "queue-full"
            else f"no seat within {self.settings.queue_wait:g}s"
        )
        return TooBusy(
            f'too many requests: priority level "{level}" is busy ({why}); '
            f"retry after {self.settings.retry_after:g}s",
            self.settings.retry_after,
        )

    # -- long-running requests ----------------------------------------------------------------

    @contextlib.contextmanager
    def stream(self, identity: Identity) -> Iterator[None]:
        """Hold one of the caller's watch-stream slots for the ``with`` block; TooManyStreams
        when the caller already holds ``max_streams_per_client`` on this master. Callers of
        an exempt level (the admin, the masters) are not capped: exempt means not limited, and
        every admin tool shares the one admin identity."""
        cap = self.settings.max_streams_per_client
        if cap and self.classify(identity, "watch", "")[0].exempt:
            cap = 0
        user = identity.user
        count = self.streams.get(user, 0)
        if cap and count >= cap:
            self.metrics.rejected("streams", "stream-cap")
            raise TooManyStreams(
                f'user "{user}" already has {count} watch streams open on this master, the '
                f"most one client may (--max-watches-per-client={cap}); close some, or share "
                "one watch (an informer) between the parts of your program"
            )
        self.streams[user] = count + 1
        try:
            yield
        finally:
            left = self.streams[user] - 1
            if left:
                self.streams[user] = left
            else:
                del self.streams[user]
