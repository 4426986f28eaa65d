"""The node agent's Prometheus metrics (the kubelet's, in hakube's names).

Hot paths touch only counters and histograms: a CRI call, a probe, a relist. What the node holds
(running pods and containers, the machine's CPU and memory) is read at scrape time or kept from
the last relist. Every label value comes from a fixed set in this codebase -- a CRI method name,
a probe kind, a gRPC status code -- never from a pod, so a node with 10,000 pods has the same
series as one with ten.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hakube.agent import stats
from hakube.agent.node import meminfo
from hakube.agent.probes import KINDS
from hakube.httpendpoint import Children

WAITING_REASONS = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ContainerCreating",
    "PodInitializing",
)
"""Waiting reasons counted by name; any other is counted as ``other`` (bounded labels)."""

_CRI_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60)


class AgentMetrics:
    """Every metric one agent exports, in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.registry = r
        self.pod_start = Histogram(
            "hakube_agent_pod_start_duration_seconds",
            "Time from the agent first reconciling a pod to the pod's status turning Running "
            "(sandbox, volumes, image pulls, container starts and the status write).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.cri_latency = Histogram(
            "hakube_agent_cri_request_duration_seconds",
            "CRI calls to the container runtime by method.",
            ["method"],
            buckets=_CRI_BUCKETS,
            registry=r,
        )
        self.cri_errors = Counter(
            "hakube_agent_cri_request_errors",
            "CRI calls that failed, by method (the gRPC status is in the agent's log).",
            ["method"],
            registry=r,
        )
        self._cri_latency = Children(self.cri_latency)
        self._cri_errors = Children(self.cri_errors)
        self.relist = Histogram(
            "hakube_agent_relist_duration_seconds",
            "Time to list the runtime's containers and sandboxes (the PLEG relist).",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=r,
        )
        self.sync = Histogram(
            "hakube_agent_pod_sync_duration_seconds",
            "Time of one pod reconcile.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=r,
        )
        self.sync_errors = Counter(
            "hakube_agent_pod_sync_errors", "Pod reconciles that failed (retried).", registry=r
        )
        self.probes = Counter(
            "hakube_agent_probe_results",
            "Probe runs by kind (startup, liveness, readiness) and result (success, failure).",
            ["probe", "result"],
            registry=r,
        )
        self.running_pods = Gauge(
            "hakube_agent_running_pods", "Pods with a ready sandbox (last relist).", registry=r
        )
        self.running_containers = Gauge(
            "hakube_agent_running_containers", "Running containers (last relist).", registry=r
        )
        for kind in KINDS:
            for result in ("success", "failure"):
                self.probes.labels(kind, result)
        self.waiting_source: Callable[[], list[str]] = list
        """The waiting reason of every container waiting on this node (set by the agent)."""
        r.register(_NodeCollector())
        r.register(_WaitingCollector(lambda: self.waiting_source()))

    def observe_cri(self, method: str, seconds: float, code: str | None) -> None:
        """A CRI call ended (``code``: the gRPC status name of a failure, None on success).
        A method's error series starts at 0 with its first call, so rates see the first
        error."""
        self._cri_latency(method).observe(seconds)
        errors = self._cri_errors(method)
        if code is not None:
            errors.inc()

    def observe_probe(self, kind: str, ok: bool) -> None:
        self.probes.labels(kind, "success" if ok else "failure").inc()


class _WaitingCollector(Collector):
    def __init__(self, source: Callable[[], list[str]]) -> None:
        self._source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys((*WAITING_REASONS, "other"), 0)
        for reason in self._source():
            counts[reason if reason in counts else "other"] += 1
        g = GaugeMetricFamily(
            "hakube_agent_containers_waiting",
            "Containers of this node's pods waiting to run, by reason (CrashLoopBackOff: "
            "restarting after repeated exits).",
            labels=["reason"],
        )
        for reason, n in counts.items():
            g.add_metric([reason], float(n))
        yield g


class _NodeCollector(Collector):
    """The machine's CPU time and memory in use, read when scraped (what the node's
    ``hakubectl top node`` figure is made from)."""

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cpu = CounterMetricFamily(
            "hakube_node_cpu_usage_seconds", "CPU time used by the whole machine."
        )
        cpu.add_metric([], stats.machine_cpu_seconds())
        yield cpu
        info = meminfo()
        mem = GaugeMetricFamily(
            "hakube_node_memory_working_set_bytes",
            "Memory in use on the machine (MemTotal - MemAvailable).",
        )
        mem.add_metric([], float(max(0, info.get("MemTotal", 0) - info.get("MemAvailable", 0))))
        yield mem
        total = GaugeMetricFamily("hakube_node_memory_total_bytes", "The machine's memory.")
        total.add_metric([], float(info.get("MemTotal", 0)))
        yield total
