"""One query in, one answer out: the cluster zone, the answer cache, and forwarding.

- A name in the cluster zone (``<domain>`` and below) is answered from ``Zone`` with AA set,
  and is never forwarded: NXDOMAIN for an unknown name and NODATA for a known name without the
  asked type, both with the zone's SOA in the authority section (RFC 2308) so resolvers cache
  the negative answer for the SOA minimum (the record TTL). Until the informers have synced,
  cluster names get SERVFAIL rather than a false NXDOMAIN that resolvers would cache.
- A reverse (``.arpa``) name with a PTR in the zone is answered from it; any other name goes to
  the upstream resolvers, all attempts together bounded by ``forward_timeout``; none
  configured, none answering, or too many forwards in flight: SERVFAIL.
- Zone answers are kept as wire bytes keyed by the query's bytes after its ID (so the same
  question with the same flags and EDNS size gets the same bytes, with the asker's ID put in
  front); the DNS library made those bytes, this module only reuses them. The cache is emptied
  whenever the zone changes, and an answer computed while the zone changed is not kept.
- AXFR/IXFR are refused (the zone is not for transfer); opcodes other than QUERY get NOTIMP;
  datagrams that do not parse, and responses, are dropped (answering them could loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from hakube.dns.config import DnsSettings
from hakube.dns.metrics import DnsMetrics
from hakube.dns.zone import Zone

log = logging.getLogger("hakube.dns")

UDP_DEFAULT_SIZE = 512
"""A UDP answer's limit without EDNS (RFC 1035); larger answers are truncated (TC set)."""
REFUSED_TYPES = frozenset((dns.rdatatype.AXFR, dns.rdatatype.IXFR))

Reply = bytes | None
Pending = Coroutine[Any, Any, Reply]
"""A forward under way; awaited by the server."""
CacheEntry = tuple[bytes, Callable[[], None]]
"""(answer bytes after the ID, the queries counter's ``inc`` for its type and rcode)."""


