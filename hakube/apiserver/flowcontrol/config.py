"""Priority levels and flow schemas: what the API server's fair queuing is configured with.

After Kubernetes API Priority and Fairness. Every request is matched against the flow schemas in
order of precedence (lowest first); the first schema that matches names the request's priority
level and how its flow is told apart (by user, or by user and namespace). Each level has a share
of the master's total concurrency (``Settings.max_requests_inflight``) and its own shuffle-sharded
queues, so one level's backlog never delays another's, and within a level one flow (one client)
cannot take every seat.

The defaults put node agents' and components' heartbeats first: nodes (group ``system:nodes``)
in ``system``, the scheduler's and controller-manager's Lease reads and writes in
``leader-election``, their other work in ``workload-high``. The cluster admin
(``system:masters``) and the masters themselves are exempt, as Kubernetes exempts
``system:masters``: an operator must be able to act on an overloaded cluster, and the masters'
own calls (readiness, membership) must not wait behind clients. Other users' writes go to
``workload-low``, their reads to ``global-default`` (bootstrap tokens joining nodes count as
authenticated users, as in Kubernetes); anything unmatched to ``catch-all``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hakube.pki import names
from hakube.settings import internal, setting

BY_USER = "user"
BY_NAMESPACE = "user+namespace"


@dataclass(frozen=True)
class PriorityLevel:
    """One priority level: a share of the seats and its own queues."""

    name: str
    shares: int = 0
    """Concurrency shares: the level's seats are ``max_requests_inflight * shares / sum of all
    levels' shares`` (at least one). Ignored when ``exempt``."""
    exempt: bool = False
    """Never queued or limited (still counted in the metrics)."""
    queues: int = 64
    """Queues of the level; more queues isolate flows better and cost nothing while empty."""
    hand_size: int = 6
    """Queues dealt to each flow (shuffle sharding); a request joins the shortest of its
    flow's hand. Larger hands ride out collisions with noisy flows; smaller hands confine a
    noisy flow to fewer queues."""
    queue_length: int = 50
    """Requests one queue may hold; a request finding its hand's shortest queue full is refused
    at once with RESOURCE_EXHAUSTED."""
    urgent: bool = False
    """Writes of this level are proposed to Raft before any other pending write (the priority
    lane of hakube.store.proposer): heartbeats never queue behind bulk writes there either."""

    def validate(self) -> None:
        where = f"priority level {self.name!r}"
        if not self.name:
            raise ValueError("priority level: name must not be empty")
        if not self.exempt and self.shares < 1:
            raise ValueError(f"{where}: shares ({self.shares}) must be >= 1 unless exempt")
        if self.queues < 1 or self.queue_length < 1:
            raise ValueError(f"{where}: queues and queue length must be >= 1")
        if not 1 <= self.hand_size <= self.queues:
            raise ValueError(
                f"{where}: hand size ({self.hand_size}) must be between 1 and the number "
                f"of queues ({self.queues})"
            )


@dataclass(frozen=True)
class FlowSchema:
    """Which requests go to which level. An empty set matches anything."""

    name: str
    precedence: int
    level: str
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    """Matches when the caller is in any of these groups."""
    verbs: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    """Resource names as RBAC spells them (``leases``, ``nodes/status``)."""
    distinguisher: str = BY_USER
    """How flows are told apart: ``user`` or ``user+namespace``."""

    def matches(self, user: str, groups: tuple[str, ...], verb: str, resource: str) -> bool:
        if self.users and user not in self.users:
            return False
        if self.groups and self.groups.isdisjoint(groups):
            return False
        if self.verbs and verb not in self.verbs:
            return False
        return not self.resources or resource in self.resources


WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
COMPONENTS = frozenset({names.SCHEDULER_USER, names.CONTROLLER_MANAGER_USER})

DEFAULT_LEVELS = (
    PriorityLevel("exempt", exempt=True),
    PriorityLevel("system", shares=30, urgent=True),
    PriorityLevel("leader-election", shares=10, queues=16, hand_size=4, urgent=True),
    PriorityLevel("workload-high", shares=40, queues=128),
    PriorityLevel("workload-low", shares=100, queues=128),
    PriorityLevel("global-default", shares=20, queues=128),
    PriorityLevel("catch-all", shares=5, queues=1, hand_size=1),
)

