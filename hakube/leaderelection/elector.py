"""Leader election on a Lease object: one active scheduler or controller-manager at a time.

The protocol is Kubernetes' (a Lease whose ``holderIdentity`` and ``renewTime`` the holder keeps
fresh through compare-and-swap updates), with two hakube choices:

- **Timing is local.** A candidate never compares its clock with the holder's. It notes when it
  last *saw the lease record change* (on its own monotonic clock) and takes over only once the
  record has stood still for the lease's ``leaseDurationSeconds``. Clock skew between machines
  cannot hand the lease over early.
- **Fencing by renew deadline.** The holder counts from the *start* of its last successful
  renewal; once ``renew_deadline`` (shorter than the lease duration) has passed without another,
  it stops leading -- :meth:`LeaderElector.is_leader` turns false and the work's stop event is
  set -- before any candidate can have waited the full lease duration. Work must check the stop
  event (or ``is_leader()``) before each write it makes on the leader's behalf.

Defaults (lease 4 s, renew deadline 3 s, retry 0.5 s) give a takeover within about 4.5 s of the
holder's death (Kubernetes' 15/10/2 s take up to 15 s); a clean stop releases the lease, so a
rolling restart hands over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from hakube.api.timestamps import micro_time
from hakube.api.v1 import core_pb2
from hakube.client import errors
from hakube.client.client import Client

log = logging.getLogger("hakube.leaderelection")


@dataclass(frozen=True)
class ElectionConfig:
    """Where the lease is, who we are, and the timing (seconds)."""

    name: str
    """Lease name, e.g. ``hakube-scheduler``."""
    identity: str
    namespace: str = "kube-system"
    lease_duration: int = 4
    """Whole seconds: the Lease field ``leaseDurationSeconds`` is an integer."""
    renew_deadline: float = 3.0
    retry_period: float = 0.5
    request_timeout: float = 1.0
    """Per API call; a hung call must not eat the whole renew deadline."""

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election: identity must not be empty")
        if self.lease_duration < 1:
            raise ValueError("leader election: lease duration must be at least 1 s")
        if not 0 < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election: renew deadline must be positive and shorter than the lease "
                f"duration ({self.renew_deadline} s >= {self.lease_duration} s)"
            )
        if not 0 < self.retry_period < self.renew_deadline:
            raise ValueError("leader election: retry period must be shorter than renew deadline")


class ElectionMetrics:
    """is-leader gauge and transitions counter, labelled by lease name."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.is_leader = Gauge(
            "hakube_leader_election_is_leader",
            "1 while this process holds the lease.",
            ["lease"],
            registry=r,
        )
        self.transitions = Counter(
            "hakube_leader_election_transitions",
            "Times this process started or stopped leading.",
            ["lease", "to"],
            registry=r,
        )


Work = Callable[[threading.Event], None]
"""Runs while leading; must return soon after the event is set."""


