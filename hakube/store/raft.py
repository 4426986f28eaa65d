"""One master's Raft member: pysyncobj configured the way these machines need it.

Why these settings (see docs/design/store.md for the measurements behind them):

* ``journalFile`` and ``fullDumpFile`` always. Without a dump file, log compaction pickles the
  whole state on the Raft thread, and a journal-only restart after compaction can come back empty.
  With it, pysyncobj forks and the child writes the dump, so compaction never stalls elections.
* ``appendEntriesUseBatch=False``: each command is sent at once (~1-2 ms commit). Throughput comes
  from the proposer's group commit above the library, which keeps few commands in flight.
* Stale append-entries guard: pysyncobj pipelines append-entries and may resend entries a
  follower already has; its follower code then truncates everything after ``prevLogIdx`` --
  including entries it had acknowledged and applied -- before re-adding what the message carries.
  When a message is shorter than what was truncated, a committed entry can exist on fewer members
  than the leader counted. ``_guard_append_entries`` rewrites such messages (only when the
  follower's last entry is from the sender's term, so its whole log is a prefix of the leader's)
  to start after what the follower already holds, so nothing is truncated. Raft requires exactly
  this: delete entries only on a conflict.
* Conflict answers: a follower whose log ends in entries of an older term that no majority took
  answers a message that does not attach with "send everything after my commit index"
  (``_point_back_past_conflicts``) instead of pysyncobj's one-index steps, which later
  messages overtake (a master stayed out of the quorum for minutes in a fault run).
* Entries are never sent in pysyncobj's chunked "transmission" mode (which the guard cannot
  inspect): ``appendEntriesBatchSizeBytes`` is set above the proposer's batch size limit.
* ``dynamicMembershipChange``: members are added and removed one at a time through the log
  (``add_member``/``remove_member``). pysyncobj applies a change when the entry is appended and
  lets its dump override the configured peers; the master therefore persists the resulting
  configuration itself (hakube.store.datadir) instead of trusting flags on restart.
* Journal durability: pysyncobj's journal is an mmap that is never fsynced, so acknowledged writes
  survive a process crash, not a power loss. ``fsync`` (on by default) makes a follower sync its
  journal before any message leaves it, and the leader sync in parallel with sending new entries
  and count itself towards a commit only for what it has synced, so a write is on a majority's
  disks before it is acknowledged (see durable.py). ``sync_journal`` (older, weaker) msyncs the
  journal on every tick, bounding loss on power failure to about one tick.
* Transport: always mutual TLS with the cluster CA (hakube.store.transport). A peer is accepted
  only if its certificate names a current member (``addr_to_name``), and is tied to that member's
  address; pysyncobj's read-only peers and network utility commands are refused, frames are
  decoded without ever calling a global, and the server binds the Raft address's host only.
  Refused connections are counted by reason in ``refused``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf

from hakube.pki.tls import TlsFiles
from hakube.store import encoding, transport
from hakube.store import journal as safe_journal
from hakube.store.durable import DurableJournal, DurableMeta, install_file_hooks
from hakube.store.fsm import StoreFSM
from hakube.store.prevote import TYPES as PREVOTE_TYPES
from hakube.store.prevote import PreVote
from hakube.store.proposer import Proposer

encoding.install()
transport.install_command_fence()

MAX_BATCH_BYTES = 1024 * 1024
"""Payload bytes in one group-committed command; a single larger object (up to 1.5 MiB) goes
alone. Small entries keep every member's Raft thread responsive (no multi-second unpickling)."""
APPEND_ENTRIES_BYTES = 4 * MAX_BATCH_BYTES
"""Above any single entry, so pysyncobj never switches to chunked transmission."""


