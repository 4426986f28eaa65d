"""Prometheus metrics of one master. Gauges about Raft and the store are read at scrape time
by a collector, so the hot paths only touch counters and histograms."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hakube.api import kinds
from hakube.api.v1 import core_pb2
from hakube.httpendpoint import Children, new_registry

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def kind_label(word: str) -> str:
    """The ``kind`` label of a request: the kind's name, whatever spelling the caller used
    ("pods", "po", "Pod"), "" for none and "unknown" for anything else — a label value never
    comes straight from a request, or 2,000 made-up kinds make 2,000 series."""
    label = _KIND_LABELS.get(word)
    if label is None:
        found = kinds.lookup(word) if word else None
        label = found.name if found is not None else "unknown" if word else ""
        if found is not None or not word:
            _KIND_LABELS[word] = label  # only spellings of real kinds are remembered
    return label


_KIND_LABELS: dict[str, str] = {}


class MasterMetrics:
    """Every metric one master exports, in its own registry."""

    def __init__(self) -> None:
        self.registry = new_registry()
        r = self.registry
        self.requests = Counter(
            "hakube_api_requests",
            "API requests by method, kind and code.",
            ["method", "kind", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "hakube_api_request_duration_seconds",
            "API request latency.",
            ["method", "kind"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.proposal_latency = Histogram(
            "hakube_raft_proposal_duration_seconds",
            "Time from proposing a batch to its being applied locally.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "hakube_raft_batch_operations",
            "Operations per group-committed Raft command.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048),
            registry=r,
        )
        self.journal_fsync = Histogram(
            "hakube_raft_journal_fsync_duration_seconds",
            "Time to fdatasync the Raft journal before a message leaves (--fsync only).",
            buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.watch_streams = Gauge("hakube_watch_streams", "Open watch streams.", registry=r)
        self.watch_backlog = Gauge(
            "hakube_watch_backlog_events",
            "Events queued for the slowest open watch stream of this master.",
            registry=r,
        )
        self.watch_too_slow = Counter(
            "hakube_watch_too_slow_closed",
            "Watch streams closed because they fell too far behind (RESOURCE_EXHAUSTED).",
            registry=r,
        )
        self.watch_events = Counter(
            "hakube_watch_events_sent", "Watch events sent.", ["kind"], registry=r
        )
        self.raft_refused = Counter(
            "hakube_raft_refused_connections",
            "Connections to the Raft port refused, by reason (handshake: TLS failed or timed out; "
            "not_member: the certificate names no current member; spoofed: a member introduced "
            "itself as another, or a dialled member presented another's certificate; utility, "
            "readonly: pysyncobj admin commands or read-only peers; bad_frame: a frame too large "
            "or not a plain Raft message; too_many: too many connections being set up).",
            ["reason"],
            registry=r,
        )

        self._request_children = Children(self.requests)
        self._latency_children = Children(self.latency)

    def observe_request(self, method: str, kind: str, code: str, seconds: float) -> None:
        """Count one API request and its latency (two cached children: two dict lookups)."""
        kind = kind_label(kind)
        self._latency_children(method, kind).observe(seconds)
        self._request_children(method, kind, code).inc()

    def observe_batch(self, seconds: float, ops: int) -> None:
        self.proposal_latency.observe(seconds)
        self.batch_size.observe(ops)

    def raft_refused_connection(self, reason: str) -> None:
        self.raft_refused.labels(reason).inc()

    def add_state_collector(self, read: Callable[[], dict[str, Any]]) -> None:
        """Register gauges computed at scrape time from ``read()``."""
        self.registry.register(_StateCollector(read))


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self._read()
        simple = {
            "hakube_raft_term": ("Current Raft term.", s["term"]),
            "hakube_raft_is_leader": ("1 if this master is the Raft leader.", s["leader"]),
            "hakube_raft_commit_index": ("Raft commit index.", s["commit_index"]),
            "hakube_raft_applied_index": ("Raft last applied index.", s["applied_index"]),
            "hakube_raft_log_entries": ("Entries in the Raft log.", s["log_entries"]),
            "hakube_raft_leader_changes": (
                "Raft role changes seen by this master.",
                s["leader_changes"],
            ),
            "hakube_raft_journal_syncs": (
                "Journal syncs before sending (--fsync; 0 without).",
                s.get("journal_syncs", 0),
            ),
            "hakube_raft_ready": ("1 while this master is in a quorum with a leader.", s["ready"]),
            "hakube_store_revision": ("Store revision.", s["revision"]),
            "hakube_store_size_bytes": ("Bytes of stored object data.", s["size_bytes"]),
            "hakube_store_quota_bytes": (
                "The store's size limit (--quota-bytes; 0: none).",
                s.get("quota_bytes", 0),
            ),
            "hakube_store_quota_exceeded": (
                "1 while writes are refused for the store's quota: only deletes, shrinking "
                "updates and Lease renewals are accepted (the alarm to act on).",
                1 if s.get("quota_alarm") else 0,
            ),
        }
        for name, (doc, value) in simple.items():
            g = GaugeMetricFamily(name, doc)
            g.add_metric([], float(value))
            yield g
        objs = GaugeMetricFamily("hakube_store_objects", "Stored objects by kind.", labels=["kind"])
        for kind, n in sorted(s["objects"].items()):
            objs.add_metric([kind], float(n))
        yield objs
        yield from _raft_families(s)


class NodeReadiness:
    """How many Nodes are Ready, NotReady or Unknown, from the store at scrape time. Each Node's
    answer is kept with the revision it was decoded at, so a scrape decodes only the Nodes that
    changed since the last one (heartbeats change a few per second, not all of them)."""

    def __init__(self, objects: Callable[[], dict[Any, Any]]) -> None:
        """``objects()``: the stored Nodes, key -> record (``value`` bytes, ``mod_rev``)."""
        self._objects = objects
        self._seen: dict[Any, tuple[int, str]] = {}

    def counts(self) -> dict[str, int]:
        out = {"true": 0, "false": 0, "unknown": 0}
        seen: dict[Any, tuple[int, str]] = {}
        for key, rec in self._objects().items():
            old = self._seen.get(key)
            if old is None or old[0] != rec.mod_rev:
                old = (rec.mod_rev, _ready_status(rec.value))
            seen[key] = old
            out[old[1]] += 1
        self._seen = seen
        return out


def _ready_status(value: bytes) -> str:
    node = core_pb2.Node.FromString(value)
    for c in node.status.conditions:
        if c.type == "Ready":
            return {"True": "true", "False": "false"}.get(c.status, "unknown")
    return "unknown"


_Family = GaugeMetricFamily | CounterMetricFamily

_LABELLED: tuple[tuple[type[_Family], str, str, str, str], ...] = (
    (
        CounterMetricFamily,
        "hakube_raft_proposals_failed",
        "Writes that failed in the store, by outcome (unavailable: no quorum, refused before "
        "proposing; not_applied: safe to retry; outcome_unknown: timed out or lost leadership).",
        "reason",
        "proposals_failed",
    ),
    (
        GaugeMetricFamily,
        "hakube_raft_follower_lag_entries",
        "On the leader: log entries each follower is behind the leader's last entry.",
        "peer",
        "follower_lag",
    ),
    (
        GaugeMetricFamily,
        "hakube_nodes",
        "Nodes in the store by their Ready condition (true, false, unknown).",
        "ready",
        "nodes",
    ),
    (
        GaugeMetricFamily,
        "hakube_certificate_expiry_seconds",
        "Seconds until a certificate this master uses expires (ca: the cluster CA; master: its "
        "own serving and peer certificate). Negative once expired.",
        "certificate",
        "cert_expiry",
    ),
)
"""Families with one label: (type, name, help, label, key of the state dict holding
label value -> number)."""


def _raft_families(s: dict[str, Any]) -> Iterator[_Family]:
    """The etcd-style health metrics of the Raft member, node readiness and certificate
    expiry (see docs/observability.md)."""
    g = GaugeMetricFamily(
        "hakube_raft_has_leader", "1 while this master knows a Raft leader (itself or a peer)."
    )
    g.add_metric([], float(s.get("has_leader", 0)))
    yield g
    c = CounterMetricFamily(
        "hakube_raft_leader_changes_seen",
        "Times this master saw a new Raft leader (an election it took part in or heard of).",
    )
    c.add_metric([], float(s.get("leaders_seen", 0)))
    yield c
    g = GaugeMetricFamily(
        "hakube_raft_proposals_pending", "Writes queued or proposed and not yet answered."
    )
    g.add_metric([], float(s.get("proposals_pending", 0)))
    yield g
    for cls, name, doc, label, key in _LABELLED:
        family = cls(name, doc, labels=[label])
        for value, n in sorted(s.get(key, {}).items()):
            family.add_metric([value], float(n))
        yield family