DEFAULT_SCHEMAS = (
    FlowSchema(
        "exempt",
        1,
        "exempt",
        groups=frozenset({names.ADMINS_GROUP, names.MASTERS_GROUP}),
    ),
    FlowSchema("system-nodes", 500, "system", groups=frozenset({names.NODES_GROUP})),
    FlowSchema(
        "leader-election",
        600,
        "leader-election",
        users=COMPONENTS,
        verbs=frozenset({"get", "create", "update"}),
        resources=frozenset({"leases"}),
    ),
    FlowSchema("components", 800, "workload-high", users=COMPONENTS),
    FlowSchema(
        "user-writes",
        9000,
        "workload-low",
        groups=frozenset({names.AUTHENTICATED_GROUP}),
        verbs=WRITE_VERBS,
        distinguisher=BY_NAMESPACE,
    ),
    FlowSchema(
        "global-default", 9900, "global-default", groups=frozenset({names.AUTHENTICATED_GROUP})
    ),
    FlowSchema("catch-all", 10000, "catch-all"),
)


def default_inflight() -> int:
    """Total seats for this machine: 150 per core, at least 300 (Kubernetes' default total is
    600 for a machine that runs one request per thread; a master's requests are coroutines that
    mostly wait for a Raft commit, so a seat costs little memory and no thread)."""
    return max(300, 150 * (os.cpu_count() or 2))


@dataclass(frozen=True)
class Settings:
    """Flow control of one master (flags of ``hakube master``)."""

    max_requests_inflight: int = setting(
        default_factory=default_inflight, shown="150 per core, at least 300", minimum=0
    )
    """API requests running at once, shared by the priority levels in proportion to their
    shares; 0 turns priority and fairness off (every request runs at once)."""
    queue_wait: float = setting(5.0, flag="flow-queue-wait")
    """Seconds a request may wait for a seat before it is refused (RESOURCE_EXHAUSTED); below
    the client's 8 s attempt timeout, so the client hears the refusal and backs off."""
    queue_length: int = setting(0, flag="flow-queue-length", minimum=0)
    """Requests one fair queue holds (0: each level's own, 50)."""
    retry_after: float = internal(0.5)
    """The retry hint sent with a refusal (``retry-after-ms``), in seconds."""
    max_streams_per_client: int = setting(100, flag="max-watches-per-client", minimum=0)
    """Watch streams one client identity may hold open on one master (0: no cap)."""
    levels: tuple[PriorityLevel, ...] = internal(DEFAULT_LEVELS)
    schemas: tuple[FlowSchema, ...] = internal(DEFAULT_SCHEMAS)

    def validate(self) -> None:
        if self.max_requests_inflight < 0:
            raise ValueError(
                f"max requests in flight ({self.max_requests_inflight}) must be >= 0 (0: off)"
            )
        if self.queue_wait <= 0:
            raise ValueError(f"--flow-queue-wait {self.queue_wait}: must be > 0 seconds")
        if self.queue_length < 0 or self.max_streams_per_client < 0:
            raise ValueError("queue length and streams per client must be >= 0")
        if self.retry_after <= 0:
            raise ValueError(f"retry-after ({self.retry_after}) must be > 0 seconds")
        seen = set()
        for level in self.levels:
            level.validate()
            if level.name in seen:
                raise ValueError(f"priority level {level.name!r} is defined twice")
            seen.add(level.name)
        for schema in self.schemas:
            if schema.level not in seen:
                raise ValueError(
                    f"flow schema {schema.name!r}: priority level {schema.level!r} does not exist"
                )
            if schema.distinguisher not in (BY_USER, BY_NAMESPACE):
                raise ValueError(
                    f"flow schema {schema.name!r}: distinguisher must be {BY_USER!r} or "
                    f"{BY_NAMESPACE!r}"
                )
        if not any(
            not s.users and not s.groups and not s.verbs and not s.resources for s in self.schemas
        ):
            raise ValueError("flow schemas: one must match every request (a catch-all)")