class LeaderElector:
    """Campaigns for one lease and runs ``work`` while holding it (see module docstring).

    ``run(stop)`` loops until ``stop`` is set: acquire, lead (``work`` on its own thread),
    and after losing the lease wait for ``work`` to return and campaign again. A process that
    prefers to exit on loss can pass ``on_stopped_leading`` and set ``stop`` there.
    """

    def __init__(
        self,
        client: Client,
        config: ElectionConfig,
        work: Work,
        *,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        metrics: ElectionMetrics | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.work = work
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.metrics = metrics or ElectionMetrics()
        self._lock = threading.Lock()
        self._valid_until = 0.0  # monotonic; > now while we may act as leader
        self._observed: core_pb2.Lease | None = None
        self._observed_key: tuple[str, str, int] | None = None
        self._observed_at = 0.0
        self._leader = ""
        self._work_failed = False

    # -- state readable from any thread -------------------------------------------------------

    def is_leader(self) -> bool:
        """True while the last successful renewal started less than renew_deadline ago."""
        with self._lock:
            return time.monotonic() < self._valid_until

    @property
    def term_end(self) -> float:
        """The monotonic time until which this candidate may act as leader (in the past when it
        is not leading): the fencing promise, which no other candidate's term may overlap."""
        with self._lock:
            return self._valid_until

    @property
    def leader(self) -> str:
        """The holder last seen in the lease ("" if none)."""
        return self._leader

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        cfg = self.config
        while not stop.is_set():
            if not self._acquire(stop):
                return
            leading = threading.Event()
            worker = threading.Thread(
                target=self._run_work, args=(leading,), name=f"{cfg.name}-work", daemon=True
            )
            self._set_leading(True)
            worker.start()
            fence = threading.Thread(
                target=self._fence, args=(leading,), name=f"{cfg.name}-fence", daemon=True
            )
            fence.start()
            self._renew_until_lost(stop, leading)
            leading.set()
            fence.join()
            self._set_leading(False)
            if self.on_stopped_leading:
                self.on_stopped_leading()
            worker.join()
            if stop.is_set() or self._work_failed:
                self._release()
            if self._work_failed:
                # Let another candidate try; if the failure is ours (not the cluster's), it
                # will lead instead of us. Either way, no hot loop of failing terms.
                self._work_failed = False
                stop.wait(self.config.lease_duration)

    def _fence(self, leading: threading.Event) -> None:
        """End the term the moment the renew deadline passes, even while a renewal call is
        still blocked on an unreachable master: the deadline is a promise to the candidates,
        and only time, not the progress of our own calls, may decide when it is kept."""
        while True:
            with self._lock:
                left = self._valid_until - time.monotonic()
            if left <= 0:
                if not leading.is_set():
                    log.warning(
                        "%s: no renewal within %.1f s; stepping down",
                        self.config.name,
                        self.config.renew_deadline,
                    )
                leading.set()
                return
            if leading.wait(left):
                return

    def _run_work(self, leading: threading.Event) -> None:
        try:
            self.work(leading)
        except Exception:
            self._work_failed = True
            log.exception("%s: leader work failed; giving up the lease", self.config.name)
        finally:
            leading.set()

    def _set_leading(self, on: bool) -> None:
        labels = (self.config.name,)
        self.metrics.is_leader.labels(*labels).set(1 if on else 0)
        self.metrics.transitions.labels(*labels, "leading" if on else "following").inc()
        log.info(
            "%s: %s %s",
            self.config.name,
            self.config.identity,
            "started leading" if on else "stopped leading",
        )

    def _acquire(self, stop: threading.Event) -> bool:
        """Campaign until we hold the lease (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if self._try_acquire_or_renew():
                return True
            stop.wait(self.config.retry_period)
        return False

    def _renew_until_lost(self, stop: threading.Event, leading: threading.Event) -> None:
        cfg = self.config
        while not stop.is_set() and not leading.is_set():
            if stop.wait(cfg.retry_period) or leading.is_set():
                return
            while not self._try_acquire_or_renew():
                if stop.wait(cfg.retry_period) or leading.is_set():
                    return  # the fence ended the term, or we are told to stop

    # -- one attempt ------------------------------------------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        started = time.monotonic()
        if self._renew_from_last(started):
            return True
        try:
            current = self.client.leases.get(
                cfg.name, namespace=cfg.namespace, timeout=cfg.request_timeout
            )
        except errors.NotFound:
            return self._create(started)
        except errors.HakubeError as exc:
            log.debug("%s: reading the lease failed: %s", cfg.name, exc)
            return False
        self._observe(current, started)
        spec = current.spec
        mine = spec.holder_identity == cfg.identity
        if spec.holder_identity and not mine:
            duration = spec.lease_duration_seconds or cfg.lease_duration
            if started - self._observed_at < duration:
                return False  # someone else holds it and was alive recently enough
        new = core_pb2.Lease()
        new.CopyFrom(current)
        now = micro_time()
        if not mine:
            new.spec.holder_identity = cfg.identity
            new.spec.acquire_time = now
            new.spec.lease_transitions = spec.lease_transitions + 1
        new.spec.renew_time = now
        new.spec.lease_duration_seconds = cfg.lease_duration
        try:
            updated = self.client.leases.update(new, timeout=cfg.request_timeout)
        except errors.HakubeError as exc:
            log.debug(
                "%s: %s the lease failed: %s", cfg.name, "renewing" if mine else "taking", exc
            )
            return False
        return self._won(updated, started)

    def _renew_from_last(self, started: float) -> bool:
        """A valid holder renews from the record it last wrote: one write instead of a read and
        a write, so a loaded master answers a renewal in one round trip. Its resourceVersion
        makes the update a compare-and-swap (anyone else's write in between is a Conflict);
        any failure falls back to reading the lease."""
        cfg = self.config
        last = self._observed
        with self._lock:
            valid = started < self._valid_until
        if not valid or last is None or last.spec.holder_identity != cfg.identity:
            return False
        new = core_pb2.Lease()
        new.CopyFrom(last)
        new.spec.renew_time = micro_time()
        new.spec.lease_duration_seconds = cfg.lease_duration
        return self._write(
            lambda: self.client.leases.update(new, timeout=cfg.request_timeout),
            "renewing from the last record",
            started,
        )

    def _write(self, write: Callable[[], core_pb2.Lease], what: str, started: float) -> bool:
        """One write of the lease; True (and the lease noted as ours) when it succeeded."""
        try:
            lease = write()
        except errors.HakubeError as exc:
            log.debug("%s: %s failed: %s", self.config.name, what, exc)
            return False
        return self._won(lease, started)

    def _create(self, started: float) -> bool:
        cfg = self.config
        now = micro_time()
        lease = core_pb2.Lease(
            metadata={"name": cfg.name, "namespace": cfg.namespace},
            spec=core_pb2.LeaseSpec(
                holder_identity=cfg.identity,
                acquire_time=now,
                renew_time=now,
                lease_duration_seconds=cfg.lease_duration,
                lease_transitions=0,
            ),
        )
        return self._write(
            lambda: self.client.leases.create(lease, timeout=cfg.request_timeout),
            "creating the lease",
            started,
        )

    def _won(self, lease: core_pb2.Lease, started: float) -> bool:
        with self._lock:
            # Counted from before the read: the holder's view of its own validity is never
            # later than any candidate's view of the record's last change.
            self._valid_until = started + self.config.renew_deadline
        self._observe(lease, started)
        return True

    def _observe(self, lease: core_pb2.Lease, at: float) -> None:
        spec = lease.spec
        key = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if key != self._observed_key:
            self._observed_key = key
            self._observed_at = at
            self._observed = lease
        if spec.holder_identity != self._leader:
            self._leader = spec.holder_identity
            if spec.holder_identity and self.on_new_leader:
                self.on_new_leader(spec.holder_identity)

    def _release(self) -> None:
        """On a clean stop, empty the holder so a successor need not wait out the lease."""
        cfg = self.config
        lease = self._observed
        if lease is None or lease.spec.holder_identity != cfg.identity:
            return
        new = core_pb2.Lease()
        new.CopyFrom(lease)
        new.spec.holder_identity = ""
        new.spec.renew_time = micro_time()
        new.spec.lease_duration_seconds = 1
        try:
            self.client.leases.update(new, timeout=cfg.request_timeout)
            log.info("%s: released the lease", cfg.name)
        except errors.HakubeError as exc:
            log.info("%s: could not release the lease (%s); it expires by itself", cfg.name, exc)