class Resolver:
    """See the module docstring. Runs on the server's event loop thread; the zone is written by
    the informer threads."""

    def __init__(
        self,
        zone: Zone,
        settings: DnsSettings,
        upstreams: list[tuple[str, int]],
        metrics: DnsMetrics,
        synced: Callable[[], bool],
    ) -> None:
        self.zone = zone
        self.s = settings
        self.upstreams = upstreams
        self.m = metrics
        self.synced = synced
        self._cache: dict[tuple[bool, bytes], CacheEntry] = {}
        self._cache_generation = -1
        self._forwarding = 0

    # -- the hot path -------------------------------------------------------------------------

    def cached(self, wire: bytes, tcp: bool) -> bytes | None:
        """The cached answer to ``wire`` (its ID already in place), or None."""
        if self._cache_generation != self.zone.generation:
            return None
        hit = self._cache.get((tcp, wire[2:]))
        if hit is None:
            return None
        hit[1]()
        self.m.cache_hits.inc()
        return wire[:2] + hit[0]

    def respond(self, wire: bytes, tcp: bool) -> Reply | Pending:
        """The answer to one query, or a coroutine that forwards it, or None (drop)."""
        try:
            q = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError, IndexError):
            self.m.dropped.inc()
            return None
        if q.flags & dns.flags.QR:
            self.m.dropped.inc()
            return None
        r = dns.message.make_response(q)
        if q.opcode() != dns.opcode.QUERY:
            return self._finish(r, q, tcp, 0, dns.rcode.NOTIMP)
        if len(q.question) != 1:
            return self._finish(r, q, tcp, 0, dns.rcode.FORMERR)
        question = q.question[0]
        qtype = question.rdtype
        if question.rdclass != dns.rdataclass.IN or qtype in REFUSED_TYPES:
            return self._finish(r, q, tcp, qtype, dns.rcode.REFUSED)
        qname = question.name.to_text().lower()
        if self.zone.in_zone(qname):
            if not self.synced():
                return self._finish(r, q, tcp, qtype, dns.rcode.SERVFAIL)
            return self._local(wire, r, q, tcp, qname, qtype)
        if qname.endswith(".arpa.") and self.zone.has_ptr(qname):
            return self._local(wire, r, q, tcp, qname, qtype)
        if not self.upstreams:
            self.m.forwards.labels("none").inc()
            return self._finish(r, q, tcp, qtype, dns.rcode.SERVFAIL)
        if self._forwarding >= self.s.max_forwards:
            self.m.forwards.labels("busy").inc()
            return self._finish(r, q, tcp, qtype, dns.rcode.SERVFAIL)
        return self._forward(q, r, tcp, qtype)

    # -- answers ------------------------------------------------------------------------------

    def _local(
        self,
        wire: bytes,
        r: dns.message.Message,
        q: dns.message.Message,
        tcp: bool,
        qname: str,
        qtype: int,
    ) -> bytes:
        generation = self.zone.generation
        r.flags |= dns.flags.AA
        if qname == self.zone.apex and qtype == dns.rdatatype.SOA:
            r.answer.append(self.zone.soa())
            rcode = dns.rcode.NOERROR
        else:
            found = self.zone.lookup(qname, qtype)
            r.answer.extend(found.rrsets)
            rcode = dns.rcode.NOERROR if found.exists else dns.rcode.NXDOMAIN
            if not found.rrsets:
                r.authority.append(self.zone.soa())
        out = self._finish(r, q, tcp, qtype, rcode)
        self._keep(wire, tcp, out, qtype, rcode, generation)
        return out

    def _keep(
        self,
        wire: bytes,
        tcp: bool,
        out: bytes,
        qtype: int,
        rcode: int,
        generation: int,
    ) -> None:
        if not self.s.cache_size:
            return
        with self.zone.lock:  # a zone change in between must not leave this answer behind
            if self.zone.generation != generation:
                return
            if self._cache_generation != generation:
                self._cache.clear()
                self._cache_generation = generation
            if len(self._cache) >= self.s.cache_size:
                self._cache.pop(next(iter(self._cache)))
            proto = "tcp" if tcp else "udp"
            self._cache[(tcp, wire[2:])] = (out[2:], self.m.counter(proto, qtype, rcode))

    def _finish(
        self, r: dns.message.Message, q: dns.message.Message, tcp: bool, qtype: int, rcode: int
    ) -> bytes:
        r.set_rcode(dns.rcode.Rcode.make(rcode))
        if self.upstreams:
            r.flags |= dns.flags.RA
        self.m.counter("tcp" if tcp else "udp", qtype, rcode)()
        return r.to_wire(max_size=self._limit(q, tcp), prefer_truncation=True)

    @staticmethod
    def _limit(q: dns.message.Message, tcp: bool) -> int:
        if tcp:
            return 65535
        return max(UDP_DEFAULT_SIZE, q.payload) if q.edns >= 0 else UDP_DEFAULT_SIZE

    async def _forward(
        self, q: dns.message.Message, r: dns.message.Message, tcp: bool, qtype: int
    ) -> Reply:
        self._forwarding += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.s.forward_timeout
            for i, (host, port) in enumerate(self.upstreams):
                left = deadline - loop.time()
                if left <= 0:
                    break
                share = left / (len(self.upstreams) - i)
                try:
                    if tcp:
                        got = await dns.asyncquery.tcp(q, host, timeout=share, port=port)
                    else:
                        got = await dns.asyncquery.udp(
                            q, host, timeout=share, port=port, ignore_unexpected=True
                        )
                except (dns.exception.DNSException, OSError, EOFError) as e:
                    log.debug("upstream %s:%d: %s", host, port, e)
                    continue
                self.m.forwards.labels("ok").inc()
                self.m.counter("tcp" if tcp else "udp", qtype, got.rcode())()
                got.id = q.id
                return got.to_wire(max_size=self._limit(q, tcp), prefer_truncation=True)
            self.m.forwards.labels("failed").inc()
            return self._finish(r, q, tcp, qtype, dns.rcode.SERVFAIL)
        finally:
            self._forwarding -= 1