@dataclass
class RaftSettings:
    """Settings of one Raft member."""

    name: str
    """This master's name, unique in the cluster."""
    raft_address: str
    """HOST:PORT this member listens on for Raft traffic."""
    peers: dict[str, str]
    """Other members: name -> HOST:PORT."""
    data_dir: str
    """Directory for the journal and the dump; must be writable."""
    tls: TlsFiles
    """The cluster CA and this member's certificate and key (CN ``system:hakube-master:<name>``)
    for the Raft transport, which is always mutual TLS. The files are re-read when they change,
    so a renewed certificate applies to new connections."""
    election_timeout_min: float = 0.4
    """Seconds; pysyncobj's default. Failover after kill -9 of the leader is ~1.5-2 s."""
    election_timeout_max: float = 1.4
    """Seconds; must exceed the minimum so that candidates rarely collide."""
    compaction_min_entries: int = 50000
    """Compact the log after this many entries (the fork makes compaction cheap for the leader)."""
    compaction_min_seconds: float = 600.0
    """...or after this many seconds."""
    sync_journal: bool = False
    """msync the journal every tick (bounds power-loss to ~one tick; not before acknowledging)."""
    fsync: bool = True
    """Sync the journal before a follower acknowledges, and on the leader in parallel with
    replication (it counts itself only for synced entries): acknowledged writes are on a
    majority's disks (power-loss durability, as etcd's default). Off: writes survive a crash of
    any or all masters, not a power loss of a majority."""
    batch_timeout: float = 5.0
    """Seconds to wait for a proposal's answer before reporting an unknown outcome."""
    max_inflight: int = 2
    """Raft commands the proposer keeps in flight per master."""
    connect_retry: float = 1.0
    """Seconds between connection attempts to a peer that is down. pysyncobj's default of 5 s
    delays a restarted or newly added master's return by up to 5 s; an attempt is one
    non-blocking connect, so trying every second costs nothing measurable."""
    pre_vote: bool = True
    """Ask the others before starting an election (hakube.store.prevote): a member cut off from
    a healthy leader then never raises its term and rejoins without forcing an election."""
    extra: dict[str, object] = field(default_factory=dict)
    """Further SyncObjConf keyword arguments (tests)."""

    def validate(self) -> None:
        """Raise ValueError with a message that states the broken rule."""
        if not self.name:
            raise ValueError("name must not be empty")
        if not isinstance(self.tls, TlsFiles):
            raise ValueError("tls must name the CA, certificate and key files (TlsFiles)")
        check_hostport("raft address", self.raft_address)
        for peer, addr in self.peers.items():
            check_hostport(f"peer {peer}", addr)
            if peer == self.name:
                raise ValueError(f"peer {peer!r} has this master's own name")
            if addr == self.raft_address:
                raise ValueError(f"peer {peer} uses this master's raft address {addr}")
        if len(set(self.peers.values())) != len(self.peers):
            raise ValueError("two peers share one raft address")
        if self.election_timeout_max <= self.election_timeout_min:
            raise ValueError(
                f"election timeout max ({self.election_timeout_max}s) must be greater than the "
                f"minimum ({self.election_timeout_min}s)"
            )


class MembershipError(Exception):
    """pysyncobj refused or failed a membership change; the message is its reason."""


def _copy_outcome(
    src: concurrent.futures.Future[None], dst: concurrent.futures.Future[None]
) -> None:
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(None)


def _trim_known_entries(message: dict[str, Any], raft_log: Any) -> None:
    """Rewrite an append-entries message so it starts after the entries this follower already
    holds from the same leader (see the module docstring). Runs on the Raft thread."""
    if not len(raft_log):
        return
    _, last_idx, last_term = raft_log[-1]
    prev_idx = message["prevLogIdx"]
    if last_term != message["term"] or prev_idx >= last_idx:
        return
    first_idx = raft_log[0][1]
    if prev_idx < first_idx:
        return  # below our compacted prefix: leave it to pysyncobj
    entries = message.get("entries") or []
    # Our entries up to last_idx are the leader's (log matching); keep only newer ones.
    newer = [e for e in entries if e[1] > last_idx]
    if entries and entries[0][1] <= last_idx:
        mine = raft_log[entries[0][1] - first_idx]
        if mine[1] != entries[0][1] or mine[2] != entries[0][2]:
            return  # unexpected: do not second-guess pysyncobj
    if newer and newer[0][1] != last_idx + 1:
        return  # a gap: let pysyncobj reject it normally
    message["prevLogIdx"] = last_idx
    message["prevLogTerm"] = last_term
    message["entries"] = newer


