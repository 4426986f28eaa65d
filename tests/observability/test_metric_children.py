"""The cached children of labelled metrics count into the same series as ``labels()``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from hakube.agent.metrics import AgentMetrics
from hakube.apiserver.metrics import MasterMetrics
from hakube.httpendpoint import Children


def test_api_requests_and_cri_calls_count_per_label_values() -> None:
    m = MasterMetrics()
    for code in ("OK", "OK", "NotFound"):
        m.observe_request("Get", "po", code, 0.002)
    labels = {"method": "Get", "kind": "Pod"}
    assert m.registry.get_sample_value("hakube_api_requests_total", {**labels, "code": "OK"}) == 2
    count = m.registry.get_sample_value("hakube_api_request_duration_seconds_count", labels)
    assert count == 3
    agent = AgentMetrics(CollectorRegistry())
    agent.observe_cri("StartContainer", 0.01, None)
    errors = {"method": "StartContainer"}
    assert agent.registry.get_sample_value("hakube_agent_cri_request_errors_total", errors) == 0
    agent.observe_cri("StartContainer", 0.01, "UNAVAILABLE")
    assert agent.registry.get_sample_value("hakube_agent_cri_request_errors_total", errors) == 1


def test_past_its_limit_a_child_is_still_counted_but_not_kept() -> None:
    registry = CollectorRegistry()
    children = Children(Counter("c", "c", ["v"], registry=registry), limit=2)
    for v in ("a", "b", "c", "c"):
        children(v).inc()
    assert registry.get_sample_value("c_total", {"v": "c"}) == 2
    assert len(children._cache) == 2
