"""``hakube dns`` metrics. Label values come from fixed sets (record types hakube answers,
rcode names, protocols, forward results), never from the query: a client cannot grow the
series count."""

from __future__ import annotations

from collections.abc import Callable

import dns.rcode
import dns.rdatatype
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TYPES = frozenset(("A", "AAAA", "SRV", "PTR", "CNAME", "SOA", "NS", "TXT", "MX", "ANY"))
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 2.0)


def type_label(qtype: int) -> str:
    text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
    return text if text in TYPES else "other"


def rcode_label(rcode: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode.make(rcode)) if 0 <= rcode <= 10 else "other"


class DnsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.queries = Counter(
            "hakube_dns_queries",
            "DNS queries answered, by protocol, query type and response code",
            ["proto", "type", "rcode"],
            registry=registry,
        )
        self.duration = Histogram(
            "hakube_dns_request_duration_seconds",
            "Time from a query's arrival to its answer being sent",
            ["proto"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.forwards = Counter(
            "hakube_dns_forwards",
            "Queries for names outside the cluster zone, by outcome "
            "(ok, failed: no upstream answered in time, none: no upstream configured, busy)",
            ["result"],
            registry=registry,
        )
        self.cache_hits = Counter(
            "hakube_dns_cache_hits", "Queries answered from the answer cache", registry=registry
        )
        self.dropped = Counter(
            "hakube_dns_dropped",
            "Datagrams not answered (malformed, or a response rather than a query)",
            registry=registry,
        )
        self.services = Gauge("hakube_dns_zone_services", "Services in the zone", registry=registry)
        self.rrsets = Gauge(
            "hakube_dns_zone_rrsets", "Record sets published in the zone", registry=registry
        )
        self.updates = Gauge(
            "hakube_dns_zone_generation", "Changes applied to the zone so far", registry=registry
        )
        self._children: dict[tuple[str, int, int], Callable[[], None]] = {}
        self._durations = {p: self.duration.labels(p) for p in ("udp", "tcp")}

    def counter(self, proto: str, qtype: int, rcode: int) -> Callable[[], None]:
        """The ``inc`` of one queries series, looked up once and kept (a cached answer keeps
        its own: the hot path does no label lookup)."""
        key = (proto, qtype, rcode)
        found = self._children.get(key)
        if found is None:
            found = self.queries.labels(proto, type_label(qtype), rcode_label(rcode)).inc
            if len(self._children) < 4096:
                self._children[key] = found
        return found

    def observe(self, proto: str, seconds: float) -> None:
        self._durations[proto].observe(seconds)
