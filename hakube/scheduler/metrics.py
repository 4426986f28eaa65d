"""Scheduler metrics (Prometheus): attempts by result, queue -> bound latency, queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

QUEUES = ("active", "backoff", "unschedulable", "flight")


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.attempts = Counter(
            "hakube_scheduler_schedule_attempts",
            "Scheduling attempts by result (scheduled, unschedulable, error).",
            ["result"],
            registry=r,
        )
        self.latency = Histogram(
            "hakube_scheduler_pod_scheduling_duration_seconds",
            "Time from a pod entering the queue to its binding being persisted.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.algorithm = Histogram(
            "hakube_scheduler_algorithm_duration_seconds",
            "Time to filter and score the nodes for one pod.",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
        )
        for result in ("scheduled", "unschedulable", "error"):
            self.attempts.labels(result)
        self.pending = Gauge(
            "hakube_scheduler_pending_pods", "Pods waiting, by queue.", ["queue"], registry=r
        )
        self.preemption_victims = Counter(
            "hakube_scheduler_preemption_victims", "Pods evicted to make room.", registry=r
        )
        self.preemption_attempts = Counter(
            "hakube_scheduler_preemption_attempts",
            "Preemptions started (victims chosen on a node).",
            registry=r,
        )

    def track_depth(self, depth: Callable[[], dict[str, int]]) -> None:
        """Read queue depth from ``depth()`` at scrape time."""
        for q in QUEUES:
            self.pending.labels(q).set_function(lambda q=q: depth().get(q, 0))  # type: ignore[misc]
