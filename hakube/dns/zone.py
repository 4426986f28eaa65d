"""The cluster zone in memory, indexed by name for O(1) answers.

Services and Endpoints arrive from informers (``set_service`` / ``set_endpoints`` and the
deletes, on the informer threads); each change recomputes only that Service's records
(``hakube.dns.records``) and swaps them into the index, so a change costs the size of one
Service, not of the cluster. The index maps a lower-case absolute name to its record sets, built
once per change as the DNS library's ``RRset`` objects: a query only looks them up.

Names that exist without records of their own (the apex, ``svc.<zone>``, ``<ns>.svc.<zone>``,
``_tcp.<svc>...``: "empty non-terminals") answer NODATA, not NXDOMAIN (RFC 8020): ``_names``
counts, for every name, the records at or below it.

``generation`` grows with every change: the server's answer cache keeps an answer only if the
generation it was computed at is still current (``stamp``/``current``), so a cached answer is
never older than the zone.

Thread-safety: writers hold ``lock``; a reader looks up dict entries, each replaced whole (never
mutated in place), so it sees either the old or the new record set of a name.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from hakube.api.v1 import core_pb2
from hakube.dns import records

SvcKey = tuple[str, str]
"""(namespace, name) of a Service and of its Endpoints."""


@dataclass(frozen=True)
class Answer:
    """What the zone says about one (name, type)."""

    exists: bool
    """False: NXDOMAIN."""
    rrsets: tuple[dns.rrset.RRset, ...] = ()
    """Empty with ``exists``: NODATA."""


NXDOMAIN = Answer(False)
NODATA = Answer(True)


class Zone:
    """See the module docstring."""

    def __init__(self, domain: str = "cluster.local", *, ttl: int = 5) -> None:
        self.domain = domain.strip(".").lower()
        self.origin = dns.name.from_text(self.domain)
        self.ttl = ttl
        self.lock = threading.Lock()
        self.generation = 0
        self._services: dict[SvcKey, core_pb2.Service] = {}
        self._endpoints: dict[SvcKey, core_pb2.Endpoints] = {}
        self._owned: dict[SvcKey, frozenset[records.Record]] = {}
        self._texts: dict[tuple[str, str], Counter[str]] = {}
        self._rrsets: dict[str, dict[int, dns.rrset.RRset]] = {}
        self._names: Counter[str] = Counter()
        self.apex = self.domain + "."
        self.serial = 1

    # -- writes (informer threads) ------------------------------------------------------------

    def set_service(self, svc: core_pb2.Service) -> None:
        key = (svc.metadata.namespace, svc.metadata.name)
        with self.lock:
            self._services[key] = svc
            self._recompute(key)

    def delete_service(self, svc: core_pb2.Service) -> None:
        key = (svc.metadata.namespace, svc.metadata.name)
        with self.lock:
            self._services.pop(key, None)
            self._recompute(key)

    def set_endpoints(self, eps: core_pb2.Endpoints) -> None:
        key = (eps.metadata.namespace, eps.metadata.name)
        with self.lock:
            self._endpoints[key] = eps
            self._recompute(key)

    def delete_endpoints(self, eps: core_pb2.Endpoints) -> None:
        key = (eps.metadata.namespace, eps.metadata.name)
        with self.lock:
            self._endpoints.pop(key, None)
            self._recompute(key)

    def _recompute(self, key: SvcKey) -> None:
        svc = self._services.get(key)
        new = (
            frozenset(records.service_records(svc, self._endpoints.get(key), self.domain))
            if svc is not None
            else frozenset()
        )
        old = self._owned.get(key, frozenset())
        if new == old:
            return
        touched: set[tuple[str, str]] = set()
        for rec, sign in [(r, -1) for r in old - new] + [(r, 1) for r in new - old]:
            name, rtype, text = rec
            texts = self._texts.setdefault((name, rtype), Counter())
            texts[text] += sign
            if texts[text] <= 0:
                del texts[text]
            touched.add((name, rtype))
            for ancestor in self._ancestors(name):
                self._names[ancestor] += sign
                if self._names[ancestor] <= 0:
                    del self._names[ancestor]
        if new:
            self._owned[key] = new
        else:
            self._owned.pop(key, None)
        for name, rtype in touched:
            self._rebuild(name, rtype)
        self.generation += 1
        self.serial = (self.serial + 1) % 2**32 or 1

    def _ancestors(self, name: str) -> list[str]:
        """``name`` and its parents down to the apex (for a cluster-zone name) or to the
        reverse zone's top (an ``.arpa`` name: its own name only)."""
        if not name.endswith("." + self.apex):
            return [name]
        out = [name]
        while name != self.apex:
            name = name.split(".", 1)[1]
            out.append(name)
        return out

    def _rebuild(self, name: str, rtype: str) -> None:
        texts = self._texts.get((name, rtype))
        code = dns.rdatatype.from_text(rtype)
        sets = dict(self._rrsets.get(name, {}))
        if texts:
            sets[code] = dns.rrset.from_text_list(
                name, self.ttl, dns.rdataclass.IN, rtype, sorted(texts)
            )
        else:
            self._texts.pop((name, rtype), None)
            sets.pop(code, None)
        if sets:
            self._rrsets[name] = sets
        else:
            self._rrsets.pop(name, None)

    # -- reads (any thread) -------------------------------------------------------------------

    def in_zone(self, qname: str) -> bool:
        """``qname`` (lower case, absolute) is the cluster domain or below it."""
        return qname == self.apex or qname.endswith("." + self.apex)

    def lookup(self, qname: str, qtype: int) -> Answer:
        """The answer for ``qname`` (lower case, absolute). An ``.arpa`` name the zone has no
        PTR for is not the zone's: ``NXDOMAIN`` here, and the server forwards it."""
        sets = self._rrsets.get(qname)
        if sets is not None:
            if qtype == dns.rdatatype.ANY:
                return Answer(True, tuple(sets.values()))
            found = sets.get(qtype)
            if found is not None:
                return Answer(True, (found,))
            cname = sets.get(dns.rdatatype.CNAME)
            if cname is not None:
                return Answer(True, (cname,))
        if qname in self._names or qname == self.apex:
            return NODATA
        if self.in_zone(qname):
            return self._pod(qname, qtype)
        return NXDOMAIN

    def _pod(self, qname: str, qtype: int) -> Answer:
        labels = qname[: -len(self.apex) - 1].split(".")
        ip = records.pod_address(labels)
        if ip is None:
            return NODATA if labels in (["svc"], ["pod"]) else NXDOMAIN
        if qtype not in (dns.rdatatype.A, dns.rdatatype.ANY):
            return NODATA
        return Answer(True, (dns.rrset.from_text(qname, self.ttl, "IN", "A", ip),))

    def has_ptr(self, qname: str) -> bool:
        sets = self._rrsets.get(qname)
        return sets is not None and dns.rdatatype.PTR in sets

    def soa(self) -> dns.rrset.RRset:
        """The zone's SOA (in the authority section of NXDOMAIN and NODATA answers; its minimum
        field, the negative-caching TTL, is the record TTL)."""
        return dns.rrset.from_text(
            self.apex,
            self.ttl,
            "IN",
            "SOA",
            f"ns.dns.{self.apex} hostmaster.{self.apex} {self.serial} 7200 1800 86400 {self.ttl}",
        )

    def counts(self) -> tuple[int, int]:
        """(Services known, record sets published); from the metrics thread, hence the lock
        (an informer may be resizing the index)."""
        with self.lock:
            return len(self._services), sum(len(s) for s in self._rrsets.values())
