"""TTL leases: the leader decides expiry, the log carries it.

Keepalives are replicated like any write; every member notes (on its own monotonic clock) when it
last applied one for each lease. Only the leader acts on that: it proposes an expiry operation
for leases not renewed within their TTL. A new leader starts every lease's clock afresh, so a
failover never expires leases whose holders were renewing through the old leader.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hakube.store.fsm import StoreFSM


class LeaseKeeper:
    """Tracks lease renewals and proposes expiries while this member leads."""

    def __init__(self, fsm: StoreFSM, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.fsm = fsm
        self.clock = clock
        self.touched: dict[int, float] = {}
        self.leading = False
        fsm.lease_touched = self.touch

    def touch(self, lease_id: int) -> None:
        self.touched[lease_id] = self.clock()

    def on_leadership(self, leader: bool) -> None:
        self.leading = leader
        if leader:
            now = self.clock()
            for lease_id in list(self.fsm.leases):
                self.touched[lease_id] = now

    def expired(self) -> tuple[int, ...]:
        """Leases past their TTL, if this member leads (else nothing)."""
        if not self.leading:
            return ()
        now = self.clock()
        with self.fsm.lock:
            leases = list(self.fsm.leases.items())
        out = []
        for lease_id, (ttl, _keys) in leases:
            last = self.touched.setdefault(lease_id, now)
            if last + ttl < now:
                out.append(lease_id)
        for lease_id in list(self.touched):
            if lease_id not in self.fsm.leases:
                del self.touched[lease_id]
        return tuple(sorted(out))