def _point_back_past_conflicts(message: dict[str, Any], raft_log: Any, commit_index: int) -> None:
    """Rewrite an append-entries message that cannot attach to our log so that pysyncobj answers
    "send everything after my commit index" (see the module docstring). Runs on the Raft thread.

    pysyncobj answers a conflicting previous entry with "try the index before" and a previous
    entry it lacks with "try after my last entry". When our log ends in entries of an older
    term that no majority took (an old leader cut off or paused while it accepted writes), the
    leader's many messages per round trip get both answers, the second overtakes the first,
    and the leader retries the same place for ever (a fault run saw a master stay thousands of
    entries behind). Everything up to our commit index is the leader's (committed entries are
    in every later leader's log), so that point always attaches: one round trip, and at most
    our uncommitted tail is sent again."""
    if not len(raft_log):
        return
    _, last_idx, last_term = raft_log[-1]
    prev_idx = message["prevLogIdx"]
    if last_term == message["term"] or commit_index >= last_idx or prev_idx <= commit_index:
        return  # our log is a prefix of the sender's, or the previous entry is committed
    first_idx = raft_log[0][1]
    if (
        first_idx <= prev_idx <= last_idx
        and raft_log[prev_idx - first_idx][2] == message["prevLogTerm"]
    ):
        return  # it attaches
    # pysyncobj answers a previous entry of another term with a reset to that index.
    message["prevLogIdx"] = commit_index + 1
    message["prevLogTerm"] = -1
    message["entries"] = []


def _answer_stale_leader(
    so: Any,
    transport: Any,
    raft_log: Any,
    node: object,
    answered: dict[object, float],
    quiet: float,
) -> None:
    """A leader of an older term is still sending to us: tell it our term. Runs on the Raft
    thread.

    A member can hold a higher term than the leader without any leader of that term: it won a
    pre-vote, raised its term, and its vote requests were lost (a partition starting, a
    connection reset). pysyncobj ignores messages of an older term without answering, so the
    leader never learns of the higher term; the member ignores the leader's entries; and its
    pre-votes are refused because the others hear from that leader. It stays out of the quorum
    until the leader happens to change (seen for minutes in the fault runs). Raft's answer is
    to reply with the higher term; pysyncobj reacts to a higher term only in a vote request or
    in entries, so the member repeats its vote request for its current term (legal in Raft:
    it asks for a vote in the term it is in, with its true last entry). The leader steps down,
    the cluster elects a leader in a newer term — one election, not a stream of them: at most
    once per election timeout per sender, and only while that sender's term is behind."""
    now = time.monotonic()
    if now - answered.get(node, -quiet) < quiet or not len(raft_log):
        return
    answered[node] = now
    _, last_idx, last_term = raft_log[-1]
    transport.send(
        node,
        {
            "type": "request_vote",
            "term": so.raftCurrentTerm,
            "last_log_index": last_idx,
            "last_log_term": last_term,
        },
    )


def check_hostport(what: str, value: str) -> None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what}: {value!r} is not HOST:PORT")


