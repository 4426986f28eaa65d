"""Flow-control metrics of one master, labelled by priority level only (a fixed set from the
configuration) and refusal reason (``queue-full``, ``timeout``, ``stream-cap``): no label comes
from a request. Seats, requests running, queued and dispatched are read at scrape time from
plain integers; a histogram is observed only for requests that had to queue, so a request that
finds a free seat pays no metrics cost at all (a histogram observation costs more than the
rest of flow control together)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from hakube.apiserver.flowcontrol.controller import FlowControl

_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class FlowMetrics:
    def __init__(self, flow: FlowControl, registry: CollectorRegistry | None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.rejections = Counter(
            "hakube_flowcontrol_rejected_requests",
            "Requests refused with RESOURCE_EXHAUSTED by priority level and reason (queue-full: "
            "the flow's shortest queue was full; timeout: no seat within the queue wait; "
            "stream-cap: the client's watch streams on this master are at the cap).",
            ["priority_level", "reason"],
            registry=r,
        )
        self.wait = Histogram(
            "hakube_flowcontrol_request_wait_duration_seconds",
            "Time requests that queued waited for a seat (requests that found a free seat are "
            "counted in hakube_flowcontrol_dispatched_requests_total only).",
            ["priority_level"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self._wait_children: dict[str, Any] = {}
        self._rejected_children: dict[tuple[str, str], Any] = {}
        r.register(_LevelCollector(flow))

    def waited(self, level: str, waited: float) -> None:
        child = self._wait_children.get(level)
        if child is None:
            child = self._wait_children[level] = self.wait.labels(level)
        child.observe(waited)

    def rejected(self, level: str, reason: str) -> None:
        key = (level, reason)
        child = self._rejected_children.get(key)
        if child is None:
            child = self._rejected_children[key] = self.rejections.labels(level, reason)
        child.inc()


class _LevelCollector(Collector):
    def __init__(self, flow: FlowControl) -> None:
        self._flow = flow

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        gauges = {
            "seats": GaugeMetricFamily(
                "hakube_flowcontrol_nominal_limit_seats",
                "Seats of each priority level (0 for exempt levels: not limited).",
                labels=["priority_level"],
            ),
            "executing": GaugeMetricFamily(
                "hakube_flowcontrol_current_executing_requests",
                "Requests holding a seat (running) per priority level.",
                labels=["priority_level"],
            ),
            "queued": GaugeMetricFamily(
                "hakube_flowcontrol_current_inqueue_requests",
                "Requests waiting for a seat per priority level.",
                labels=["priority_level"],
            ),
        }
        dispatched = CounterMetricFamily(
            "hakube_flowcontrol_dispatched_requests",
            "Requests that got a seat (exempt levels: that ran) per priority level.",
            labels=["priority_level"],
        )
        for name, level in self._flow.levels.items():
            dispatched.add_metric([name], float(level.dispatched))
            qs = level.queues
            seats, running, queued = (
                (0, level.executing, 0) if qs is None else (qs.seats, qs.executing, qs.waiting)
            )
            gauges["seats"].add_metric([name], float(seats))
            gauges["executing"].add_metric([name], float(running))
            gauges["queued"].add_metric([name], float(queued))
        streams = GaugeMetricFamily(
            "hakube_flowcontrol_watch_stream_clients",
            "Clients holding at least one watch stream on this master.",
        )
        streams.add_metric([], float(len(self._flow.streams)))
        yield from gauges.values()
        yield dispatched
        yield streams
