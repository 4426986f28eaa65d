"""Pre-vote (Raft thesis §9.6) on top of pysyncobj, which has none.

Without it, a member that cannot hear the leader (a cut cable that leaves its TCP connections
open, a long stall) starts election after election on its own, raising its term each time. When
it comes back, that higher term makes the healthy leader step down: an election the cluster did
not need, a pause in writes, and behind the VIP a failed readiness check that can move the VIP.

With pre-vote a member whose election timer runs out first asks the others whether they would
vote for it, without changing any term. A member grants that only if it is not the leader, has
not heard from a leader for a while (``quiet``: shorter than the minimum election timeout, so a
cluster whose leader died grants at once) and the asker's log is at least as up to date as its
own. Only with a majority of grants does pysyncobj start the real election. A member cut off
from a healthy leader therefore never raises its term and rejoins without disturbing anyone.

How it sits on pysyncobj (whose election timer is private): at the end of a Raft tick (at
most every 50 ms) ``tick`` takes the election deadline pysyncobj has set over and pushes
pysyncobj's own far into the future, so that only a granted pre-vote (which sets it to 0) lets
pysyncobj's check fire. pysyncobj resets its deadline whenever it hears from a leader or grants
a vote; ``tick`` notices a deadline it did not set and adopts it. A leadership transfer
(TimeoutNow sets the deadline to 0 between ticks) and a single-member cluster are left alone.
If the Raft thread stalls longer than the time ``tick`` keeps pysyncobj's deadline away,
nothing breaks: pysyncobj simply starts an election the way it did before.

The messages are of types pysyncobj does not know (a member without this code ignores them, so
during a rolling upgrade upgraded members can only win elections once they are a majority).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

REQUEST = "hk_pre_vote"
RESPONSE = "hk_pre_vote_response"
TYPES = frozenset({REQUEST, RESPONSE})
_LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER
_FAR = 1e6
"""Seconds ahead that pysyncobj's own deadline is kept while pre-vote holds the timer."""


class PreVote:
    """Pre-vote for one pysyncobj member; see the module docstring. Raft thread only."""

    def __init__(self, syncobj: Any, quiet: float) -> None:
        self._so = syncobj
        self.quiet = quiet
        self.leader_contact = 0.0
        """Monotonic time this member last heard a leader's append-entries."""
        self._due = 0.0
        self._round: int | None = None
        self._grants: set[Any] = set()
        self._rounds = itertools.count(1)
        self.rounds_started = 0
        self.elections_allowed = 0

    # pysyncobj's private fields, in one place.
    def _get(self, name: str) -> Any:
        return getattr(self._so, "_SyncObj__" + name)

    def _set_deadline(self, value: float) -> None:
        self._so._SyncObj__raftElectionDeadline = value

    def tick(self, now: float) -> None:
        """Every 50 ms at most (pysyncobj's own deadlines are never less than the minimum
        election timeout, 0.4 s, away when set, so none runs out before it is adopted)."""
        deadline = self._get("raftElectionDeadline")
        others = self._get("otherNodes")
        if (
            self._get("raftState") == _LEADER
            or self._get("selfNode") is None
            or self._get("transferInProgress")
            or not others
        ):
            self._round = None
            if deadline > now + _FAR / 2:  # hand the timer back
                self._set_deadline(self._due)
            return
        if deadline < now + _FAR / 2:  # pysyncobj set a new deadline: adopt it
            self._due = deadline
            self._set_deadline(now + _FAR)
        if now >= self._due:
            self._due = now + self._get("generateRaftTimeout")()  # try again then
            self._start_round(others)

    def _start_round(self, others: Any) -> None:
        self._round = next(self._rounds)
        self._grants = set()
        self.rounds_started += 1
        message = {
            "type": REQUEST,
            "round": self._round,
            "last_log_index": self._get("getCurrentLogIndex")(),
            "last_log_term": self._get("getCurrentLogTerm")(),
        }
        transport = self._get("transport")
        for node in list(others):
            transport.send(node, message)

    def heard_leader(self) -> None:
        self.leader_contact = time.monotonic()

    def receive(self, node: Any, message: dict[str, Any]) -> None:
        if message["type"] == REQUEST:
            mine = (self._get("getCurrentLogTerm")(), self._get("getCurrentLogIndex")())
            theirs = (message["last_log_term"], message["last_log_index"])
            granted = (
                self._get("raftState") != _LEADER
                and time.monotonic() - self.leader_contact >= self.quiet
                and theirs >= mine
            )
            self._get("transport").send(
                node, {"type": RESPONSE, "round": message["round"], "granted": granted}
            )
            return
        if message["round"] != self._round or not message["granted"]:
            return
        self._grants.add(node)
        if len(self._grants) + 1 > (len(self._get("otherNodes")) + 1) / 2:
            self._round = None
            self.elections_allowed += 1
            self._set_deadline(0.0)  # pysyncobj starts the election on its next tick