class RaftNode:
    """A running Raft member holding a StoreFSM, with a group-commit proposer in front."""

    def __init__(
        self,
        settings: RaftSettings,
        fsm: StoreFSM,
        on_latency: Callable[[float, int], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """``on_refused(reason)`` is called (on the Raft thread) for every refused connection."""
        settings.validate()
        settings.tls.check()
        os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)
        self.settings = settings
        self.fsm = fsm
        self.leader_changes = 0
        self.leaders_seen = 0
        """Times this member saw a new leader (metrics: ``leader_changes_seen``, as etcd's)."""
        self._last_leader: object = None
        self._state_lock = threading.Lock()
        self._on_leader_callbacks: list[Callable[[bool], None]] = []
        self.addr_to_name = {addr: name for name, addr in settings.peers.items()}
        self.addr_to_name[settings.raft_address] = settings.name
        self.refusals = transport.RefusalLog(on_refused)
        conf = SyncObjConf(
            journalFile=os.path.join(settings.data_dir, "raft.journal"),
            fullDumpFile=os.path.join(settings.data_dir, "raft.dump"),
            appendEntriesUseBatch=False,
            appendEntriesBatchSizeBytes=APPEND_ENTRIES_BYTES,
            raftMinTimeout=settings.election_timeout_min,
            raftMaxTimeout=settings.election_timeout_max,
            logCompactionMinEntries=settings.compaction_min_entries,
            logCompactionMinTime=settings.compaction_min_seconds,
            onStateChanged=self._state_changed,
            dynamicMembershipChange=True,
            connectionRetryTime=settings.connect_retry,
            **settings.extra,
        )
        install_file_hooks()
        safe_journal.install()
        self.syncobj = SyncObj(
            settings.raft_address,
            list(settings.peers.values()),
            conf,
            consumers=[fsm],
            transportClass=transport.transport_class(
                settings.tls, self.member_address, self.member_name, self.refusals
            ),
        )
        self.prevote: PreVote | None = None
        if settings.pre_vote:
            period = conf.appendEntriesPeriod
            quiet = max(2 * period, settings.election_timeout_min - period)
            self.prevote = PreVote(self.syncobj, quiet)
        self._install_append_entries_guard()
        DurableMeta(self.syncobj).install()
        self.durable: DurableJournal | None = None
        if settings.fsync:
            self.durable = DurableJournal(self.syncobj)
            self.durable.install()
        self.proposer = Proposer(
            fsm.apply_batch,
            max_batch_bytes=MAX_BATCH_BYTES,
            can_propose=self.has_quorum,
            max_inflight=settings.max_inflight,
            timeout=settings.batch_timeout,
            on_latency=on_latency,
        )
        self._last_tick = 0.0
        self._on_raft_thread: collections.deque[Callable[[], None]] = collections.deque()
        """Calls to make on the Raft thread at its next tick (pysyncobj is not thread-safe)."""
        self.syncobj.addOnTickCallback(self._tick)

    def _install_append_entries_guard(self) -> None:
        so = self.syncobj
        transport = so._SyncObj__transport
        original = so._SyncObj__onMessageReceived
        raft_log = so._SyncObj__raftLog

        next_index: dict[object, int] = so._SyncObj__raftNextIndex

        prevote = self.prevote
        answered: dict[object, float] = {}
        quiet = self.settings.election_timeout_min

        def on_message(node: object, message: dict[str, object]) -> None:
            kind = message.get("type")
            if kind == "append_entries" and message["term"] < so.raftCurrentTerm:
                _answer_stale_leader(so, transport, raft_log, node, answered, quiet)
            if prevote is not None:
                if kind in PREVOTE_TYPES:
                    prevote.receive(node, message)
                    return
                if kind == "append_entries" and message["term"] >= so.raftCurrentTerm:
                    prevote.heard_leader()
            if (
                kind == "append_entries"
                and "prevLogIdx" in message
                and "transmission" not in message
            ):
                _trim_known_entries(message, raft_log)
                _point_back_past_conflicts(message, raft_log, so._SyncObj__raftCommitIndex)
            if kind == "next_node_idx" and message.get("success") and not message.get("reset"):
                # A follower's acknowledgement names the entry after the last one it has; the
                # leader has usually sent more since (one message per proposal). pysyncobj moves
                # nextIndex back to the acknowledged point, so everything in flight is sent
                # again (measured: 2.5x the bytes with 256 KiB writes). Keep the pipeline: a
                # real gap is answered by the follower with reset=True, which still rewinds.
                sent = next_index.get(node)
                original(node, message)
                if sent is not None and next_index.get(node, sent) < sent:
                    next_index[node] = sent
                return
            original(node, message)

        transport.setOnMessageReceivedCallback(on_message)

    # pysyncobj calls this on its thread on every tick (every 50 ms or on network events).
    def _tick(self) -> None:
        while self._on_raft_thread:
            self._on_raft_thread.popleft()()
        leader = self.syncobj._getLeader()
        if leader is not None and leader != self._last_leader:
            self.leaders_seen += 1
        if leader is not None:
            self._last_leader = leader
        now = time.monotonic()
        if now - self._last_tick < 0.05:
            return
        self._last_tick = now
        self.proposer.tick()
        if self.prevote is not None:
            self.prevote.tick(now)
        if self.settings.sync_journal:
            self._msync_journal()

    def _msync_journal(self) -> None:
        # The journal object is private to SyncObj; FileJournal.flush() msyncs its mmap.
        journal = getattr(self.syncobj, "_SyncObj__raftLog", None)
        flush = getattr(journal, "flush", None)
        if flush is not None:
            flush()

    def _state_changed(self, old: int, new: int) -> None:
        self.leader_changes += 1
        leader = new == 2  # pysyncobj _RAFT_STATE.LEADER
        for cb in list(self._on_leader_callbacks):
            cb(leader)

    def on_leadership(self, callback: Callable[[bool], None]) -> None:
        """Call ``callback(is_leader)`` on the Raft thread whenever this member's role changes."""
        self._on_leader_callbacks.append(callback)

    # -- who is a member (asked by the transport when a connection is set up) ------------------

    def member_address(self, name: str) -> str | None:
        """Raft address of the current member ``name``, or None."""
        for addr, n in list(self.addr_to_name.items()):
            if n == name:
                return addr
        return None

    def member_name(self, address: str) -> str | None:
        return self.addr_to_name.get(address)

    @property
    def refused(self) -> dict[str, int]:
        """Refused Raft connections by reason (transport.REFUSAL_REASONS), since start."""
        return dict(self.refusals.counts)

    # -- status -------------------------------------------------------------------------------

    def has_quorum(self) -> bool:
        """Connected to a majority (a cheap, local check). During an election a leader may be
        unknown for a moment: proposals then wait in pysyncobj's queue for the new leader (or
        expire as outcome-unknown) instead of failing a write that could have succeeded."""
        return bool(self.syncobj.hasQuorum)

    def is_leader(self) -> bool:
        return bool(self.syncobj._isLeader())

    def leader_name(self) -> str:
        leader = self.syncobj._getLeader()
        if leader is None:
            return ""
        return str(self.addr_to_name.get(leader.id, leader.id))

    def status(self) -> dict[str, Any]:
        return dict(self.syncobj.getStatus())

    # -- membership -----------------------------------------------------------------------------

    def raft_peers(self) -> set[str]:
        """Raft addresses of the other voters in this member's current configuration. The set
        is pysyncobj's, changed on the Raft thread: a copy racing a change is retried."""
        for _ in range(10):
            try:
                return {n.address for n in self.syncobj.otherNodes}
            except RuntimeError:  # set changed size during the copy
                continue
        return {n.address for n in self.syncobj.otherNodes}

    def is_connected(self, address: str) -> bool:
        return any(
            n.address == address and self.syncobj.isNodeConnected(n)
            for n in self.syncobj.otherNodes
        )

    def progress(self) -> dict[str, tuple[int, float]]:
        """Leader's view of each peer: address -> (match index, seconds since its last answer).
        Empty on a follower. Reads pysyncobj's private maps; copies tolerate a concurrent tick."""
        if not self.is_leader():
            return {}
        so = self.syncobj
        now = time.monotonic()
        for _ in range(3):
            try:
                match = dict(so._SyncObj__raftMatchIndex)
                seen = dict(so._SyncObj__lastResponseTime)
                break
            except RuntimeError:  # dict changed size during the copy
                continue
        else:
            return {}
        return {
            n.address: (match.get(n, 0), now - seen[n] if n in seen else -1.0)
            for n in so.otherNodes
        }

    def last_log_index(self) -> int:
        raft_log = self.syncobj._SyncObj__raftLog
        return int(raft_log[-1][1]) if len(raft_log) else 0

    def _membership_call(
        self, fn: Callable[..., None], *args: Any
    ) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()

        def done(_res: Any, err: int) -> None:
            if fut.done():
                return
            if err == FAIL_REASON.SUCCESS:
                fut.set_result(None)
            else:
                names = {v: k for k, v in vars(FAIL_REASON).items() if k.isupper()}
                fut.set_exception(MembershipError(names.get(err, str(err)).lower()))

        fn(*args, callback=done)
        return fut

    def add_member(self, address: str) -> concurrent.futures.Future[None]:
        """Propose adding a voter; resolves once the change is committed. pysyncobj forwards
        it to the leader, which refuses (request denied) while another change is uncommitted."""
        return self._membership_call(self.syncobj.addNodeToCluster, address)

    def remove_member(self, address: str) -> concurrent.futures.Future[None]:
        """Propose removing a voter (not the leader itself: transfer leadership first)."""
        return self._membership_call(self.syncobj.removeNodeFromCluster, address)

    def transfer_leadership(self, address: str | None) -> concurrent.futures.Future[None]:
        """Ask the leader to hand over to ``address`` (None: the most caught-up peer) with
        Raft's TimeoutNow. Resolves when the request was sent; poll leader_name() to confirm.
        Runs on the Raft thread: it reads Raft state and sends on pysyncobj's transport."""
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()

        def call() -> None:
            inner = self._membership_call(self.syncobj.transferLeadership, address)
            inner.add_done_callback(lambda f: _copy_outcome(f, fut))

        self._on_raft_thread.append(call)
        return fut

    def stop(self) -> None:
        """Stop the Raft thread and close the journal (idempotent)."""
        if self.durable is not None:
            self.durable.close()
        try:
            self.syncobj.destroy()
        except Exception:
            pass
